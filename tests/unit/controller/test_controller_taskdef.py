"""Task definitions per runtime: image, command, code mount, environment, labels."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fnplat.config import ControllerSettings, SandboxSettings
from fnplat.controller.engine import (
    LABEL_FUNCTION,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_NETWORK,
    LABEL_VERSION,
)
from fnplat.controller.taskdef import compile_task_definition
from fnplat.domain import FunctionVersion, frozen_map
from fnplat.errors import InvalidParameter

SETTINGS = ControllerSettings(instance_id="inst-1", tmp_size_mb=256, pids_limit=64, task_user="1000:1000")
CODE = Path("/data/code/abc")


def version(runtime: str, **changes: object) -> FunctionVersion:
    base = FunctionVersion(
        function_name="hello",
        version=7,
        runtime=runtime,  # type: ignore[arg-type]
        handler="app.handler",
        memory=256,
        timeout=3,
        environment=frozen_map({"GREETING": "hi"}),
        code_sha256="0" * 64,
        image=None,
        created_at=datetime.now(UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("runtime", "image", "command", "execution_env"),
    [
        ("python3.11", "fnplat/runtime-python3.11:latest", None, "AWS_Lambda_python3.11"),
        ("nodejs18.x", "fnplat/runtime-nodejs18.x:latest", None, "AWS_Lambda_nodejs18.x"),
        ("provided", "fnplat/runtime-provided:latest", None, None),
    ],
)
def test_zip_runtimes(
    runtime: str, image: str, command: tuple[str, ...] | None, execution_env: str | None
) -> None:
    taskdef = compile_task_definition(version(runtime), CODE, SETTINGS, "eu-west-1")
    assert (taskdef.image, taskdef.command, taskdef.code_dir) == (image, command, CODE)
    assert (taskdef.family, taskdef.revision, taskdef.memory_mb) == ("hello", 7, 256)
    assert (taskdef.tmp_size_mb, taskdef.pids_limit, taskdef.user) == (256, 64, "1000:1000")
    env = taskdef.environment
    assert env.get("AWS_EXECUTION_ENV") == execution_env
    assert {
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_LAMBDA_FUNCTION_NAME": "hello",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/hello",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        "HOME": "/tmp",
        "GREETING": "hi",
    }.items() <= env.items()
    assert env["LANG"] and env["PATH"]
    assert dict(taskdef.labels) == {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: "inst-1",
        LABEL_FUNCTION: "hello",
        LABEL_VERSION: "7",
        LABEL_NETWORK: "default",
    }


def test_image_runtime_uses_its_own_entrypoint_and_no_code_mount() -> None:
    taskdef = compile_task_definition(
        version("image", image="fnplat-fn/hello:7"), CODE, SETTINGS, "us-east-1"
    )
    assert (taskdef.image, taskdef.command, taskdef.code_dir) == ("fnplat-fn/hello:7", None, None)
    assert "AWS_EXECUTION_ENV" not in taskdef.environment
    assert taskdef.environment["_HANDLER"] == "app.handler"


def test_users_cannot_override_reserved_variables_but_can_set_unreserved_ones() -> None:
    env = {
        "AWS_REGION": "mars-1",
        "_HANDLER": "evil.handler",
        "AWS_EXECUTION_ENV": "x",
        "PATH": "/mine",
        "LANG": "de",
    }
    taskdef = compile_task_definition(
        version("provided", environment=frozen_map(env)), CODE, SETTINGS, "us-east-1"
    )
    assert taskdef.environment["AWS_REGION"] == "us-east-1"
    assert taskdef.environment["_HANDLER"] == "app.handler"
    assert "AWS_EXECUTION_ENV" not in taskdef.environment
    assert (taskdef.environment["PATH"], taskdef.environment["LANG"]) == ("/mine", "de")


def test_cpu_shares_grow_with_memory() -> None:
    small = compile_task_definition(version("python3.11", memory=128), CODE, SETTINGS, "us-east-1")
    full = compile_task_definition(version("python3.11", memory=1769), CODE, SETTINGS, "us-east-1")
    assert small.cpu_shares is not None and full.cpu_shares == 1024 and small.cpu_shares < 1024


def test_cpu_limit_is_proportional_to_memory_with_a_floor() -> None:
    settings = replace(SETTINGS, sandbox=SandboxSettings(mb_per_vcpu=1769, min_cpus=0.25))
    cpus = {
        memory: compile_task_definition(version("python3.11", memory=memory), CODE, settings, "r").cpus
        for memory in (128, 512, 1769, 3538, 10240)
    }
    assert cpus == {128: 0.25, 512: 0.289, 1769: 1.0, 3538: 2.0, 10240: 5.789}
    lambda_like = replace(SETTINGS, sandbox=SandboxSettings(min_cpus=0.0))
    assert compile_task_definition(version("python3.11", memory=128), CODE, lambda_like, "r").cpus == 0.072


def test_network_none_is_carried_to_the_task_definition_and_its_labels() -> None:
    taskdef = compile_task_definition(version("python3.11", network="none"), CODE, SETTINGS, "r")
    assert taskdef.network == "none"
    assert taskdef.labels[LABEL_NETWORK] == "none"


def test_bad_input() -> None:
    with pytest.raises(InvalidParameter, match="no image"):
        compile_task_definition(version("image"), None, SETTINGS, "us-east-1")
    with pytest.raises(InvalidParameter, match="unsupported runtime"):
        compile_task_definition(version("cobol"), CODE, SETTINGS, "us-east-1")
