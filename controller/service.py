"""The invoke service: `Controller` implements `fnplat.invocation.Invoker` on one host.

An invocation leases a task from its version's pool, hands the event to the task's runtime over
the Runtime API, waits for the answer or the deadline, and gives the task back. The invocation
record (which the START/END/REPORT lines are rendered from) and metrics are produced after the
caller has its result; the function's output lines go to the log sink as they arrive, through the
output gate (output_gate.py), which bounds what a function's output may cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fnplat.config import ControllerSettings
from fnplat.controller import outcomes
from fnplat.controller.engine import ContainerEngine
from fnplat.controller.fleet import Fleet
from fnplat.controller.netfilter import Firewall
from fnplat.controller.output_gate import OutputGate
from fnplat.controller.output_limits import DropNotice, OutputLimits
from fnplat.controller.pool import TaskInitFailed
from fnplat.controller.runtime_api import RuntimeApi, RuntimeApiServer
from fnplat.controller.task import Invocation, Task, TaskInfo
from fnplat.domain import FunctionVersion, InvocationRecord, LogEvent
from fnplat.errors import EngineError, FnplatError, ServiceError, ServiceUnavailable, TooManyRequests
from fnplat.invocation import InvocationRequest, InvocationResult
from fnplat.lambda_logs import billed_duration_ms
from fnplat.metrics import Metrics

log = logging.getLogger(__name__)

_OUTCOMES = {
    outcomes.TIMEOUT_TYPE: "timeout",
    outcomes.OOM_TYPE: "oom",
    outcomes.EXIT_TYPE: "crash",
}


# Something to run each time the container engine is back after its event stream broke.
ReconnectHook = Callable[[], Awaitable[None]]
RECONNECT_HOOK_TIMEOUT_S = 30.0
RELIST_RETRY_S = 1.0


class Controller:
    def __init__(
        self,
        engine: ContainerEngine,
        settings: ControllerSettings,
        *,
        region: str,
        code_dir_for: Callable[[FunctionVersion], Path | None],
        log_sink: Callable[[LogEvent], None],
        record_sink: Callable[[InvocationRecord], None],
        metrics: Metrics,
        firewall: Firewall,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._firewall = firewall
        self._settings = settings
        self._log_sink = log_sink
        self._record_sink = record_sink
        self._metrics = metrics
        self._fleet = Fleet(
            engine, settings, region=region, code_dir_for=code_dir_for, metrics=metrics, clock=clock
        )
        self._server = RuntimeApiServer(RuntimeApi(self._fleet.by_ip, self._fleet))
        metrics.watch_runtime_api(self._server.figures)
        self._output: OutputGate | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._reconnect_hooks: list[ReconnectHook] = []
        self._resync: asyncio.Task[None] | None = None
        self._resync_pending = False  # the engine came back again while a re-check ran
        self._link_epoch = 0  # bumped each time the engine's event stream breaks
        self._lost_wall = 0.0  # unix time it last broke
        self._started = False
        self._accepting = False  # started, and not draining or closed
        self._closed = False
        self.runtime_api_address = ""  # gateway_ip:port once started

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        network = await self._engine.ensure_network(self._settings.task_network, self._settings.task_subnet)
        sandbox = self._settings.sandbox
        builds = await self._engine.ensure_build_network(sandbox.build_network, sandbox.build_subnet)
        await self.remove_orphans()
        port = await self._server.start(network.gateway_ip, self._settings.runtime_api_port)
        # Before any task starts: without it a task reaches every service of the host.
        await self._firewall.install(network, port, builds)
        self.runtime_api_address = f"{network.gateway_ip}:{port}"
        self._fleet.attach(network, self.runtime_api_address)
        self._output = OutputGate(
            OutputLimits.from_settings(self._settings.output),
            asyncio.get_running_loop(),
            on_line=self._on_output,
            on_dropped=self._on_output_dropped,
        )
        await self._engine.watch(self._fleet.on_exit, self._output, self._engine_lost, self._engine_back)
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        self._started = True
        self._accepting = True

    def add_reconnect_hook(self, hook: ReconnectHook) -> None:
        """Run `hook` each time the container engine is back after its event stream broke
        (dockerd restarted): after the tasks were reconciled, before invocations waiting for that
        go on. For state the engine may have reset meanwhile (firewall rules in chains Docker
        re-creates). Each run is bounded by RECONNECT_HOOK_TIMEOUT_S; a failure is logged."""
        self._reconnect_hooks.append(hook)

    async def ensure_firewall(self) -> None:
        """Re-assert the task firewall (after a dockerd restart, say); idempotent."""
        await self._firewall.ensure()

    async def remove_orphans(self) -> int:
        """Kill containers a previous run of this controller instance left behind (by label only)."""
        orphans = await self._engine.list_managed(self._settings.instance_id)
        results = await asyncio.gather(*(self._engine.kill(c) for c in orphans), return_exceptions=True)
        for container_id, result in zip(orphans, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("could not remove orphan task container %s: %s", container_id, result)
        return len(orphans)

    def begin_drain(self) -> None:
        """Shutdown begins: invocations from now on get 503; those under way go on."""
        self._accepting = False

    def end_in_flight(self) -> int:
        """End the invocations still running or queued (their callers get 503) and stop their
        tasks; returns how many were running."""
        self._accepting = False
        return self._fleet.end_in_flight(ServiceUnavailable("the platform is shutting down; retry shortly"))

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop every task, waiting at most `timeout_s` for their containers to be gone."""
        if self._closed:
            return
        self._closed = True
        self._accepting = False
        for job in (self._reaper, self._resync):
            if job is not None:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
        if self._output is not None:
            self._output.close()  # drop notices still open go to the log, while their tasks exist
        await self._fleet.close(timeout_s)
        await self._server.close()
        try:  # only once no task is left
            await self._firewall.remove()
        except ServiceError as exc:  # the rules stay and keep confining; the next start replaces them
            log.warning("could not remove the task firewall: %s", exc)

    # -- Invoker --------------------------------------------------------------------------------
    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        if not self._accepting:
            if self._started:
                raise ServiceUnavailable("the platform is shutting down; retry shortly")
            raise ServiceError("the controller is not running")
        function = request.function
        pool = self._fleet.pool_for(function)
        try:
            task = await pool.acquire()
        except TooManyRequests:
            self._metrics.throttles.labels(function.function_name).inc()
            self._metrics.invocation_done(function.function_name, "throttled")
            raise
        except TaskInitFailed as failed:
            result = replace(failed.result, executed_version=request.executed_version)
            self._init_failure_recorded(request, result)
            return result
        try:
            return await self._run(task, request)
        finally:
            pool.release(task)

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        self._fleet.retire(function_name, keep_version)
        if keep_version is None and self._output is not None:
            self._output.forget(function_name)

    def tasks(self) -> list[TaskInfo]:
        return [task.info() for task in self._fleet.all_tasks()]

    def tracked_functions(self) -> set[str]:
        """Functions the controller keeps any state for (a removed one disappears with its tasks)."""
        return self._fleet.tracked_functions()

    def reap_idle(self) -> int:
        """One pass of the idle reaper (the background loop calls it; tests may too)."""
        return self._fleet.reap_idle()

    # -- one invocation on one task -----------------------------------------------------------------
    async def _run(self, task: Task, request: InvocationRequest) -> InvocationResult:
        loop = asyncio.get_running_loop()
        function = request.function
        started, started_wall = time.perf_counter(), time.time()
        invocation = Invocation(
            request=request,
            result=loop.create_future(),
            started=started,
            started_wall=started_wall,
            deadline_ms=int((started_wall + function.timeout) * 1000),
            init_duration_ms=task.init_duration_ms if task.invocation_count == 0 else None,
        )
        task.assign(invocation)
        deadline = loop.call_later(function.timeout, self._deadline_passed, task, invocation)
        try:
            result = await invocation.result
        except asyncio.CancelledError:
            # The caller went away mid-invocation: the task still runs it, so it cannot serve anyone.
            self._fleet.stop(task)
            raise
        finally:
            deadline.cancel()
        if invocation.task_unhealthy:
            self._fleet.stop(task)
        loop.call_soon(self._account, task.container_id, invocation, result)
        return result

    def _deadline_passed(self, task: Task, invocation: Invocation) -> None:
        if task.current is invocation:
            task.complete(outcomes.timed_out(invocation), unhealthy=True)
            self._fleet.stop(task)

    # -- records and metrics (after the caller has its result) ---------------------------------------
    def _account(self, container_id: str | None, invocation: Invocation, result: InvocationResult) -> None:
        request = invocation.request
        function = request.function
        max_memory = None
        if container_id is not None:
            try:
                max_memory = self._engine.max_memory_used_mb(container_id)
            except EngineError:
                max_memory = None
        self._record(request, invocation.started_wall, result, max_memory)
        outcome = (
            "success"
            if result.function_error is None
            else _OUTCOMES.get(result.error_type or "", "function_error")
        )
        self._metrics.invocation_done(function.function_name, outcome, result.duration_ms / 1000.0)

    def _init_failure_recorded(self, request: InvocationRequest, result: InvocationResult) -> None:
        self._record(request, time.time(), result, None)
        outcome = _OUTCOMES.get(result.error_type or "", "function_error")
        self._metrics.invocation_done(request.function.function_name, outcome)

    def _record(
        self,
        request: InvocationRequest,
        started_wall: float,
        result: InvocationResult,
        max_memory: int | None,
    ) -> None:
        function = request.function
        self._record_sink(
            InvocationRecord(
                request_id=request.request_id,
                function_name=function.function_name,
                version=function.version,
                executed_version=request.executed_version,
                started_at=datetime.fromtimestamp(started_wall, UTC),
                duration_ms=result.duration_ms,
                billed_duration_ms=billed_duration_ms(result.duration_ms),
                memory_size_mb=function.memory,
                max_memory_used_mb=max_memory,
                init_duration_ms=result.init_duration_ms,
                error_type=result.error_type,
            )
        )

    def _on_output(self, container_id: str, line: str, timestamp: float) -> None:
        task = self._fleet.by_container.get(container_id)
        if task is None:
            return
        current = task.current
        request_id = current.request.request_id if current is not None else task.last_request_id
        self._log_sink(LogEvent(task.function_name, request_id, datetime.fromtimestamp(timestamp, UTC), line))

    def _on_output_dropped(self, notice: DropNotice, text: str) -> None:
        self._metrics.log_lines_dropped.labels(notice.function, notice.reason).inc(notice.lines)
        task = self._fleet.by_container.get(notice.container_id)
        request_id = None
        if task is not None:
            current = task.current
            request_id = current.request.request_id if current is not None else task.last_request_id
        when = datetime.fromtimestamp(notice.timestamp, UTC)
        self._log_sink(LogEvent(notice.function, request_id, when, text))

    # -- the engine restarted under us ---------------------------------------------------------
    def _engine_lost(self) -> None:
        self._link_epoch += 1
        self._lost_wall = time.time()
        self._fleet.engine_lost()

    def _engine_back(self) -> None:
        if self._closed:
            return
        if self._resync is not None and not self._resync.done():
            self._resync_pending = True  # the one under way checks again when it is done
            return
        self._resync = asyncio.get_running_loop().create_task(self._resync_with_engine())

    async def _resync_with_engine(self) -> None:
        """Compare our tasks with what the engine reports (exits while its events were missed),
        follow the output of survivors again (live-restore), run the reconnect hooks, and let
        waiting invocations go on, unless the stream broke again meanwhile (its reconnect runs
        this again)."""
        while True:
            self._resync_pending = False
            epoch = self._link_epoch
            candidates = self._fleet.reconcile_candidates()
            while True:
                try:
                    states = await self._engine.list_states(self._settings.instance_id)
                    break
                except EngineError as exc:
                    log.warning("listing tasks after the engine came back failed (retrying): %s", exc)
                    await asyncio.sleep(RELIST_RETRY_S)  # waiting on Docker: no event to wait on
                    candidates = self._fleet.reconcile_candidates()
            reconciled = self._fleet.reconcile(candidates, states)
            alive, dead = reconciled.alive, reconciled.dead
            self._metrics.tasks_found_dead.inc(dead)
            for container_id in alive:
                task = self._fleet.by_container.get(container_id)
                if task is None:
                    continue
                try:
                    await self._engine.follow_output(container_id, task.function_name, since=self._lost_wall)
                except FnplatError as exc:  # logs are lost, the task still works
                    log.warning("cannot follow the output of container %s again: %s", container_id[:12], exc)
            for hook in list(self._reconnect_hooks):
                try:
                    await asyncio.wait_for(hook(), RECONNECT_HOOK_TIMEOUT_S)
                except Exception:
                    log.exception("engine reconnect hook %r failed", hook)
            self._metrics.engine_resyncs.inc()
            log.info("tasks reconciled with the engine: %d running, %d found dead", len(alive), dead)
            if self._resync_pending:
                continue  # the stream broke and came back while we were at it
            if epoch == self._link_epoch:
                self._fleet.engine_synced()
            await self._remove_strays(reconciled.strays)
            return

    async def _remove_strays(self, container_ids: list[str]) -> None:
        """Containers of ours no task owns (their kill failed while the engine was away)."""
        for container_id in container_ids:
            try:
                await self._engine.kill(container_id)
                log.info("removed container %s, which no task owned any more", container_id[:12])
            except EngineError as exc:  # the next start removes it by its labels
                log.warning("could not remove stray container %s: %s", container_id[:12], exc)

    async def _reap_forever(self) -> None:
        interval = max(0.005, min(self._settings.keep_alive_s / 2, 5.0))
        while True:
            await asyncio.sleep(interval)
            try:
                self._fleet.reap_idle()
            except Exception:  # a bug here must not end reaping for the life of the process
                log.exception("idle reaper pass failed")
