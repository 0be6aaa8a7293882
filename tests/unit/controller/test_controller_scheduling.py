"""Scheduling decisions, reaping and eviction: pure functions, table-driven."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fnplat.controller.scheduling import (
    Action,
    Decision,
    EvictionCandidate,
    PoolSnapshot,
    cold_start_capacity,
    decide,
    select_evictions,
    select_reap,
)

BASE = PoolSnapshot(
    idle=0,
    starting=0,
    busy=0,
    waiters=0,
    max_waiters=10,
    function_tasks=0,
    function_limit=5,
    function_idle_elsewhere=0,
    memory_in_use_mb=0,
    memory_needed_mb=128,
    memory_capacity_mb=1024,
    memory_evictable_mb=0,
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a warm task wins over everything, even a full queue or memory pressure
        ({"idle": 1}, Decision(Action.USE_IDLE)),
        ({"idle": 2, "waiters": 10, "memory_in_use_mb": 1024}, Decision(Action.USE_IDLE)),
        # nothing warm, room for one more: cold start
        ({}, Decision(Action.COLD_START)),
        ({"busy": 3, "function_tasks": 3}, Decision(Action.COLD_START)),
        # a task already starting that nobody queued for is ours: wait for it, no second start
        ({"starting": 1, "function_tasks": 1}, Decision(Action.WAIT)),
        # ...but if earlier waiters claim every starting task, start another
        ({"starting": 1, "waiters": 1, "function_tasks": 1}, Decision(Action.COLD_START)),
        # function at its concurrency limit: wait (bounded) for one of its tasks
        ({"busy": 5, "function_tasks": 5}, Decision(Action.WAIT)),
        ({"busy": 5, "function_tasks": 5, "waiters": 9}, Decision(Action.WAIT)),
        # queue full: throttle at once
        ({"busy": 5, "function_tasks": 5, "waiters": 10}, Decision(Action.THROTTLE)),
        # the queue bounds waiting, not cold starts (which wait only for their own task)
        ({"waiters": 10}, Decision(Action.COLD_START)),
        ({"max_waiters": 0}, Decision(Action.COLD_START)),
        # no queue at all
        ({"max_waiters": 0, "busy": 5, "function_tasks": 5}, Decision(Action.THROTTLE)),
        ({"max_waiters": 0, "memory_in_use_mb": 1000}, Decision(Action.THROTTLE)),
        # reserved concurrency 0: never runs
        ({"function_limit": 0}, Decision(Action.THROTTLE)),
        # at the limit, but a stale version of the same function idles: it gives up its slot
        (
            {"function_tasks": 5, "function_idle_elsewhere": 1},
            Decision(Action.COLD_START, evict_own_function=True),
        ),
        # memory: exactly fits
        ({"memory_in_use_mb": 896}, Decision(Action.COLD_START)),
        # memory short, other functions' idle tasks can free enough: evict the shortfall
        (
            {"memory_in_use_mb": 1000, "memory_evictable_mb": 200},
            Decision(Action.COLD_START, evict_memory_mb=104),
        ),
        # memory short and not enough to evict: wait for memory
        ({"memory_in_use_mb": 1000, "memory_evictable_mb": 100}, Decision(Action.WAIT)),
        # both: a stale own-version slot and memory eviction
        (
            {
                "function_tasks": 5,
                "function_idle_elsewhere": 2,
                "memory_in_use_mb": 1000,
                "memory_evictable_mb": 512,
            },
            Decision(Action.COLD_START, evict_own_function=True, evict_memory_mb=104),
        ),
    ],
)
def test_decide(changes: dict[str, int], expected: Decision) -> None:
    assert decide(replace(BASE, **changes)) == expected


def test_cold_start_capacity_says_no_at_the_limit_without_stale_versions() -> None:
    assert cold_start_capacity(replace(BASE, function_tasks=5)) is None
    assert cold_start_capacity(replace(BASE, memory_in_use_mb=1024)) is None
    assert cold_start_capacity(BASE) == Decision(Action.COLD_START)


def test_select_reap_takes_tasks_idle_for_keep_alive_or_longer() -> None:
    idle = [("old", 0.0), ("edge", 40.0), ("fresh", 99.0)]
    assert select_reap(idle, now=100.0, keep_alive_s=60.0) == ["old", "edge"]
    assert select_reap(idle, now=100.0, keep_alive_s=1000.0) == []
    assert select_reap([], now=100.0, keep_alive_s=1.0) == []


def test_select_evictions_frees_enough_least_recently_used_first() -> None:
    candidates = [
        EvictionCandidate("recent", 512, last_used=90.0),
        EvictionCandidate("oldest", 128, last_used=10.0),
        EvictionCandidate("older", 128, last_used=20.0),
    ]
    assert select_evictions(candidates, 100) == ["oldest"]
    assert select_evictions(candidates, 200) == ["oldest", "older"]
    assert select_evictions(candidates, 300) == ["oldest", "older", "recent"]


def test_select_evictions_returns_nothing_when_it_cannot_free_enough() -> None:
    candidates = [EvictionCandidate("a", 128, 1.0)]
    assert select_evictions(candidates, 129) == []
    assert select_evictions(candidates, 0) == []
    assert select_evictions([], 1) == []
