"""The invoke service end to end on the FakeEngine: pools, limits, failures, logs, records."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from controller_harness import Harness, invoke, make_request, make_version, settle

from fnplat.controller.engine import LABEL_INSTANCE, LABEL_MANAGED
from fnplat.controller.fake_engine import (
    FakeContext,
    FakeExit,
    FakeFunction,
    crashes,
    hangs,
    raises,
    returns,
    runs_out_of_memory,
)
from fnplat.errors import EngineError, ServiceUnavailable, TooManyRequests
from fnplat.lambda_logs import newest_lines


def gated(gate: asyncio.Event, entered: list[str] | None = None) -> FakeFunction:
    """A function that holds its task busy until the test opens the gate."""

    async def handler(event: bytes, ctx: FakeContext) -> bytes:
        if entered is not None:
            entered.append(ctx.request_id)
        await gate.wait()
        return event

    return FakeFunction(handler=handler)


async def test_sequential_invocations_reuse_one_warm_task(harness: Harness) -> None:
    controller = await harness.start()
    fn = make_version()
    results = [await invoke(controller, fn, f'{{"n": {i}}}'.encode()) for i in range(3)]
    assert [r.payload for r in results] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert all(r.function_error is None for r in results)
    assert len(harness.engine.containers) == 1
    (container,) = harness.engine.containers.values()
    assert len(container.requests) == 3
    # only the invocation that cold-started the task reports an init duration
    assert results[0].init_duration_ms is not None
    assert results[1].init_duration_ms is None and results[2].init_duration_ms is None
    assert harness.metric("fnplat_cold_starts_total", function="fn") == 1
    await settle(lambda: len(harness.records) == 3)  # accounting runs after the caller has its result
    assert harness.metric("fnplat_invocations_total", function="fn", outcome="success") == 3
    [info] = controller.tasks()
    assert (info.function_name, info.state, info.invocations) == ("fn", "idle", 3)


async def test_cold_start_measures_init_until_the_first_next(harness: Harness) -> None:
    harness.engine.register("slow", FakeFunction(init_delay_s=0.05))
    controller = await harness.start()
    result = await invoke(controller, make_version("slow"))
    assert result.init_duration_ms is not None and result.init_duration_ms >= 50.0
    await settle(lambda: len(harness.records) == 1)
    assert harness.records[0].init_duration_ms == result.init_duration_ms


async def test_a_cold_start_slower_than_the_queue_timeout_is_not_throttled(harness: Harness) -> None:
    # The bounded wait is for capacity; a caller waiting for its own cold start is not throttled.
    harness.engine.register("slow", FakeFunction(init_delay_s=0.2))
    controller = await harness.start(queue_timeout_s=0.01)
    results = await asyncio.gather(*(invoke(controller, make_version("slow")) for _ in range(3)))
    assert all(r.function_error is None for r in results)
    assert harness.metric("fnplat_throttles_total", function="slow") == 0


async def test_one_invocation_per_task_concurrent_calls_get_their_own_tasks(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start()
    fn = make_version()
    calls = [asyncio.create_task(invoke(controller, fn, f'"{i}"'.encode())) for i in range(4)]
    await harness.engine.wait_until(lambda: len(entered) == 4)
    assert len(harness.engine.containers) == 4
    assert harness.metric("fnplat_concurrent_executions", function="fn") == 4
    gate.set()
    results = await asyncio.gather(*calls)
    assert sorted(r.payload for r in results) == [b'"0"', b'"1"', b'"2"', b'"3"']
    assert all(len(c.requests) == 1 for c in harness.engine.containers.values())
    assert harness.metric("fnplat_concurrent_executions", function="fn") == 0


async def test_concurrency_limit_waits_then_throttles(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=1, queue_timeout_s=0.05)
    fn = make_version()
    first = asyncio.create_task(invoke(controller, fn))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    with pytest.raises(TooManyRequests):
        await invoke(controller, fn)
    assert len(harness.engine.containers) == 1  # no second task beyond the limit
    assert harness.metric("fnplat_throttles_total", function="fn") == 1
    gate.set()
    assert (await first).function_error is None


async def test_full_queue_throttles_at_once(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=1, max_queue_length=0, queue_timeout_s=30)
    fn = make_version()
    first = asyncio.create_task(invoke(controller, fn))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    with pytest.raises(TooManyRequests):
        await invoke(controller, fn)  # would hang 30 s if it queued
    gate.set()
    await first


async def test_a_waiter_gets_the_task_another_invocation_frees(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=1, queue_timeout_s=5)
    fn = make_version()
    first = asyncio.create_task(invoke(controller, fn, b'"first"'))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    second = asyncio.create_task(invoke(controller, fn, b'"second"'))
    await settle(lambda: harness.metric("fnplat_queue_depth", function="fn") == 1)
    gate.set()
    assert (await first).payload == b'"first"'
    assert (await second).payload == b'"second"'
    (container,) = harness.engine.containers.values()  # the freed task served the waiter
    assert len(container.requests) == 2


async def test_waiters_are_served_first_in_first_out(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=1, queue_timeout_s=5)
    fn = make_version()
    first = asyncio.create_task(invoke(controller, fn))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    waiting = []
    for i in range(3):
        request = make_request(fn, f'"{i}"'.encode())
        waiting.append((request.request_id, asyncio.create_task(controller.invoke(request))))
        await settle(lambda: harness.metric("fnplat_queue_depth", function="fn") == len(waiting))
    gate.set()
    await first
    await asyncio.gather(*(t for _, t in waiting))
    assert entered[1:] == [rid for rid, _ in waiting]


async def test_timeout_kills_only_that_task_and_names_the_limit(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("slow", FakeFunction(handler=hangs()))
    harness.engine.register("other", gated(gate, entered))
    controller = await harness.start()
    other = asyncio.create_task(invoke(controller, make_version("other")))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    slow = make_version("slow", timeout=1)
    result = await invoke(controller, slow)
    assert (result.function_error, result.error_type) == ("Unhandled", "Sandbox.Timedout")
    message = json.loads(result.payload)["errorMessage"]
    assert re.fullmatch(r"\S+Z [0-9a-f-]{36} Task timed out after 1\.00 seconds", message)
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)
    [killed] = harness.engine.killed
    assert killed not in harness.engine.containers
    gate.set()
    assert (await other).function_error is None  # the other function's task was not touched
    await settle(lambda: len(harness.records) == 2)
    assert harness.metric("fnplat_invocations_total", function="slow", outcome="timeout") == 1


@pytest.mark.parametrize(
    ("handler", "error_type", "message_part"),
    [
        (runs_out_of_memory(), "Runtime.OutOfMemory", "memory limit is 256 MB"),
        (crashes(3), "Runtime.ExitError", "Runtime exited with error: exit status 3"),
    ],
)
async def test_oom_and_crash_are_errors_and_the_task_is_replaced(
    harness: Harness, handler: object, error_type: str, message_part: str
) -> None:
    calls = 0

    async def first_call_dies(event: bytes, ctx: FakeContext) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await handler(event, ctx)  # type: ignore[operator, no-any-return]
        return b'"fine"'

    harness.engine.register("fn", FakeFunction(handler=first_call_dies))
    controller = await harness.start()
    fn = make_version(memory=256)
    request = make_request(fn)
    result = await controller.invoke(request)
    assert (result.function_error, result.error_type) == ("Unhandled", error_type)
    body = json.loads(result.payload)
    assert body["errorType"] == error_type and message_part in body["errorMessage"]
    assert request.request_id in body["errorMessage"]
    again = await invoke(controller, fn)
    assert again.payload == b'"fine"'
    assert len(harness.engine.killed) == 1 and len(harness.engine.containers) == 1
    assert again.init_duration_ms is not None  # a fresh task


async def test_function_errors_pass_the_runtime_error_body_through(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(handler=raises("ValueError", "bad input")))
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert (result.function_error, result.error_type) == ("Unhandled", "ValueError")
    assert json.loads(result.payload)["errorMessage"] == "bad input"
    assert len(harness.engine.killed) == 0  # a handled error keeps the task warm
    await settle(lambda: len(harness.records) == 1)
    assert harness.records[0].error_type == "ValueError"


async def test_init_error_is_the_first_invocations_result(harness: Harness) -> None:
    harness.engine.register(
        "fn", FakeFunction(init_error=("Runtime.ImportModuleError", "No module named 'app'"))
    )
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert (result.function_error, result.error_type) == ("Unhandled", "Runtime.ImportModuleError")
    assert json.loads(result.payload)["errorMessage"] == "No module named 'app'"
    assert result.init_duration_ms is not None
    await harness.engine.wait_until(lambda: not harness.engine.containers)
    assert controller.tasks() == []
    await settle(lambda: len(harness.records) == 1)
    record = harness.records[0]
    assert (record.error_type, record.duration_ms) == ("Runtime.ImportModuleError", 0.0)
    assert record.init_duration_ms is not None
    lines = [e.message.split(" ")[0] for e in newest_lines([], harness.records, 10)]
    assert lines == ["START", "END", "REPORT"]


async def test_init_timeout_kills_the_task(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(never_ready=True))
    controller = await harness.start(init_timeout_s=0.05)
    result = await invoke(controller, make_version())
    assert (result.function_error, result.error_type) == ("Unhandled", "Sandbox.Timedout")
    assert "Init phase timed out after 0.05 seconds" in json.loads(result.payload)["errorMessage"]
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)


async def test_exit_during_init_is_the_first_invocations_result(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(exit_during_init=2))
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert result.error_type == "Runtime.ExitError"
    assert "exit status 2" in json.loads(result.payload)["errorMessage"]


async def test_a_container_that_fails_to_start_raises_engine_error(harness: Harness) -> None:
    harness.engine.run_error = EngineError("image fnplat/runtime-python3.11:latest not found")
    controller = await harness.start()
    with pytest.raises(EngineError, match="not found"):
        await invoke(controller, make_version())
    assert controller.tasks() == []
    harness.engine.run_error = None
    assert (await invoke(controller, make_version())).function_error is None  # slot and address freed


async def test_orphans_are_removed_by_label_only(harness: Harness) -> None:
    ours = harness.engine.add_container({LABEL_MANAGED: "true", LABEL_INSTANCE: "unit-test"})
    another_controller = harness.engine.add_container({LABEL_MANAGED: "true", LABEL_INSTANCE: "other"})
    not_ours = harness.engine.add_container({"app": "postgres"})
    await harness.start()
    assert harness.engine.killed == [ours]
    assert another_controller in harness.engine.containers and not_ours in harness.engine.containers


async def test_idle_tasks_are_reaped_after_keep_alive(harness: Harness) -> None:
    controller = await harness.start(keep_alive_s=60)
    await invoke(controller, make_version())
    harness.clock.now += 59
    assert controller.reap_idle() == 0
    harness.clock.now += 1
    assert controller.reap_idle() == 1
    await harness.engine.wait_until(lambda: not harness.engine.containers)
    assert controller.tasks() == []
    assert (await invoke(controller, make_version())).init_duration_ms is not None  # cold again


async def test_the_background_reaper_runs(harness: Harness) -> None:
    harness.clock.now = 0.0
    controller = await harness.start(keep_alive_s=0.01)
    await invoke(controller, make_version())
    harness.clock.now = 1.0  # every idle task is now past keep-alive
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)


async def test_retire_stops_idle_tasks_of_other_versions(harness: Harness) -> None:
    controller = await harness.start()
    v1, v2 = make_version(version=1), make_version(version=2)
    await invoke(controller, v1)
    await invoke(controller, v2)
    await controller.retire("fn", keep_version=2)
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)
    assert [(t.version, t.state) for t in controller.tasks()] == [(2, "idle")]


async def test_memory_pressure_evicts_least_recently_used_idle_tasks_of_other_functions(
    harness: Harness,
) -> None:
    controller = await harness.start(task_memory_capacity_mb=512)
    await invoke(controller, make_version("a", memory=256))
    await invoke(controller, make_version("b", memory=256))
    harness.clock.now += 1
    await invoke(controller, make_version("a", memory=256))  # a is now more recently used than b
    result = await invoke(controller, make_version("c", memory=256))
    assert result.function_error is None
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)
    assert sorted(t.function_name for t in controller.tasks()) == ["a", "c"]


async def test_memory_exhausted_by_busy_tasks_waits_then_throttles(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("a", gated(gate, entered))
    controller = await harness.start(task_memory_capacity_mb=256, queue_timeout_s=0.05)
    busy = asyncio.create_task(invoke(controller, make_version("a", memory=256)))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    with pytest.raises(TooManyRequests):
        await invoke(controller, make_version("b", memory=128))
    gate.set()
    await busy


async def test_platform_log_lines_records_and_function_output(harness: Harness) -> None:
    async def chatty(event: bytes, ctx: FakeContext) -> bytes:
        ctx.print("hello from the function")
        return b"{}"

    harness.engine.register("fn", FakeFunction(handler=chatty, max_memory_mb=77))
    controller = await harness.start()
    fn = make_version()
    first, second = make_request(fn), make_request(fn, executed_version="1")
    await controller.invoke(first)
    await controller.invoke(second)
    await settle(lambda: len(harness.records) == 2)
    rid = first.request_id
    # The platform lines come from the records; the function's output from the log sink.
    await settle(lambda: len(harness.logs) == 2)
    assert {(e.request_id, e.message) for e in harness.logs} == {
        (rid, "hello from the function"),
        (second.request_id, "hello from the function"),
    }
    merged = newest_lines(harness.logs, harness.records, 100)
    lines = [e.message for e in merged if e.request_id == rid]
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert lines[1] == "hello from the function"
    assert lines[2] == f"END RequestId: {rid}"
    assert re.fullmatch(
        rf"REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB"
        r"\tMax Memory Used: 77 MB\tInit Duration: \d+\.\d\d ms",
        lines[3],
    )
    assert len(lines) == 4
    later = [e.message for e in merged if e.request_id == second.request_id]
    assert later[0] == f"START RequestId: {second.request_id} Version: 1"
    assert later[-1].startswith("REPORT") and "Init Duration" not in later[-1]
    timestamps = [e.timestamp for e in merged if e.request_id == rid]
    assert timestamps == sorted(timestamps)
    record = harness.records[0]
    assert (record.request_id, record.function_name, record.version) == (rid, "fn", 1)
    assert (record.memory_size_mb, record.max_memory_used_mb, record.error_type) == (128, 77, None)
    assert record.billed_duration_ms >= 1 and record.init_duration_ms is not None
    assert harness.records[1].init_duration_ms is None


async def test_next_sends_the_lambda_headers(harness: Harness) -> None:
    seen: list[FakeContext] = []

    async def capture(event: bytes, ctx: FakeContext) -> bytes:
        seen.append(ctx)
        return event

    harness.engine.register("fn", FakeFunction(handler=capture))
    controller = await harness.start()
    fn = make_version(timeout=7)
    request = make_request(
        fn, client_context='{"custom": {"a": 1}}', trace_id="Root=1-abc;Parent=def;Sampled=1"
    )
    before_ms = time.time() * 1000
    await controller.invoke(request)
    headers = {k.lower(): v for k, v in seen[0].headers.items()}
    assert headers["lambda-runtime-aws-request-id"] == request.request_id
    assert headers["lambda-runtime-invoked-function-arn"] == request.invoked_function_arn
    assert headers["lambda-runtime-trace-id"] == "Root=1-abc;Parent=def;Sampled=1"
    assert headers["lambda-runtime-client-context"] == '{"custom": {"a": 1}}'
    assert headers["content-type"] == "application/json"
    deadline_ms = int(headers["lambda-runtime-deadline-ms"])  # absolute unix ms: start + 7 s timeout
    assert before_ms + 7_000 <= deadline_ms + 1 <= time.time() * 1000 + 7_000 + 1
    plain = make_request(fn)
    await controller.invoke(plain)
    headers = {k.lower(): v for k, v in seen[1].headers.items()}
    assert "lambda-runtime-client-context" not in headers
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")


async def test_response_too_large_is_an_error_for_the_caller_and_the_task_is_replaced(
    harness: Harness,
) -> None:
    harness.engine.register("fn", FakeFunction(handler=returns(b"x" * 6_291_557)))
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert (result.function_error, result.error_type) == ("Unhandled", "Function.ResponseSizeTooLarge")
    assert json.loads(result.payload)["errorMessage"] == (
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes)."
    )
    await harness.engine.wait_until(lambda: not harness.engine.containers)


async def test_a_response_at_the_limit_is_accepted(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(handler=returns(b"x" * 6_291_556)))
    controller = await harness.start()
    result = await invoke(controller, make_version())
    assert result.function_error is None and len(result.payload) == 6_291_556


async def test_invoking_a_closed_controller_fails_cleanly(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start()
    busy = asyncio.create_task(invoke(controller, make_version()))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    await controller.close()
    with pytest.raises(ServiceUnavailable):  # ended by the shutdown (503), not left hanging
        await busy
    assert not harness.engine.running()
    with pytest.raises(ServiceUnavailable):
        await invoke(controller, make_version())


async def test_a_draining_controller_refuses_new_calls_and_finishes_those_under_way(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start()
    busy = asyncio.create_task(invoke(controller, make_version(), b'"under way"'))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    controller.begin_drain()
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        await invoke(controller, make_version())
    gate.set()
    assert (await busy).payload == b'"under way"'


async def test_ending_invocations_in_flight_answers_their_callers_and_stops_their_tasks(
    harness: Harness,
) -> None:
    harness.engine.register("stuck", FakeFunction(handler=hangs()))
    controller = await harness.start(default_concurrency=1, queue_timeout_s=30)
    calls = [asyncio.create_task(invoke(controller, make_version("stuck"))) for _ in range(2)]
    await harness.engine.wait_until(lambda: any(c.requests for c in harness.engine.containers.values()))
    await settle(lambda: harness.metric("fnplat_queue_depth", function="stuck") == 1)
    controller.begin_drain()
    assert controller.end_in_flight() == 1  # one running; the queued one fails too
    for call in calls:
        with pytest.raises(ServiceUnavailable):
            await call
    await harness.engine.wait_until(lambda: not harness.engine.running())


async def test_fake_exit_type_is_usable_directly(harness: Harness) -> None:
    async def dies(event: bytes, ctx: FakeContext) -> bytes:
        raise FakeExit(9)

    harness.engine.register("fn", FakeFunction(handler=dies))
    controller = await harness.start()
    assert "exit status 9" in json.loads((await invoke(controller, make_version())).payload)["errorMessage"]


async def test_a_new_version_takes_the_slot_of_an_idle_old_one(harness: Harness) -> None:
    controller = await harness.start(default_concurrency=1)
    await invoke(controller, make_version(version=1))
    result = await invoke(controller, make_version(version=2))  # at the limit, v1 idles: evicted
    assert result.function_error is None
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)
    assert [t.version for t in controller.tasks()] == [2]


async def test_a_queued_version_gets_the_slot_when_the_old_versions_task_goes_idle(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=1, queue_timeout_s=5)
    old = asyncio.create_task(invoke(controller, make_version(version=1)))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    new = asyncio.create_task(invoke(controller, make_version(version=2)))
    await settle(lambda: harness.metric("fnplat_queue_depth", function="fn") == 1)
    gate.set()  # v1's task goes idle; v2's waiter evicts it and starts its own
    await old
    assert (await new).function_error is None
    await harness.engine.wait_until(lambda: len(harness.engine.killed) == 1)
    assert [t.version for t in controller.tasks()] == [2]


async def test_a_request_waiting_for_memory_evicts_a_task_that_goes_idle(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("a", gated(gate, entered))
    controller = await harness.start(task_memory_capacity_mb=256, queue_timeout_s=5)
    busy = asyncio.create_task(invoke(controller, make_version("a", memory=256)))
    await harness.engine.wait_until(lambda: len(entered) == 1)
    waiting = asyncio.create_task(invoke(controller, make_version("b", memory=256)))
    await settle(lambda: harness.metric("fnplat_queue_depth", function="b") == 1)
    gate.set()
    await busy
    assert (await waiting).function_error is None
    assert [t.function_name for t in controller.tasks()] == ["b"]


async def test_burst_of_100_concurrent_invocations_from_zero(harness: Harness) -> None:
    gate, entered = asyncio.Event(), list[str]()
    harness.engine.register("fn", gated(gate, entered))
    controller = await harness.start(default_concurrency=100, task_memory_capacity_mb=100 * 128)
    fn = make_version()
    calls = [asyncio.create_task(invoke(controller, fn, f'"{i}"'.encode())) for i in range(100)]
    await harness.engine.wait_until(lambda: len(entered) == 100, within_s=15)
    gate.set()
    results = await asyncio.gather(*calls)
    assert sorted(r.payload for r in results) == sorted(f'"{i}"'.encode() for i in range(100))
    assert all(r.function_error is None for r in results)
    assert len(controller.tasks()) == 100
