"""Every task of this controller: launching and stopping containers, host-wide capacity (memory,
per-function task counts), task lookup by address and container, exits, init, reaping, eviction.

Implements `pool.PoolHost` for the version pools and `runtime_api.RuntimeHooks` for the Runtime
API. The only module besides the engine itself that calls the engine for tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fnplat.config import ControllerSettings
from fnplat.controller import outcomes
from fnplat.controller.addresses import AddressAllocator
from fnplat.controller.engine import (
    LABEL_TASK,
    ContainerEngine,
    ContainerExit,
    ContainerState,
    NetworkInfo,
    TaskDefinition,
)
from fnplat.controller.pool import TaskInitFailed, VersionPool
from fnplat.controller.scheduling import (
    Decision,
    EvictionCandidate,
    PoolSnapshot,
    select_evictions,
    select_reap,
)
from fnplat.controller.task import Invocation, Task, TaskState
from fnplat.controller.taskdef import compile_task_definition
from fnplat.domain import LATEST, FunctionVersion
from fnplat.errors import EngineError, FnplatError, ServiceError, ServiceUnavailable
from fnplat.invocation import InvocationResult
from fnplat.metrics import Metrics

log = logging.getLogger(__name__)

_EARLY_EXITS_KEPT = 256


@dataclass(frozen=True, slots=True)
class Reconciled:
    alive: list[str]  # containers of live tasks, still running
    dead: int  # live tasks whose container was gone or stopped: now ended
    strays: list[str]  # containers of ours that no task owns: to remove


def host_memory_capacity_mb(settings: ControllerSettings) -> int:
    """Memory tasks may use: the setting, or 80 % of this host's memory."""
    if settings.task_memory_capacity_mb > 0:
        return settings.task_memory_capacity_mb
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * 0.8) // (1024 * 1024)


class Fleet:
    def __init__(
        self,
        engine: ContainerEngine,
        settings: ControllerSettings,
        *,
        region: str,
        code_dir_for: Callable[[FunctionVersion], Path | None],
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.by_ip: dict[str, Task] = {}  # tasks the Runtime API answers (not stopping ones)
        self.by_container: dict[str, Task] = {}
        self.memory_capacity_mb = host_memory_capacity_mb(settings)
        self.memory_in_use_mb = 0
        self._engine = engine
        self._settings = settings
        self._region = region
        self._code_dir_for = code_dir_for
        self._metrics = metrics
        self._clock = clock
        self._pools: dict[str, VersionPool] = {}  # by version key
        self._pools_by_function: dict[str, list[VersionPool]] = {}
        self._pool_of: dict[Task, VersionPool] = {}
        self._function_tasks: dict[str, int] = {}  # live (not stopping) tasks per function
        self._slot_released: set[Task] = set()  # stopping tasks whose slot is already free
        self._taskdefs: dict[str, TaskDefinition] = {}
        self._init_timers: dict[Task, asyncio.TimerHandle] = {}
        self._early_exits: OrderedDict[str, ContainerExit] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._addresses: AddressAllocator | None = None
        self._runtime_api = ""
        self._closing = False
        self._waiters_total = 0  # invocations queued in all pools
        self._removed: set[str] = set()  # functions removed whose pools are still winding down
        # While the engine's event stream is broken, exits may be missed: invocations wait (up to
        # engine_resync_wait_s after the break) for reconcile() before trusting warm tasks.
        self.engine_in_sync = True
        self._resynced: asyncio.Event | None = None
        self._lost_at = 0.0  # controller clock

    def attach(self, network: NetworkInfo, runtime_api_address: str) -> None:
        """Where tasks live and where their Runtime API is; called once by the controller's start()."""
        self._addresses = AddressAllocator(network.subnet, network.gateway_ip)
        self._runtime_api = runtime_api_address

    # -- pools --------------------------------------------------------------------------------
    def pool_for(self, version: FunctionVersion) -> VersionPool:
        pool = self._pools.get(version.key)
        if pool is None:
            pool = VersionPool(
                version,
                self,
                queue_timeout_s=self._settings.queue_timeout_s,
                max_queue_length=self._settings.max_queue_length,
                clock=self._clock,
                metrics=self._metrics,
            )
            self._pools[version.key] = pool
            self._pools_by_function.setdefault(version.function_name, []).append(pool)
        return pool

    def all_tasks(self) -> list[Task]:
        return [task for pool in self._pools.values() for task in pool.tasks()]

    def function_tasks(self, function_name: str) -> int:
        return self._function_tasks.get(function_name, 0)

    def tracked_functions(self) -> set[str]:
        """Every function this fleet keeps anything for (pools, task counters, a pending removal)."""
        return {*self._pools_by_function, *self._function_tasks, *self._removed}

    # -- PoolHost ----------------------------------------------------------------------------
    def snapshot(self, pool: VersionPool) -> PoolSnapshot:
        version = pool.version
        fn = version.function_name
        needed = version.memory
        in_use = self.memory_in_use_mb
        # Only worth adding up when memory is short (this is the cold path, but keep it short).
        evictable = self._evictable_memory(fn) if in_use + needed > self.memory_capacity_mb else 0
        return PoolSnapshot(
            idle=len(pool.idle),
            starting=len(pool.starting),
            busy=len(pool.busy),
            waiters=pool.waiting,
            max_waiters=self._settings.max_queue_length,
            function_tasks=self._function_tasks.get(fn, 0),
            function_limit=self._settings.default_concurrency,
            function_idle_elsewhere=sum(
                len(p.idle) for p in self._pools_by_function.get(fn, ()) if p is not pool
            ),
            memory_in_use_mb=in_use,
            memory_needed_mb=needed,
            memory_capacity_mb=self.memory_capacity_mb,
            memory_evictable_mb=evictable,
        )

    def launch(self, pool: VersionPool, decision: Decision, owner: asyncio.Future[Task] | None) -> None:
        if self._addresses is None or self._closing:
            raise ServiceError("the controller is not running")
        version = pool.version
        fn = version.function_name
        if decision.evict_own_function:
            self._evict_own_function(pool)
        if decision.evict_memory_mb:
            self._evict_memory(fn, decision.evict_memory_mb)
        ip = self._addresses.allocate(isolated=version.network == "none")
        task = Task(
            task_id=secrets.token_hex(6),
            version=version,
            ip=ip,
            created=time.perf_counter(),
            created_wall=time.time(),
            last_used=self._clock(),
        )
        self.by_ip[ip] = task
        self._pool_of[task] = pool
        self._function_tasks[fn] = self._function_tasks.get(fn, 0) + 1
        self.memory_in_use_mb += version.memory
        pool.track_starting(task, owner)
        self._metrics.cold_starts.labels(fn).inc()
        self._spawn(self._start(pool, task))

    def stop(self, task: Task) -> None:
        """Take a task out of service now and kill its container in the background."""
        if task.state is TaskState.STOPPING or task.state is TaskState.STOPPED:
            return
        pool = self._pool_of[task]
        pool.move(task, TaskState.STOPPING)
        # A stopping task serves nobody: its concurrency slot is free now, while its memory and
        # address stay taken until the container is gone.
        self._release_slot(task)
        if self._waiters_total and not self._closing:
            # Not re-entrant from here (stop() runs inside pool operations): pump on the next tick.
            asyncio.get_running_loop().call_soon(lambda: None if self._closing else self._pump(None))
        if self.by_ip.get(task.ip) is task:
            del self.by_ip[task.ip]  # from now on the Runtime API does not know it
        timer = self._init_timers.pop(task, None)
        if timer is not None:
            timer.cancel()
        task.wake_runtime()  # its pending `next` answers 500: the runtime should exit
        if task.handle is not None:
            self._spawn(self._kill(task))
        # else: engine.run() is still in flight; _start() finishes the job when it returns.

    def waiters_changed(self, delta: int) -> None:
        self._waiters_total += delta

    def may_serve_again(self, pool: VersionPool) -> bool:
        # A version retired by a newer deploy may still be invoked; a removed function may not
        # come back through an invocation that was under way when it was removed.
        return pool.version.function_name not in self._removed

    async def wait_engine_in_sync(self) -> None:
        """Wait until reconcile() ran after the event stream broke, for at most what remains of
        engine_resync_wait_s since the break: past that, warm tasks are trusted as they are
        (with dockerd's live-restore they still run; without, their calls time out)."""
        remaining = self._settings.engine_resync_wait_s - (self._clock() - self._lost_at)
        if self._resynced is None or remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await self._resynced.wait()

    def task_idle(self, pool: VersionPool) -> None:
        if self._waiters_total:  # rare: someone is queued for a slot or for memory
            self._pump(exclude=pool)

    # -- RuntimeHooks -------------------------------------------------------------------------
    def on_first_next(self, task: Task) -> None:
        if task.state is not TaskState.STARTING:
            return
        timer = self._init_timers.pop(task, None)
        if timer is not None:
            timer.cancel()
        task.ready_at = time.perf_counter()
        task.init_duration_ms = (task.ready_at - task.created) * 1000.0
        self._metrics.init_duration.labels(task.function_name).observe(task.init_duration_ms / 1000.0)
        self._pool_of[task].on_ready(task)
        if task.handle is not None:  # else engine.run() has not returned yet: _start() does it
            self._limit_cpu_after_init(task)

    def on_init_error(self, task: Task, body: bytes, error_type: str | None) -> bool:
        if task.state is not TaskState.STARTING:
            return False
        result = outcomes.init_failed(body, error_type, self._init_elapsed_ms(task))
        self._pool_of[task].on_start_failed(task, TaskInitFailed(result))
        self.stop(task)
        return True

    # -- engine events ------------------------------------------------------------------------
    def on_exit(self, event: ContainerExit) -> None:
        task = self.by_container.get(event.container_id)
        if task is None:
            # Possibly a container that died before engine.run() returned its id to us.
            self._early_exits[event.container_id] = event
            while len(self._early_exits) > _EARLY_EXITS_KEPT:
                self._early_exits.popitem(last=False)
            return
        state = task.state
        if state is TaskState.STOPPING or state is TaskState.STOPPED:
            # We are killing it; an invocation it was still running ends with its exit (a task is
            # stopped under a running invocation when, say, its CPU limit cannot be set because
            # it has just died: the death is then this exit, and nothing else answers the caller).
            if task.current is not None:
                task.complete(self._exit_result(task.current, event), unhealthy=True)
            return
        if state is TaskState.STARTING:
            result = outcomes.exited_during_init(
                event.exit_code, event.oom_killed, task.version.memory, self._init_elapsed_ms(task)
            )
            self._pool_of[task].on_start_failed(task, TaskInitFailed(result))
        elif state is TaskState.BUSY and task.current is not None:
            task.complete(self._exit_result(task.current, event), unhealthy=True)
        self.stop(task)

    @staticmethod
    def _exit_result(invocation: Invocation, event: ContainerExit) -> InvocationResult:
        if event.oom_killed:
            return outcomes.out_of_memory(invocation)
        return outcomes.exited(invocation, event.exit_code)

    def engine_lost(self) -> None:
        """The engine's event stream broke: until reconcile(), deaths may go unseen."""
        if self.engine_in_sync:
            self.engine_in_sync = False
            self._resynced = asyncio.Event()
            self._lost_at = self._clock()

    def reconcile_candidates(self) -> dict[str, Task]:
        """The tasks a container listing taken from now on can judge: those whose container id
        is known. A task whose engine.run() is still in flight is not one of them: a listing made
        before its container exists would wrongly call it gone."""
        return dict(self.by_container)

    def reconcile(self, candidates: dict[str, Task], states: list[ContainerState]) -> Reconciled:
        """Treat candidates whose container is gone or not running as exited (their death was
        missed). Returns the ids of the ones still running (to follow their output again), and
        of listed containers no task of ours owns any more (a kill that failed while the engine
        was away), to remove."""
        listed = {state.container_id: state for state in states}
        alive = []
        dead = 0
        for container_id, task in candidates.items():
            if task.state is TaskState.STOPPING or task.state is TaskState.STOPPED:
                continue
            if self.by_container.get(container_id) is not task:
                continue
            state = listed.get(container_id)
            if state is not None and state.running:
                alive.append(container_id)
                continue
            exit_code, oom = (state.exit_code, state.oom_killed) if state is not None else (-1, False)
            log.warning(
                "task %s of %s: its container %s while the engine's events were missed",
                task.task_id,
                task.function_name,
                "is gone" if state is None else f"exited ({exit_code})",
            )
            dead += 1
            self.on_exit(ContainerExit(container_id, exit_code, oom))
        # Any task we still have, starting ones included, owns its container (or will shortly).
        ours = {task.task_id for task in self.all_tasks()}
        strays = [s.container_id for s in states if s.task_id not in ours]
        return Reconciled(alive, dead, strays)

    def engine_synced(self) -> None:
        """reconcile() has run (and the reconnect hooks): invocations stop waiting."""
        self.engine_in_sync = True
        if self._resynced is not None:
            self._resynced.set()
            self._resynced = None

    # -- policies -----------------------------------------------------------------------------
    def reap_idle(self) -> int:
        """Stop tasks idle for longer than keep-alive; returns how many."""
        now = self._clock()
        keep_alive = self._settings.keep_alive_s
        victims = [
            task
            for pool in list(self._pools.values())
            for task in select_reap([(t, t.last_used) for t in pool.idle], now, keep_alive)
        ]
        for task in victims:
            self.stop(task)
        return len(victims)

    def retire(self, function_name: str, keep_version: int | None) -> None:
        """Retire the function's pools but `keep_version`'s; None: the function was removed, and
        once its last task is gone nothing of it remains (pools, counters, metric series)."""
        if keep_version is None:
            self._removed.add(function_name)
        else:
            self._removed.discard(function_name)
        for pool in list(self._pools_by_function.get(function_name, ())):
            if pool.version.version != keep_version:
                pool.retire()
                self._drop_if_empty(pool)
        self._forget_if_gone(function_name)

    def end_in_flight(self, error: Exception) -> int:
        """End every invocation that is running or waiting for a task with `error`, and stop the
        tasks running them; returns how many were running."""
        for pool in list(self._pools.values()):
            pool.fail_waiters(error)
        ended = 0
        for task in self.all_tasks():
            if task.abort(error):
                ended += 1
                self.stop(task)
        return ended

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop every task and wait until their containers are gone, for at most `timeout_s`:
        a container left after that is removed by its labels on the next start."""
        self._closing = True
        closing = ServiceUnavailable("the platform is shutting down; retry shortly")
        self.end_in_flight(closing)
        for task in self.all_tasks():
            if task.state is TaskState.STARTING:
                self._pool_of[task].on_start_failed(task, closing)
            self.stop(task)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._background:
                    await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._background:
            log.warning(
                "%d tasks were still stopping after %.0f s; the next start removes them",
                len(self._background),
                timeout_s or 0,
            )

    # -- internals ------------------------------------------------------------------------------
    async def _start(self, pool: VersionPool, task: Task) -> None:
        version = pool.version
        try:
            taskdef = await self._taskdef(version)
            environment = {
                "AWS_LAMBDA_RUNTIME_API": self._runtime_api,
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[{LATEST}]{task.task_id}",
            }
            taskdef = replace(taskdef, labels={**taskdef.labels, LABEL_TASK: task.task_id})
            name = f"fnplat-{version.function_name}-{version.version}-{task.task_id}"
            task.handle = await self._engine.run(taskdef, name, task.ip, environment)
        except Exception as exc:
            error = exc if isinstance(exc, FnplatError) else EngineError(f"starting a task failed: {exc}")
            if task.state is TaskState.STARTING:
                pool.on_start_failed(task, error)
            self.stop(task)
            self._finalize(task)
            return
        container_id = task.handle.container_id
        self.by_container[container_id] = task
        if task.state is TaskState.STOPPING:  # stopped while the engine was starting it
            await self._kill(task)
            return
        early = self._early_exits.pop(container_id, None)
        if early is not None:
            self.on_exit(early)
            return
        if task.ready_at is not None:  # its first `next` came before engine.run() returned
            self._limit_cpu_after_init(task)
        if task.state is TaskState.STARTING:
            loop = asyncio.get_running_loop()
            self._init_timers[task] = loop.call_later(
                self._settings.init_timeout_s, self._init_timed_out, task
            )
        try:
            await self._engine.follow_output(container_id, task.function_name)
        except FnplatError as exc:  # logs are lost, the task still works
            log.warning("cannot follow the output of task %s: %s", task.task_id, exc)

    async def _taskdef(self, version: FunctionVersion) -> TaskDefinition:
        taskdef = self._taskdefs.get(version.key)
        if taskdef is None:
            # Unpacking an artifact may touch the disk: keep it off the event loop.
            code_dir = await asyncio.to_thread(self._code_dir_for, version)
            taskdef = compile_task_definition(version, code_dir, self._settings, self._region)
            self._taskdefs[version.key] = taskdef
        return taskdef

    def _limit_cpu_after_init(self, task: Task) -> None:
        """Init ran unthrottled (as Lambda's); from now on the task gets its share (taskdef.py)."""
        taskdef = self._taskdefs.get(task.version.key)
        if taskdef is None or taskdef.cpus is None or not taskdef.cpu_limit_after_init:
            return
        assert task.handle is not None
        self._spawn(self._limit_cpu(task, task.handle.container_id, taskdef.cpus))

    async def _limit_cpu(self, task: Task, container_id: str, cpus: float) -> None:
        try:
            await self._engine.limit_cpu(container_id, cpus)
        except FnplatError as exc:
            if task.state is not TaskState.STOPPING and task.state is not TaskState.STOPPED:
                # Unconfined CPU would let it starve its neighbours: replace it.
                log.warning("could not limit the CPU of task %s, stopping it: %s", task.task_id, exc)
                self.stop(task)

    def _init_timed_out(self, task: Task) -> None:
        self._init_timers.pop(task, None)
        if task.state is not TaskState.STARTING:
            return
        result = outcomes.init_timed_out(self._settings.init_timeout_s, self._init_elapsed_ms(task))
        self._pool_of[task].on_start_failed(task, TaskInitFailed(result))
        self.stop(task)

    async def _kill(self, task: Task) -> None:
        try:
            if task.handle is not None:
                await self._engine.kill(task.handle.container_id)
        except Exception as exc:  # the engine will report it again as an orphan on the next start
            log.warning("killing task %s failed: %s", task.task_id, exc)
        finally:
            self._finalize(task)

    def _finalize(self, task: Task) -> None:
        """The container is gone: free its address, memory and concurrency slot."""
        if task.state is TaskState.STOPPED:
            return
        pool = self._pool_of.pop(task)
        pool.move(task, TaskState.STOPPED)
        if task.handle is not None and self.by_container.get(task.handle.container_id) is task:
            del self.by_container[task.handle.container_id]
        if self._addresses is not None:
            self._addresses.release(task.ip)
        self._release_slot(task)
        self._slot_released.discard(task)
        self.memory_in_use_mb -= task.version.memory
        self._drop_if_empty(pool)
        if self._waiters_total and not self._closing:
            self._pump(exclude=None)

    def _release_slot(self, task: Task) -> None:
        if task in self._slot_released:
            return
        self._slot_released.add(task)
        self._function_tasks[task.function_name] -= 1

    def _pump(self, exclude: VersionPool | None) -> None:
        """Start tasks for pools with queued invocations that nothing is starting for yet."""
        for pool in list(self._pools.values()):
            if pool is not exclude and pool.waiting > len(pool.starting):
                pool.pump()

    def _drop_if_empty(self, pool: VersionPool) -> None:
        if pool.retired and pool.is_empty and self._pools.get(pool.version.key) is pool:
            del self._pools[pool.version.key]
            self._pools_by_function[pool.version.function_name].remove(pool)
            self._taskdefs.pop(pool.version.key, None)
            self._forget_if_gone(pool.version.function_name)

    def _forget_if_gone(self, function_name: str) -> None:
        """A removed function whose last pool is gone leaves nothing behind."""
        if function_name not in self._removed or self._pools_by_function.get(function_name):
            return
        self._removed.discard(function_name)
        self._pools_by_function.pop(function_name, None)
        if not self._function_tasks.get(function_name):
            self._function_tasks.pop(function_name, None)
        self._metrics.forget_function(function_name)

    def _evict_own_function(self, pool: VersionPool) -> None:
        candidates = [
            task
            for other in self._pools_by_function.get(pool.version.function_name, ())
            if other is not pool
            for task in other.idle
        ]
        if candidates:
            self.stop(min(candidates, key=lambda t: t.last_used))

    def _evictable(self, function_name: str) -> list[EvictionCandidate[Task]]:
        return [
            EvictionCandidate(task, task.version.memory, task.last_used)
            for fn, pools in self._pools_by_function.items()
            if fn != function_name
            for pool in pools
            for task in pool.idle
        ]

    def _evictable_memory(self, function_name: str) -> int:
        return sum(c.memory_mb for c in self._evictable(function_name))

    def _evict_memory(self, function_name: str, needed_mb: int) -> None:
        for task in select_evictions(self._evictable(function_name), needed_mb):
            self.stop(task)

    def _init_elapsed_ms(self, task: Task) -> float:
        return (time.perf_counter() - task.created) * 1000.0

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(job)
        job.add_done_callback(self._background.discard)
