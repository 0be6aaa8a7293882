"""A task's CPU limit: set once the task is ready (init runs unthrottled, as Lambda's), whichever
comes first of its first `next` and the engine's answer; a task that cannot be limited is
replaced; or from container start when configured so."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from controller_harness import TEST_SETTINGS, Harness, invoke, make_version, settle

from fnplat.config import SandboxSettings
from fnplat.controller.fake_engine import FakeFunction, hangs
from fnplat.errors import EngineError


async def test_the_limit_follows_the_first_next(harness: Harness) -> None:
    controller = await harness.start()
    result = await invoke(controller, make_version(memory=3538))
    assert result.function_error is None
    (task,) = controller.tasks()
    await settle(lambda: task.container_id in harness.engine.cpu_limits)
    assert harness.engine.cpu_limits == {task.container_id: 2.0}  # 3,538 MB = 2 vCPUs
    (container,) = harness.engine.running()
    assert container.taskdef is not None and container.taskdef.cpu_limit_after_init


async def test_a_first_next_before_the_engine_answers_still_gets_the_limit(harness: Harness) -> None:
    harness.engine.run_returns = asyncio.Event()
    controller = await harness.start()
    invocation = asyncio.ensure_future(invoke(controller, make_version()))
    result = await invocation  # served while engine.run() has not returned yet
    assert result.function_error is None and harness.engine.cpu_limits == {}
    harness.engine.run_returns.set()
    await settle(lambda: bool(harness.engine.cpu_limits))
    assert list(harness.engine.cpu_limits.values()) == [0.25]  # 128 MB: the floor


async def test_a_task_that_cannot_be_limited_is_replaced(harness: Harness) -> None:
    harness.engine.limit_cpu_error = EngineError("update refused")
    controller = await harness.start()
    await invoke(controller, make_version())
    await settle(lambda: controller.tasks() == [] and harness.engine.running() == [])
    assert len(harness.engine.killed) == 1


async def test_from_container_start_when_configured(harness: Harness) -> None:
    sandbox = replace(TEST_SETTINGS.sandbox, cpu_limit_after_init=False)
    assert isinstance(sandbox, SandboxSettings)
    controller = await harness.start(sandbox=sandbox)
    await invoke(controller, make_version())
    (container,) = harness.engine.running()
    assert container.taskdef is not None and not container.taskdef.cpu_limit_after_init
    assert container.taskdef.cpus == 0.25  # in the host config at creation (docker_decisions.py)
    assert harness.engine.cpu_limits == {}


async def test_a_task_stopped_under_a_running_invocation_answers_it_with_its_exit(harness: Harness) -> None:
    # The CPU limit is set when the task is ready, concurrently with its first invocation; when it
    # fails (the container has just died), the task is stopped while busy: the caller gets the
    # exit as its result, not a timeout.
    harness.engine.limit_cpu_error = EngineError("cannot update a stopped container")
    harness.engine.register("fn", FakeFunction(handler=hangs()))
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert result.function_error == "Unhandled"
    assert result.error_type == "Runtime.ExitError"
