"""Scheduling decisions as pure functions over a snapshot (OpenWhisk's ContainerPool style).

No asyncio, no engine, no clock: the pool builds a `PoolSnapshot`, asks `decide`, and carries
out the answer. Everything here is unit-tested table by table without containers.

Which idle task to use is the most recently used one, so the others age out and the pool shrinks
after a burst; the pool keeps its idle list in release order, which makes that its last element
(O(1) on the hot path, so it is not a function here).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Action(enum.Enum):
    USE_IDLE = "use_idle"  # hand out a warm idle task now
    COLD_START = "cold_start"  # start a new task and wait for it (or for any task freed first)
    WAIT = "wait"  # queue: a starting or busy task will come free, or capacity will
    THROTTLE = "throttle"  # 429 at once


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """What one version's pool and the host look like when an invocation arrives."""

    idle: int  # idle tasks of this version
    starting: int  # tasks of this version started and not yet ready
    busy: int  # tasks of this version running an invocation
    waiters: int  # invocations already queued for this version
    max_waiters: int  # queue bound (ControllerSettings.max_queue_length)
    function_tasks: int  # live tasks (starting + idle + busy + stopping) of the function, all versions
    function_limit: int  # max live tasks of the function (reserved concurrency)
    function_idle_elsewhere: int  # idle tasks of the function's other versions (can be evicted at the limit)
    memory_in_use_mb: int  # memory of every live task on this host
    memory_needed_mb: int  # memory of one more task of this version
    memory_capacity_mb: int  # memory tasks may use on this host
    memory_evictable_mb: int  # memory of idle tasks of other functions (LRU eviction can free it)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    evict_own_function: bool = False  # stop one idle task of another version of the function first
    evict_memory_mb: int = 0  # free at least this much by stopping LRU idle tasks of other functions


USE_IDLE = Decision(Action.USE_IDLE)
WAIT = Decision(Action.WAIT)
THROTTLE = Decision(Action.THROTTLE)
COLD_START = Decision(Action.COLD_START)


def decide(s: PoolSnapshot) -> Decision:
    """Idle warm task, else cold start if capacity allows, else a bounded wait, else 429."""
    if s.idle > 0:
        return USE_IDLE
    if s.function_limit <= 0:
        return THROTTLE  # reserved concurrency 0 means "never run": Lambda throttles at once
    if s.starting > s.waiters:
        # A task already starting is not promised to anyone queued before us: it will be ours.
        return WAIT
    cold_start = cold_start_capacity(s)
    if cold_start is not None:
        return cold_start
    # No capacity now: queue for a task or for capacity, unless the queue is full.
    return THROTTLE if s.waiters >= s.max_waiters else WAIT


def cold_start_capacity(s: PoolSnapshot) -> Decision | None:
    """Whether one more task of this version fits, and what must be evicted for it; None if not."""
    evict_own = False
    if s.function_tasks >= s.function_limit:
        if s.function_idle_elsewhere <= 0:
            return None
        evict_own = True  # an idle task of a stale version gives its slot to the version in demand
    free = s.memory_capacity_mb - s.memory_in_use_mb
    if s.memory_needed_mb <= free:
        return Decision(Action.COLD_START, evict_own_function=True) if evict_own else COLD_START
    short = s.memory_needed_mb - free
    if short <= s.memory_evictable_mb:
        return Decision(Action.COLD_START, evict_own_function=evict_own, evict_memory_mb=short)
    return None


def select_reap(idle: Sequence[tuple[K, float]], now: float, keep_alive_s: float) -> list[K]:
    """Idle tasks (key, last used) that have been idle for keep_alive_s or longer."""
    return [key for key, last_used in idle if now - last_used >= keep_alive_s]


@dataclass(frozen=True, slots=True)
class EvictionCandidate(Generic[K]):
    key: K
    memory_mb: int
    last_used: float


def select_evictions(candidates: Sequence[EvictionCandidate[K]], needed_mb: int) -> list[K]:
    """Least recently used idle tasks whose memory adds up to needed_mb; [] if they cannot."""
    if needed_mb <= 0:
        return []
    chosen: list[K] = []
    freed = 0
    for candidate in sorted(candidates, key=lambda c: c.last_used):
        chosen.append(candidate.key)
        freed += candidate.memory_mb
        if freed >= needed_mb:
            return chosen
    return []
