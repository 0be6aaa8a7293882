"""The examples' handlers behave as documented, run on the host without Docker.

The provided example's bash bootstrap runs against a stub Lambda Runtime API on 127.0.0.1, so
the custom-runtime loop (next -> handler -> response) is exercised for real with curl.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
WAIT_S = 15.0


def load_handler_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("example", ["hello-python", "hello-image"])
def test_python_examples_greet(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "Hi")
    app = load_handler_module(EXAMPLES / example / "app.py")
    result = app.handler({"pathParameters": {"name": "Ada"}}, SimpleNamespace(aws_request_id="req-1"))
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"message": "Hi, Ada!", "requestId": "req-1"}
    direct = app.handler({}, SimpleNamespace(aws_request_id="req-2"))  # fnctl invoke with {}
    assert json.loads(direct["body"])["message"] == "Hi, world!"


def test_deps_python_example_converts_yaml_with_libyaml() -> None:
    app = load_handler_module(EXAMPLES / "deps-python" / "app.py")
    result = app.handler({"body": "a: 1\nb: [x, y]\n"}, SimpleNamespace(aws_request_id="r"))
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"document": {"a": 1, "b": ["x", "y"]}, "libyaml": True}
    assert app.handler({"body": "a: [unclosed"}, None)["statusCode"] == 400


def test_node_example_async_handler() -> None:
    script = (
        "require(process.argv[1]).handler({pathParameters: {name: 'Ada'}}, {awsRequestId: 'req-1'})"
        ".then(r => process.stdout.write(JSON.stringify(r)))"
    )
    out = subprocess.run(
        ["node", "-e", script, str(EXAMPLES / "hello-node" / "index.js")],
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT_S,
        env={**os.environ, "GREETING": "Hi"},
    ).stdout
    result = json.loads(out)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"message": "Hi, Ada!", "requestId": "req-1"}


class StubRuntimeApi:
    """Hands out one event, records the response; later `next` calls wait until shutdown."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.served = False
        self.response: asyncio.Future[tuple[str, bytes]] = asyncio.get_running_loop().create_future()
        self.closing = asyncio.Event()

    async def next(self, _: web.Request) -> web.Response:
        if self.served:
            await self.closing.wait()
            return web.Response(status=500)
        self.served = True
        return web.json_response(
            self.event,
            headers={
                "Lambda-Runtime-Aws-Request-Id": "req-42",
                "Lambda-Runtime-Deadline-Ms": "9999999999999",
            },
        )

    async def respond(self, request: web.Request) -> web.Response:
        if not self.response.done():
            self.response.set_result((request.match_info["request_id"], await request.read()))
        return web.json_response({"status": "OK"}, status=202)


@pytest.fixture
async def stub_api() -> AsyncIterator[tuple[StubRuntimeApi, str]]:
    stub = StubRuntimeApi(
        {"version": "2.0", "pathParameters": {"name": "Ada"}, "rawPath": "/hello-provided/Ada"}
    )
    app = web.Application()
    app.router.add_get("/2018-06-01/runtime/invocation/next", stub.next)
    app.router.add_post("/2018-06-01/runtime/invocation/{request_id}/response", stub.respond)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield stub, f"127.0.0.1:{port}"
    finally:
        stub.closing.set()
        await runner.cleanup()


async def test_provided_example_bootstrap_speaks_the_runtime_api(
    stub_api: tuple[StubRuntimeApi, str], tmp_path: Path
) -> None:
    stub, address = stub_api
    env = {
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": address,
        "GREETING": "Hi",
        "TMPDIR": str(tmp_path),
    }
    proc = await asyncio.create_subprocess_exec(
        str(EXAMPLES / "hello-provided" / "bootstrap"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        request_id, body = await asyncio.wait_for(stub.response, WAIT_S)
    finally:
        proc.kill()
        _, stderr = await proc.communicate()
    assert request_id == "req-42", stderr
    response = json.loads(body)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"message": "Hi, Ada!"}


def test_examples_package() -> None:
    """Every example except deps-python (needs the network: test_vendoring) packages offline."""
    from fnplat.packaging import package_function

    names = {
        example: package_function(EXAMPLES / example).spec.name
        for example in ("hello-python", "hello-node", "hello-provided", "hello-image")
    }
    assert names == {
        "hello-python": "hello",
        "hello-node": "hello-node",
        "hello-provided": "hello-provided",
        "hello-image": "hello-image",
    }
