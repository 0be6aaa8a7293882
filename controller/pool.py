"""The warm pool of one function version (ECS: a service): idle tasks, a FIFO of waiting
invocations, and leases that always come back.

Decisions come from `scheduling` (pure); task launches, stops and host-wide capacity come from
the `PoolHost` (the fleet). Every state change of a task goes through `VersionPool.move`, which
keeps the per-state collections, the task's own state and the gauges in step.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from fnplat.controller.scheduling import Action, Decision, PoolSnapshot, cold_start_capacity, decide
from fnplat.controller.task import Task, TaskState
from fnplat.domain import FunctionVersion
from fnplat.errors import FnplatError, TooManyRequests
from fnplat.invocation import InvocationResult
from fnplat.metrics import Metrics


class TaskInitFailed(Exception):
    """The task started for an invocation failed before it was ready (init error, init timeout,
    exit during init): Lambda serves that failure as the invocation's result."""

    def __init__(self, result: InvocationResult) -> None:
        super().__init__(result.error_type or "init failed")
        self.result = result


class PoolHost(Protocol):
    """What a pool needs from the host-wide fleet."""

    def snapshot(self, pool: VersionPool) -> PoolSnapshot: ...

    def launch(self, pool: VersionPool, decision: Decision, owner: asyncio.Future[Task] | None) -> None:
        """Start a task for `pool` (evicting first as `decision` says); it calls `pool.track_starting`."""
        ...

    def stop(self, task: Task) -> None: ...

    def waiters_changed(self, delta: int) -> None:
        """Invocations queued in some pool went up or down by delta (host-wide bookkeeping)."""
        ...

    def may_serve_again(self, pool: VersionPool) -> bool:
        """Someone invokes a retired pool's version: may it take tasks again?"""
        ...

    @property
    def engine_in_sync(self) -> bool:
        """False while the container engine's state may have changed unseen (tasks may be dead)."""
        ...

    async def wait_engine_in_sync(self) -> None:
        """Wait (bounded) until the engine's state has been checked again."""
        ...

    def task_idle(self, pool: VersionPool) -> None:
        """A task of `pool` went idle with nobody waiting for it: other pools' waiters may use its
        slot or memory (by evicting it)."""
        ...


Waiter = asyncio.Future[Task]


class VersionPool:
    def __init__(
        self,
        version: FunctionVersion,
        host: PoolHost,
        *,
        queue_timeout_s: float,
        max_queue_length: int,
        clock: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self.version = version
        self.retired = False  # a newer version replaced this one: released tasks stop instead of idling
        self.idle: list[Task] = []  # in release order: the last one is the most recently used
        self.busy: set[Task] = set()
        self.starting: set[Task] = set()
        self.stopping: set[Task] = set()
        self._host = host
        self._queue_timeout_s = queue_timeout_s
        self._max_queue_length = max_queue_length
        self._clock = clock
        self._waiters: deque[Waiter] = deque()
        self._owners: dict[Task, Waiter] = {}  # cold-started task -> the waiter that asked for it
        fn = version.function_name
        self._state_gauges = {
            state: metrics.tasks.labels(fn, state.value)
            for state in (TaskState.STARTING, TaskState.IDLE, TaskState.BUSY, TaskState.STOPPING)
        }
        self._busy_gauge = metrics.concurrent_executions.labels(fn)
        self._queue_gauge = metrics.queue_depth.labels(fn)

    # -- what the scheduler sees ------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def live(self) -> int:
        return len(self.idle) + len(self.busy) + len(self.starting)

    @property
    def is_empty(self) -> bool:
        return not (self.live or self.stopping or self._waiters)

    def tasks(self) -> list[Task]:
        return [*self.starting, *self.idle, *self.busy, *self.stopping]

    # -- leases -----------------------------------------------------------------------------
    def lease(self) -> Lease:
        """`async with pool.lease() as task:` acquires a task and always releases it."""
        return Lease(self)

    async def acquire(self) -> Task:
        """A task leased to the caller (BUSY). Raises TooManyRequests when throttled, TaskInitFailed
        when the task started for it failed its init, EngineError when it could not be started."""
        if self.retired:  # someone still invokes this version
            self.retired = not self._host.may_serve_again(self)
        if not self._host.engine_in_sync:  # rare: dockerd restarting, idle tasks may be dead
            await self._host.wait_engine_in_sync()
        if self.idle:  # the warm path; the same rule decide() starts with
            return self._lease_idle()
        decision = decide(self._host.snapshot(self))
        action = decision.action
        if action is Action.USE_IDLE:
            return self._lease_idle()
        if action is Action.THROTTLE:
            raise TooManyRequests(
                f"Rate Exceeded: function {self.version.function_name} is at its concurrency limit"
            )
        waiter = self._enqueue()
        if action is Action.COLD_START:
            try:
                self._host.launch(self, decision, waiter)
            except BaseException:
                self._discard(waiter)
                raise
        # The bounded wait applies to waiting for capacity. A caller whose own cold start is under
        # way waits for it: the fleet's init timeout bounds that, and a failure reaches it.
        return await self._wait(waiter, bounded=action is not Action.COLD_START)

    def release(self, task: Task) -> None:
        """Give a leased task back: to the first waiter, else to the idle list. A task that was
        stopped while leased (timeout, crash) is already out of the pool."""
        if task.state is not TaskState.BUSY:
            return
        task.last_used = self._clock()
        task.used_wall = time.time()
        self.move(task, TaskState.IDLE)
        self._offer(task)

    # -- task life cycle, driven by the fleet ------------------------------------------------
    def track_starting(self, task: Task, owner: Waiter | None) -> None:
        self.starting.add(task)
        self._state_gauges[TaskState.STARTING].inc()
        if owner is not None:
            self._owners[task] = owner

    def on_ready(self, task: Task) -> None:
        """The task's runtime asked for its first event: it serves the first waiter, or idles."""
        self._owners.pop(task, None)
        task.last_used = self._clock()
        self.move(task, TaskState.IDLE)
        self._offer(task)

    def on_start_failed(self, task: Task, error: Exception) -> None:
        """A starting task will never be ready: its failure goes to the invocation that asked for
        it, or (if that one was served by another task) to the first waiter nothing else serves."""
        owner = self._owners.pop(task, None)
        target: Waiter | None = None
        if owner is not None and not owner.done():
            target = owner
        else:
            others_starting = len(self.starting) - (1 if task in self.starting else 0)
            if len(self._waiters) > others_starting:
                target = next((w for w in self._waiters if not w.done()), None)
        if target is not None:
            self._discard(target)
            target.set_exception(error)

    def pump(self) -> None:
        """Capacity was freed somewhere: start tasks for waiters nothing is starting for yet."""
        while len(self._waiters) > len(self.starting):
            decision = cold_start_capacity(self._host.snapshot(self))
            if decision is None:
                return
            try:
                self._host.launch(self, decision, None)
            except FnplatError as error:  # e.g. no free address: the head waiter learns why
                head = self._waiters[0]
                self._discard(head)
                head.set_exception(error)

    def retire(self) -> None:
        """Stop the idle tasks now; busy ones stop when released (unless someone is waiting)."""
        self.retired = True
        for task in list(self.idle):
            self._host.stop(task)

    def fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            self._queued(-1)
            if not waiter.done():
                waiter.set_exception(error)

    def move(self, task: Task, new: TaskState) -> None:
        """The one place a pooled task changes state."""
        old = task.move(new)
        if old is TaskState.IDLE:
            if self.idle and self.idle[-1] is task:
                self.idle.pop()
            else:
                self.idle.remove(task)
        elif old is TaskState.BUSY:
            self.busy.discard(task)
            self._busy_gauge.dec()
        elif old is TaskState.STARTING:
            self.starting.discard(task)
        elif old is TaskState.STOPPING:
            self.stopping.discard(task)
        self._state_gauges[old].dec()
        if new is TaskState.IDLE:
            self.idle.append(task)
        elif new is TaskState.BUSY:
            self.busy.add(task)
            self._busy_gauge.inc()
        elif new is TaskState.STOPPING:
            self.stopping.add(task)
        if new is not TaskState.STOPPED:
            self._state_gauges[new].inc()

    # -- internals ----------------------------------------------------------------------------
    def _lease_idle(self) -> Task:
        task = self.idle[-1]  # the most recently used: the others age out and the pool shrinks
        self.move(task, TaskState.BUSY)
        return task

    def _offer(self, task: Task) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            self._queued(-1)
            if not waiter.done():
                self.move(task, TaskState.BUSY)
                waiter.set_result(task)
                return
        if self.retired:
            self._host.stop(task)
        else:
            self._host.task_idle(self)

    def _enqueue(self) -> Waiter:
        waiter: Waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._queued(1)
        return waiter

    def _discard(self, waiter: Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return
        self._queued(-1)

    def _queued(self, delta: int) -> None:
        self._queue_gauge.inc(delta)
        self._host.waiters_changed(delta)

    def _expire(self, waiter: Waiter) -> None:
        if not waiter.done():
            self._discard(waiter)
            waiter.set_exception(
                TooManyRequests(
                    f"Rate Exceeded: no task of {self.version.function_name} came free within "
                    f"{self._queue_timeout_s:g} s"
                )
            )

    async def _wait(self, waiter: Waiter, *, bounded: bool) -> Task:
        timer = (
            asyncio.get_running_loop().call_later(self._queue_timeout_s, self._expire, waiter)
            if bounded
            else None
        )
        try:
            return await waiter
        except asyncio.CancelledError:
            # Our caller went away. A task handed over at that same moment goes back to the pool.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())
            self._discard(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()


class Lease:
    __slots__ = ("_pool", "_task")

    def __init__(self, pool: VersionPool) -> None:
        self._pool = pool
        self._task: Task | None = None

    async def __aenter__(self) -> Task:
        self._task = await self._pool.acquire()
        return self._task

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._pool.release(self._task)
