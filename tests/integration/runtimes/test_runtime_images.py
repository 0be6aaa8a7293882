"""Each runtime image serves one invocation while locked down as the controller runs tasks.

The stub Runtime API listens on the docker0 bridge gateway; the container runs as a non-root
numeric user with a read-only root filesystem, a tmpfs /tmp, no capabilities and the code
bind-mounted read-only at /var/task.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from runtime_stub import WAIT_S, StubRuntimeApi, write_files

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("runtime_images")]

TEST_LABEL = "fnplat.test=runtimes"

RunImage = Callable[[str, Mapping[str, str], str], Awaitable[asyncio.subprocess.Process]]


def readable_by_task_user(root: Path) -> None:
    """The task user (993:990) is not the owner: make the code world-readable, like an artifact."""
    for path in [root, *root.rglob("*")]:
        executable = path.is_dir() or os.access(path, os.X_OK)
        path.chmod(0o755 if executable else 0o644)


@pytest.fixture
async def run_image(bridge_api: StubRuntimeApi, tmp_path: Path) -> AsyncIterator[RunImage]:
    names: list[str] = []
    processes: list[asyncio.subprocess.Process] = []

    async def run(image: str, files: Mapping[str, str], handler: str) -> asyncio.subprocess.Process:
        code = write_files(tmp_path / f"code{len(names)}", files)
        if (code / "bootstrap").exists():
            (code / "bootstrap").chmod(0o755)  # a custom runtime's entry point is an executable
        readable_by_task_user(code)
        name = f"fnplat-test-runtime-{uuid.uuid4().hex[:12]}"
        names.append(name)
        process = await asyncio.create_subprocess_exec(
            "docker", "run", "--rm", "--name", name, "--label", TEST_LABEL,
            "--read-only", "--tmpfs", "/tmp", "--user", "993:990",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-v", f"{code}:/var/task:ro",
            "-e", f"AWS_LAMBDA_RUNTIME_API={bridge_api.address}",
            "-e", f"_HANDLER={handler}",
            "-e", "AWS_LAMBDA_FUNCTION_NAME=fn", "-e", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
            "-e", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
            "-e", "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/fn", "-e", "AWS_LAMBDA_LOG_STREAM_NAME=s",
            image,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        processes.append(process)
        return process

    yield run
    for name in names:
        remover = await asyncio.create_subprocess_exec(
            "docker", "rm", "-f", name, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await remover.wait()
    for process in processes:
        if process.returncode is None:
            await process.wait()


async def round_trip(api: StubRuntimeApi, process: asyncio.subprocess.Process) -> object:
    request_id = api.invoke({"n": 41})
    try:
        posted = await api.result(request_id, limit_s=60)
    except TimeoutError:
        process.kill()
        output = (await process.communicate())[0].decode(errors="replace")
        raise AssertionError(f"no result from the container; its output:\n{output}") from None
    assert posted.kind == "response", posted.body
    return posted.json()


async def test_python_image(bridge_api: StubRuntimeApi, run_image: RunImage) -> None:
    code = (
        "import os, tempfile\n"
        "def handler(event, context):\n"
        "    with tempfile.NamedTemporaryFile() as f:\n"  # /tmp is the one writable place
        "        f.write(b'x')\n"
        "    return {'n': event['n'] + 1, 'uid': os.getuid(), 'cwd': os.getcwd(),\n"
        "            'memory': context.memory_limit_in_mb, 'home': os.environ['HOME']}\n"
    )
    process = await run_image("fnplat/runtime-python3.11", {"app.py": code}, "app.handler")

    result = await round_trip(bridge_api, process)

    assert result == {"n": 42, "uid": 993, "cwd": "/var/task", "memory": "128", "home": "/tmp"}


async def test_nodejs_image(bridge_api: StubRuntimeApi, run_image: RunImage) -> None:
    code = (
        "const fs = require('fs');\n"
        "exports.handler = async (event, context) => {\n"
        "  fs.writeFileSync('/tmp/x', 'x');\n"
        "  const node = process.version.split('.')[0];\n"
        "  return { n: event.n + 1, uid: process.getuid(), cwd: process.cwd(), node };\n"
        "};\n"
    )
    process = await run_image("fnplat/runtime-nodejs18.x", {"index.js": code}, "index.handler")

    result = await round_trip(bridge_api, process)

    assert result == {"n": 42, "uid": 993, "cwd": "/var/task", "node": "v18"}


CURL_BOOTSTRAP = r"""#!/bin/bash
# A minimal custom runtime: one event, answered with curl, as in AWS's tutorial.
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
HEADERS=$(mktemp)
EVENT=$(curl -sS -D "$HEADERS" "$API/invocation/next")
REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "{\"got\": $EVENT, \"handler\": \"$_HANDLER\"}"
"""


async def test_provided_image_runs_the_function_bootstrap(
    bridge_api: StubRuntimeApi, run_image: RunImage
) -> None:
    process = await run_image("fnplat/runtime-provided", {"bootstrap": CURL_BOOTSTRAP}, "fn.handler")

    result = await round_trip(bridge_api, process)

    assert result == {"got": {"n": 41}, "handler": "fn.handler"}


async def test_provided_image_reports_a_missing_bootstrap(
    bridge_api: StubRuntimeApi, run_image: RunImage
) -> None:
    process = await run_image("fnplat/runtime-provided", {"README": "no bootstrap here"}, "fn.handler")

    posted = await asyncio.wait_for(asyncio.shield(bridge_api.init_error), WAIT_S * 4)
    code = await asyncio.wait_for(process.wait(), WAIT_S)

    assert code == 1
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.InvalidEntrypoint"
    assert posted.json() == {
        "errorMessage": "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
        "errorType": "Runtime.InvalidEntrypoint",
        "stackTrace": [],
    }
