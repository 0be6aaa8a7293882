"""The task state machine: every legal move works, every other move raises."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from fnplat.controller.task import TRANSITIONS, IllegalTransition, Invocation, Task, TaskState
from fnplat.domain import FunctionVersion, frozen_map
from fnplat.invocation import InvocationRequest, InvocationResult

VERSION = FunctionVersion(
    function_name="fn",
    version=1,
    runtime="python3.11",
    handler="app.handler",
    memory=128,
    timeout=3,
    environment=frozen_map(),
    code_sha256="0" * 64,
    image=None,
    created_at=datetime.now(UTC),
)

LEGAL = {
    (TaskState.STARTING, TaskState.IDLE),
    (TaskState.STARTING, TaskState.STOPPING),
    (TaskState.IDLE, TaskState.BUSY),
    (TaskState.IDLE, TaskState.STOPPING),
    (TaskState.BUSY, TaskState.IDLE),
    (TaskState.BUSY, TaskState.STOPPING),
    (TaskState.STOPPING, TaskState.STOPPED),
}
ALL_PAIRS = list(itertools.product(TaskState, TaskState))


def task_in(state: TaskState) -> Task:
    task = Task(task_id="t", version=VERSION, ip="127.0.0.2", created=0.0, created_wall=0.0, last_used=0.0)
    task.state = state
    return task


def test_the_table_is_exactly_the_legal_moves() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == LEGAL


@pytest.mark.parametrize(("old", "new"), sorted(LEGAL, key=str))
def test_legal_moves(old: TaskState, new: TaskState) -> None:
    task = task_in(old)
    assert task.move(new) is old
    assert task.state is new


@pytest.mark.parametrize(("old", "new"), [p for p in ALL_PAIRS if p not in LEGAL], ids=str)
def test_illegal_moves_raise_and_leave_the_state(old: TaskState, new: TaskState) -> None:
    task = task_in(old)
    with pytest.raises(IllegalTransition):
        task.move(new)
    assert task.state is old


async def test_assign_wakes_the_pending_next_and_complete_is_once_only() -> None:
    loop = asyncio.get_running_loop()
    task = task_in(TaskState.BUSY)
    task.next_waiter = loop.create_future()
    request = InvocationRequest(function=VERSION, payload=b"{}", request_id="r1", invoked_function_arn="arn")
    invocation = Invocation(request, loop.create_future(), 0.0, 0.0, 0, None)
    task.assign(invocation)
    assert task.next_waiter.done()
    assert task.current is invocation and task.invocation_count == 1 and task.last_request_id == "r1"
    with pytest.raises(IllegalTransition):
        task.assign(invocation)  # one invocation at a time
    assert task.complete(InvocationResult(payload=b"1"), unhealthy=True)
    assert not task.complete(InvocationResult(payload=b"2"))
    assert invocation.result.result().payload == b"1"
    assert invocation.task_unhealthy
    assert task.current is None
