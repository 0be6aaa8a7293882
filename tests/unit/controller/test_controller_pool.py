"""The version pool against a stub host: leases, hand-over order, start failures, retirement."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from controller_harness import make_version, settle

from fnplat.controller.pool import TaskInitFailed, VersionPool
from fnplat.controller.scheduling import Decision, PoolSnapshot
from fnplat.controller.task import IllegalTransition, Task, TaskState
from fnplat.errors import EngineError, TooManyRequests
from fnplat.invocation import InvocationResult
from fnplat.metrics import Metrics


class StubHost:
    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.launched: list[Task] = []
        self.stopped: list[Task] = []
        self.pool: VersionPool | None = None
        self.waiters = 0
        self.idled = 0
        self._ids = itertools.count(1)

    def snapshot(self, pool: VersionPool) -> PoolSnapshot:
        return PoolSnapshot(
            idle=len(pool.idle),
            starting=len(pool.starting),
            busy=len(pool.busy),
            waiters=pool.waiting,
            max_waiters=10,
            function_tasks=pool.live,
            function_limit=self.limit,
            function_idle_elsewhere=0,
            memory_in_use_mb=0,
            memory_needed_mb=128,
            memory_capacity_mb=1 << 20,
            memory_evictable_mb=0,
        )

    def launch(self, pool: VersionPool, decision: Decision, owner: asyncio.Future[Task] | None) -> None:
        n = next(self._ids)
        task = Task(f"t{n}", pool.version, f"10.0.0.{n}", 0.0, 0.0, 0.0)
        pool.track_starting(task, owner)
        self.launched.append(task)

    def stop(self, task: Task) -> None:
        assert self.pool is not None
        self.pool.move(task, TaskState.STOPPING)
        self.stopped.append(task)

    def waiters_changed(self, delta: int) -> None:
        self.waiters += delta
        assert self.waiters >= 0

    def task_idle(self, pool: VersionPool) -> None:
        self.idled += 1

    def may_serve_again(self, pool: VersionPool) -> bool:
        return True

    engine_in_sync = True

    async def wait_engine_in_sync(self) -> None:
        return None


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def make_pool(host: StubHost, queue_timeout_s: float = 5.0) -> tuple[VersionPool, Clock]:
    clock = Clock()
    pool = VersionPool(
        make_version(),
        host,
        queue_timeout_s=queue_timeout_s,
        max_queue_length=10,
        clock=clock,
        metrics=Metrics(),
    )
    host.pool = pool
    return pool, clock


async def test_cold_start_then_warm_lease() -> None:
    host = StubHost()
    pool, _ = make_pool(host)
    acquiring = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    [task] = host.launched
    assert pool.starting == {task}
    pool.on_ready(task)
    assert await acquiring is task
    assert pool.busy == {task}
    pool.release(task)
    assert pool.idle == [task] and not pool.busy
    assert await pool.acquire() is task  # warm: no second launch
    assert len(host.launched) == 1


async def test_the_lease_is_released_when_the_block_raises() -> None:
    host = StubHost()
    pool, _ = make_pool(host)
    acquiring = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    pool.on_ready(host.launched[0])
    pool.release(await acquiring)
    with pytest.raises(RuntimeError, match="handler bug"):
        async with pool.lease() as task:
            assert task.state is TaskState.BUSY
            raise RuntimeError("handler bug")
    assert task.state is TaskState.IDLE and pool.idle == [task]


async def test_the_most_recently_used_idle_task_is_used_first() -> None:
    host = StubHost()
    pool, clock = make_pool(host)
    calls = [asyncio.create_task(pool.acquire()) for _ in range(3)]
    await settle(lambda: len(host.launched) == 3)
    for task in host.launched:
        pool.on_ready(task)
    tasks = [await c for c in calls]
    for i, task in enumerate(tasks):
        clock.now = float(i)
        pool.release(task)
    assert await pool.acquire() is tasks[-1]


async def test_start_failure_goes_to_the_invocation_that_asked_for_the_task() -> None:
    host = StubHost()
    pool, _ = make_pool(host)
    acquiring = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    failure = TaskInitFailed(
        InvocationResult(payload=b"{}", function_error="Unhandled", error_type="Runtime.X")
    )
    pool.on_start_failed(host.launched[0], failure)
    with pytest.raises(TaskInitFailed) as raised:
        await acquiring
    assert raised.value.result.error_type == "Runtime.X"
    assert pool.waiting == 0


async def test_start_failure_of_a_task_nobody_needs_any_more_fails_no_one() -> None:
    host = StubHost(limit=1)
    pool, _ = make_pool(host)
    first = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    [task] = host.launched
    pool.on_ready(task)
    assert await first is task
    # a cold start whose owner was already served elsewhere fails quietly
    pool.track_starting(Task("spare", pool.version, "10.0.0.99", 0.0, 0.0, 0.0), None)
    pool.on_start_failed(next(iter(pool.starting)), EngineError("no image"))
    assert pool.waiting == 0


async def test_waiting_is_bounded_and_released_tasks_go_to_waiters_in_order() -> None:
    host = StubHost(limit=1)
    pool, _ = make_pool(host, queue_timeout_s=0.05)
    first = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    [task] = host.launched
    pool.on_ready(task)
    await first
    with pytest.raises(TooManyRequests):
        await pool.acquire()  # at the limit, nothing comes free within the queue timeout
    assert pool.waiting == 0


async def test_a_cancelled_waiter_gives_back_a_task_handed_to_it() -> None:
    host = StubHost(limit=1)
    pool, _ = make_pool(host)
    first = asyncio.create_task(pool.acquire())
    await settle(lambda: len(host.launched) == 1)
    [task] = host.launched
    pool.on_ready(task)
    await first
    second = asyncio.create_task(pool.acquire())
    await settle(lambda: pool.waiting == 1)
    pool.release(task)  # handed to `second`...
    second.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await second
    assert task.state is TaskState.IDLE and pool.idle == [task]


async def test_retire_stops_idle_tasks_and_tasks_released_later() -> None:
    host = StubHost()
    pool, _ = make_pool(host)
    calls = [asyncio.create_task(pool.acquire()) for _ in range(2)]
    await settle(lambda: len(host.launched) == 2)
    for task in host.launched:
        pool.on_ready(task)
    idle_one, busy_one = [await c for c in calls]
    pool.release(idle_one)
    pool.retire()
    assert host.stopped == [idle_one]
    pool.release(busy_one)
    assert host.stopped == [idle_one, busy_one]


async def test_illegal_bookkeeping_raises() -> None:
    host = StubHost()
    pool, _ = make_pool(host)
    task = Task("t", pool.version, "10.0.0.1", 0.0, 0.0, 0.0)
    pool.track_starting(task, None)
    with pytest.raises(IllegalTransition):
        pool.move(task, TaskState.BUSY)  # a starting task must become ready first
