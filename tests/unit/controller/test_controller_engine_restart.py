"""The container engine restarts under the controller (dockerd restarted): its event stream
breaks, containers die without an event reaching us (or survive, with live-restore), and the
stream comes back. The controller reconciles its tasks with what the engine lists, and the next
invocation of every function succeeds without waiting for a timeout."""

from __future__ import annotations

import asyncio

import pytest
from controller_harness import Harness, invoke, make_version, settle

from fnplat.controller import service
from fnplat.controller.fake_engine import FakeContext, FakeFunction, hangs
from fnplat.errors import EngineError

# Longer than any test may take: an invocation that reached a dead task would hit this.
LONG_TIMEOUT = 120
WITHIN_S = 10  # a bound on each await below, far below LONG_TIMEOUT


async def warm(harness: Harness, *names: str) -> dict[str, str]:
    """One warm task per function; returns function name -> its container id."""
    controller = harness.controllers[0]
    for name in names:
        result = await invoke(controller, make_version(name, timeout=LONG_TIMEOUT))
        assert result.function_error is None
    return {info.function_name: str(info.container_id) for info in controller.tasks()}


async def test_tasks_that_died_unseen_are_replaced_and_the_next_calls_succeed(harness: Harness) -> None:
    controller = await harness.start()
    before = await warm(harness, "a", "b")
    await harness.engine.restart()  # both containers die; no `die` event reaches the controller

    for name in ("a", "b"):
        async with asyncio.timeout(WITHIN_S):
            result = await invoke(controller, make_version(name, timeout=LONG_TIMEOUT))
        assert result.function_error is None, result.payload
    after = {info.function_name: info.container_id for info in controller.tasks() if info.state == "idle"}
    assert after.keys() == {"a", "b"}
    assert not set(after.values()) & set(before.values())  # new tasks, the dead ones are gone
    await harness.engine.wait_until(lambda: all(c not in harness.engine.containers for c in before.values()))
    assert harness.metric("fnplat_tasks_found_dead_total") == 2
    assert harness.metric("fnplat_engine_resyncs_total") == 1


async def test_a_call_made_while_the_engine_is_away_waits_for_the_reconcile(harness: Harness) -> None:
    controller = await harness.start()
    before = await warm(harness, "a")
    harness.engine.lose_events()
    await harness.engine.die_unseen(before["a"])
    call = asyncio.create_task(invoke(controller, make_version("a", timeout=LONG_TIMEOUT)))
    await settle(lambda: len(harness.engine.containers) == 1 and not call.done(), rounds=200)
    assert not call.done()  # it did not go to the dead idle task
    harness.engine.regain_events()
    async with asyncio.timeout(WITHIN_S):
        result = await call
    assert result.function_error is None
    assert len(harness.engine.containers) == 1  # the dead one was removed, a new one serves


async def test_an_invocation_on_a_task_that_died_unseen_ends_at_the_reconcile(harness: Harness) -> None:
    harness.engine.register("stuck", FakeFunction(handler=hangs()))
    controller = await harness.start()
    call = asyncio.create_task(invoke(controller, make_version("stuck", timeout=LONG_TIMEOUT)))
    await harness.engine.wait_until(lambda: any(c.requests for c in harness.engine.containers.values()))
    await harness.engine.restart()
    async with asyncio.timeout(WITHIN_S):
        result = await call
    assert (result.function_error, result.error_type) == ("Unhandled", "Runtime.ExitError")


async def test_with_live_restore_survivors_keep_serving_and_their_output_is_followed_again(
    harness: Harness,
) -> None:
    async def prints(event: bytes, ctx: FakeContext) -> bytes:
        ctx.print("hello again")
        return b'"ok"'

    harness.engine.register("a", FakeFunction(handler=prints))
    controller = await harness.start()
    before = await warm(harness, "a")
    await harness.engine.restart(live_restore=True)
    async with asyncio.timeout(WITHIN_S):
        result = await invoke(controller, make_version("a", timeout=LONG_TIMEOUT))
    assert result.payload == b'"ok"'
    [info] = controller.tasks()
    assert info.container_id == before["a"] and info.invocations == 2  # no cold start
    [(container_id, since)] = harness.engine.followed
    assert container_id == before["a"] and since > 0
    assert harness.metric("fnplat_tasks_found_dead_total") == 0


async def test_a_task_whose_docker_run_is_in_flight_is_not_judged_by_the_listing(harness: Harness) -> None:
    """The listing can be taken before a starting task's container exists: that task is not gone."""
    controller = await harness.start()
    harness.engine.run_gate = asyncio.Event()
    harness.engine.list_gate = asyncio.Event()
    call = asyncio.create_task(invoke(controller, make_version("new", timeout=LONG_TIMEOUT)))
    await settle(lambda: len(controller.tasks()) == 1)  # starting, engine.run() waits
    harness.engine.lose_events()
    harness.engine.regain_events()  # the re-check starts; its listing has no container for "new"
    await settle(lambda: harness.engine.listings == 1)
    harness.engine.run_gate.set()  # now the container exists, after the listing was taken
    async with asyncio.timeout(WITHIN_S):
        result = await call
    assert result.function_error is None, result.payload
    harness.engine.list_gate.set()
    await settle(lambda: harness.metric("fnplat_engine_resyncs_total") == 1)
    [info] = controller.tasks()
    assert info.state == "idle" and info.container_id in harness.engine.containers
    assert harness.metric("fnplat_tasks_found_dead_total") == 0


async def test_reconnect_hooks_run_after_the_reconcile_and_a_failing_one_blocks_nothing(
    harness: Harness,
) -> None:
    controller = await harness.start()
    await warm(harness, "a")
    seen: list[int] = []

    async def records_live_tasks() -> None:
        seen.append(len([t for t in controller.tasks() if t.state != "stopping"]))

    async def fails() -> None:
        raise RuntimeError("iptables exploded")

    controller.add_reconnect_hook(fails)
    controller.add_reconnect_hook(records_live_tasks)
    await harness.engine.restart()
    async with asyncio.timeout(WITHIN_S):
        result = await invoke(controller, make_version("a", timeout=LONG_TIMEOUT))
    assert result.function_error is None
    assert seen == [0]  # ran once, after the dead task was taken out of service


async def test_a_failed_listing_is_retried_and_calls_wait_for_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RELIST_RETRY_S", 0.01)
    controller = await harness.start()
    await warm(harness, "a")
    harness.engine.list_error = EngineError("Docker engine not reachable")
    await harness.engine.restart()
    call = asyncio.create_task(invoke(controller, make_version("a", timeout=LONG_TIMEOUT)))
    await settle(lambda: not call.done(), rounds=100)
    harness.engine.list_error = None
    async with asyncio.timeout(WITHIN_S):
        assert (await call).function_error is None
    assert harness.metric("fnplat_tasks_found_dead_total") == 1


async def test_past_the_resync_wait_warm_tasks_are_trusted(harness: Harness) -> None:
    """The engine stays away (dockerd down, live-restore on): after engine_resync_wait_s since the
    break, calls go to the warm tasks as they are instead of waiting."""
    controller = await harness.start(engine_resync_wait_s=30.0)
    before = await warm(harness, "a")
    harness.engine.lose_events()
    harness.clock.now += 31.0
    async with asyncio.timeout(WITHIN_S):
        result = await invoke(controller, make_version("a", timeout=LONG_TIMEOUT))
    assert result.function_error is None
    assert [t.container_id for t in controller.tasks()] == [before["a"]]


async def test_a_restart_during_the_re_check_is_checked_again(harness: Harness) -> None:
    controller = await harness.start()
    before = await warm(harness, "a")
    harness.engine.list_gate = asyncio.Event()
    harness.engine.lose_events()
    harness.engine.regain_events()
    await settle(lambda: harness.engine.listings == 1)  # the first re-check is listing
    harness.engine.lose_events()  # ... and dockerd goes away and comes back again meanwhile
    await harness.engine.die_unseen(before["a"])
    harness.engine.regain_events()
    call = asyncio.create_task(invoke(controller, make_version("a", timeout=LONG_TIMEOUT)))
    harness.engine.list_gate.set()
    async with asyncio.timeout(WITHIN_S):
        result = await call
    assert result.function_error is None
    assert harness.metric("fnplat_engine_resyncs_total") == 2
    assert harness.metric("fnplat_tasks_found_dead_total") == 1


async def test_a_container_whose_kill_failed_while_the_engine_was_away_is_removed_after(
    harness: Harness,
) -> None:
    controller = await harness.start()
    before = await warm(harness, "a")
    harness.engine.lose_events()
    harness.engine.kill_error = EngineError("Docker engine not reachable")
    await controller.retire("a", None)  # its idle task stops; the kill fails
    await settle(lambda: not controller.tracked_functions())
    assert before["a"] in harness.engine.containers  # left behind, owned by no task
    harness.engine.kill_error = None
    harness.engine.regain_events()
    await harness.engine.wait_until(lambda: before["a"] not in harness.engine.containers)
