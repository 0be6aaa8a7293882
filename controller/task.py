"""A task: one running container of a function version, serving one invocation at a time.

Its life is an explicit state machine (OpenWhisk's ContainerProxy, ECS task states); any move not
in the transition table raises, so a bookkeeping bug shows up at once instead of as a leaked task.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fnplat.controller.engine import ContainerHandle
from fnplat.domain import FunctionVersion
from fnplat.invocation import InvocationRequest, InvocationResult


class TaskState(enum.Enum):
    STARTING = "starting"  # container requested, its runtime has not asked for an event yet
    IDLE = "idle"  # warm, waiting in the pool
    BUSY = "busy"  # leased to one invocation
    STOPPING = "stopping"  # being killed; no longer reachable on the Runtime API
    STOPPED = "stopped"  # gone; its address and memory are free again


TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.STARTING: frozenset({TaskState.IDLE, TaskState.STOPPING}),
    TaskState.IDLE: frozenset({TaskState.BUSY, TaskState.STOPPING}),
    TaskState.BUSY: frozenset({TaskState.IDLE, TaskState.STOPPING}),
    TaskState.STOPPING: frozenset({TaskState.STOPPED}),
    TaskState.STOPPED: frozenset(),
}

LIVE_STATES = frozenset({TaskState.STARTING, TaskState.IDLE, TaskState.BUSY})


class IllegalTransition(RuntimeError):
    """A task was asked to move between states the table does not allow (a controller bug)."""


@dataclass(slots=True, eq=False)
class Invocation:
    """One invocation while a task runs it. Completed exactly once, by whoever sees the outcome first
    (the runtime's response or error, the deadline, the container's exit)."""

    request: InvocationRequest
    result: asyncio.Future[InvocationResult]
    started: float  # perf_counter when handed to the task (duration and deadline start here)
    started_wall: float  # unix time of the same moment
    deadline_ms: int  # unix epoch milliseconds, sent as Lambda-Runtime-Deadline-Ms
    init_duration_ms: float | None  # set when this invocation is the first on a cold-started task
    delivered: bool = False  # the runtime has received it from `next`
    task_unhealthy: bool = False  # the task must not serve another invocation (timeout, exit, protocol abuse)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task as `/v1/tasks` and `fnctl tasks` show it."""

    task_id: str
    function_name: str
    version: int
    state: str
    ip: str
    container_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    invocations: int
    init_duration_ms: float | None
    current_request_id: str | None


@dataclass(slots=True, eq=False)
class Task:
    task_id: str
    version: FunctionVersion
    ip: str
    created: float  # perf_counter when the container was requested (init duration starts here)
    created_wall: float  # unix time of the same moment
    last_used: float  # controller clock; the idle reaper compares it with keep-alive
    state: TaskState = TaskState.STARTING
    handle: ContainerHandle | None = None
    ready_at: float | None = None  # perf_counter of the first `next`
    init_duration_ms: float | None = None
    invocation_count: int = 0
    current: Invocation | None = None
    last_request_id: str | None = None  # output arriving after completion belongs to this request
    next_waiter: asyncio.Future[None] | None = None  # the runtime's pending long-poll `next`
    used_wall: float | None = field(default=None)  # unix time of the last release, for display

    @property
    def function_name(self) -> str:
        return self.version.function_name

    @property
    def container_id(self) -> str | None:
        return self.handle.container_id if self.handle is not None else None

    def move(self, new: TaskState) -> TaskState:
        """Change state; returns the old one. Raises IllegalTransition for a move not in the table."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"task {self.task_id}: {old.value} -> {new.value} is not allowed")
        self.state = new
        return old

    def assign(self, invocation: Invocation) -> None:
        """Give the task its next invocation and wake the runtime's pending `next`, if any."""
        if self.current is not None:
            raise IllegalTransition(f"task {self.task_id} already runs {self.current.request.request_id}")
        self.current = invocation
        self.last_request_id = invocation.request.request_id
        self.invocation_count += 1
        self.wake_runtime()

    def complete(self, result: InvocationResult, *, unhealthy: bool = False) -> bool:
        """Finish the current invocation with `result`; False if there is none (already finished)."""
        invocation = self.current
        if invocation is None:
            return False
        self.current = None
        invocation.task_unhealthy = invocation.task_unhealthy or unhealthy
        if not invocation.result.done():
            invocation.result.set_result(result)
        return True

    def abort(self, error: BaseException) -> bool:
        """End the current invocation with `error` for its caller (the platform is stopping it);
        the task must not serve again. False if there is none."""
        invocation = self.current
        if invocation is None:
            return False
        self.current = None
        invocation.task_unhealthy = True
        if not invocation.result.done():
            invocation.result.set_exception(error)
        return True

    def wake_runtime(self) -> None:
        waiter = self.next_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def info(self) -> TaskInfo:
        return TaskInfo(
            task_id=self.task_id,
            function_name=self.version.function_name,
            version=self.version.version,
            state=self.state.value,
            ip=self.ip,
            container_id=self.container_id,
            created_at=datetime.fromtimestamp(self.created_wall, UTC),
            last_used_at=datetime.fromtimestamp(self.used_wall, UTC) if self.used_wall is not None else None,
            invocations=self.invocation_count,
            init_duration_ms=self.init_duration_ms,
            current_request_id=self.current.request.request_id if self.current is not None else None,
        )
