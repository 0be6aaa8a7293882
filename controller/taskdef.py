"""Compile a function version into a task definition (ECS style): image, command, limits, env, labels.

Pure: no engine, no filesystem access. Per-task values (Runtime API address, log stream, the task
label) are added when a task is launched.
"""

from __future__ import annotations

from pathlib import Path

from fnplat.config import ControllerSettings
from fnplat.controller.engine import (
    LABEL_FUNCTION,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_NETWORK,
    LABEL_VERSION,
    TaskDefinition,
)
from fnplat.domain import LATEST, FunctionVersion, frozen_map
from fnplat.errors import InvalidParameter

RUNTIME_IMAGES: dict[str, str] = {
    "python3.11": "fnplat/runtime-python3.11:latest",
    "nodejs18.x": "fnplat/runtime-nodejs18.x:latest",
    "provided": "fnplat/runtime-provided:latest",
}
TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"

# Unreserved defaults: the user's environment may override these. LANG is C.UTF-8 rather than
# Lambda's en_US.UTF-8 because our Debian minbase images ship no en_US locale.
_DEFAULTS = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "HOME": "/tmp",
}

# Lambda gives a full vCPU at 1,769 MB and CPU in proportion below and above: as Docker CPU shares
# (1024 = one default share) this keeps a 128 MB function from starving a 3 GB one under contention.
_MB_PER_VCPU = 1769


def compile_task_definition(
    version: FunctionVersion, code_dir: Path | None, settings: ControllerSettings, region: str
) -> TaskDefinition:
    if version.runtime == "image":
        if not version.image:
            raise InvalidParameter(f"function {version.function_name} has runtime image but no image")
        image, command, mount = version.image, None, None
    else:
        image = RUNTIME_IMAGES.get(version.runtime, "")
        if not image:
            raise InvalidParameter(f"unsupported runtime {version.runtime!r}")
        # The images' own entrypoints find the bootstrap (provided: /var/task/bootstrap, then
        # /opt/bootstrap, else Runtime.InvalidEntrypoint as the first invocation's error).
        command = None
        mount = code_dir
    return TaskDefinition(
        family=version.function_name,
        revision=version.version,
        image=image,
        command=command,
        memory_mb=version.memory,
        environment=frozen_map(task_environment(version, region)),
        labels=frozen_map(task_labels(version, settings.instance_id)),
        code_dir=mount,
        tmp_size_mb=settings.tmp_size_mb,
        pids_limit=settings.pids_limit,
        user=settings.task_user,
        cpu_shares=max(2, version.memory * 1024 // _MB_PER_VCPU),
        cpus=task_cpus(version.memory, settings),
        cpu_limit_after_init=settings.sandbox.cpu_limit_after_init,
        network=version.network,
    )


def task_cpus(memory_mb: int, settings: ControllerSettings) -> float:
    """The task's CPU limit in vCPUs: in proportion to its memory as Lambda, never below the floor."""
    sandbox = settings.sandbox
    return round(max(sandbox.min_cpus, memory_mb / sandbox.mb_per_vcpu), 3)


def task_environment(version: FunctionVersion, region: str) -> dict[str, str]:
    """Defaults, then the user's variables, then the reserved ones (which users cannot override)."""
    env = dict(_DEFAULTS)
    env.update(version.environment)
    env.update(
        {
            "_HANDLER": version.handler,
            "LAMBDA_TASK_ROOT": TASK_ROOT,
            "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
            "AWS_LAMBDA_FUNCTION_NAME": version.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": LATEST,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(version.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{version.function_name}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "TZ": ":UTC",
        }
    )
    if version.runtime in ("python3.11", "nodejs18.x"):
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{version.runtime}"
    else:
        env.pop("AWS_EXECUTION_ENV", None)  # Lambda sets none for OS-only runtimes; nor may users
    return env


def task_labels(version: FunctionVersion, instance_id: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance_id,
        LABEL_FUNCTION: version.function_name,
        LABEL_VERSION: str(version.version),
        LABEL_NETWORK: version.network,
    }
