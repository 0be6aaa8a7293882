"""Invocation records and log lines: batches, replay, order, limit and filter, and the platform
lines rendered from records."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from store_samples import T0

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.errors import InvalidParameter
from fnplat.store import repository as repo
from fnplat.store.db import transaction
from fnplat.store.models import InvocationRecordRow


def record(request_id: str, seconds: int, error_type: str | None = None) -> InvocationRecord:
    return InvocationRecord(
        request_id=request_id,
        function_name="hello",
        version=1,
        executed_version="$LATEST",
        started_at=T0 + timedelta(seconds=seconds),
        duration_ms=12.5,
        billed_duration_ms=13,
        memory_size_mb=128,
        max_memory_used_mb=40 if error_type is None else None,
        init_duration_ms=150.25 if seconds == 0 else None,
        error_type=error_type,
    )


def test_invocation_records_round_trip_and_replay_is_harmless(sessions: sessionmaker[Session]) -> None:
    batch = [record("r0", 0), record("r1", 1, "Sandbox.Timedout"), record("r2", 2)]
    with transaction(sessions) as s:
        repo.add_invocation_records(s, batch)
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [*batch[1:], record("r3", 3)])  # a batch replayed after a failure
        repo.add_invocation_records(s, [])
    with transaction(sessions) as s:
        stored = repo.get_invocation_records(s, "hello")
    assert [r.request_id for r in stored] == ["r3", "r2", "r1", "r0"]
    assert stored[-1] == batch[0]
    assert stored[-2] == batch[1]


def test_records_outlive_their_function(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [record("r0", 0)])  # no function row exists: no foreign key
        assert repo.delete_function(s, "hello") is False
    with transaction(sessions) as s:
        assert len(repo.get_invocation_records(s, "hello")) == 1


def log(message: str, seconds: float, request_id: str | None = "req-a", name: str = "hello") -> LogEvent:
    return LogEvent(
        function_name=name, request_id=request_id, timestamp=T0 + timedelta(seconds=seconds), message=message
    )


def test_recent_log_events_are_the_newest_oldest_first(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_log_events(s, [log(f"line {i}", i) for i in range(10)])
        repo.add_log_events(s, [log("other fn", 5, name="other")])
    with transaction(sessions) as s:
        newest = repo.recent_log_events(s, "hello", limit=3)
        everything = repo.recent_log_events(s, "hello")
    assert [e.message for e in newest] == ["line 7", "line 8", "line 9"]
    assert [e.message for e in everything] == [f"line {i}" for i in range(10)]
    assert newest[0].timestamp == T0 + timedelta(seconds=7)


def test_lines_with_equal_timestamps_keep_insertion_order(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_log_events(s, [log("one", 1), log("two", 1), log("three", 1), log("four", 1)])
    with transaction(sessions) as s:
        assert [e.message for e in repo.recent_log_events(s, "hello")] == ["one", "two", "three", "four"]
        assert [e.message for e in repo.recent_log_events(s, "hello", limit=2)] == ["three", "four"]


def test_platform_lines_come_from_records_around_the_output(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        b_of_version_2 = replace(record("req-b", 3), executed_version="2")
        repo.add_invocation_records(s, [record("req-a", 1), b_of_version_2])
        repo.add_log_events(s, [log("a says hi", 1.005), log("b says hi", 3.001, "req-b")])
    with transaction(sessions) as s:
        lines = repo.recent_log_events(s, "hello")
        only_b = repo.recent_log_events(s, "hello", request_id="req-b")
        newest = repo.recent_log_events(s, "hello", limit=4)
    assert [(e.request_id, e.message.split("\t")[0]) for e in lines] == [
        ("req-a", "START RequestId: req-a Version: $LATEST"),
        ("req-a", "a says hi"),
        ("req-a", "END RequestId: req-a"),
        ("req-a", "REPORT RequestId: req-a"),
        ("req-b", "START RequestId: req-b Version: 2"),
        ("req-b", "b says hi"),
        ("req-b", "END RequestId: req-b"),
        ("req-b", "REPORT RequestId: req-b"),
    ]
    assert lines[3].message == (
        "REPORT RequestId: req-a\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 40 MB"
    )
    assert lines[2].timestamp == T0 + timedelta(seconds=1, milliseconds=12.5)
    assert only_b == lines[4:]
    assert newest == lines[4:]


def test_records_from_before_rendered_lines_add_no_lines(sessions: sessionmaker[Session]) -> None:
    # Records written before migration 3f6a1c2e9b02 have no ended_at: their platform lines were
    # stored as log lines then, and must not appear twice.
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [record("old", 1)])
        s.execute(update(InvocationRecordRow).values(ended_at=None))
        repo.add_log_events(s, [log("START RequestId: old Version: $LATEST", 1, "old")])
    with transaction(sessions) as s:
        assert [e.message for e in repo.recent_log_events(s, "hello")] == [
            "START RequestId: old Version: $LATEST"
        ]


def test_recent_log_events_filters_by_request(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_log_events(s, [log("a1", 1), log("b1", 2, "req-b"), log("a2", 3), log("platform", 4, None)])
    with transaction(sessions) as s:
        assert [e.message for e in repo.recent_log_events(s, "hello", request_id="req-a")] == ["a1", "a2"]
        assert [e.request_id for e in repo.recent_log_events(s, "hello", request_id="req-b")] == ["req-b"]
        assert repo.recent_log_events(s, "hello", request_id="req-none") == []
        assert repo.recent_log_events(s, "nobody") == []


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_recent_log_events_rejects_bad_limits(session: Session, limit: int) -> None:
    with pytest.raises(InvalidParameter):
        repo.recent_log_events(session, "hello", limit=limit)


def test_naive_timestamps_are_rejected_before_writing(sessions: sessionmaker[Session]) -> None:
    naive = LogEvent(function_name="hello", request_id=None, timestamp=datetime(2026, 1, 1), message="x")
    with pytest.raises(InvalidParameter), transaction(sessions) as s:
        repo.add_log_events(s, [log("fine", 1), naive])
    with pytest.raises(InvalidParameter), transaction(sessions) as s:
        repo.add_invocation_records(s, [replace(record("r", 0), started_at=datetime(2026, 1, 1))])
    with transaction(sessions) as s:
        assert repo.recent_log_events(s, "hello") == []
        assert repo.get_invocation_records(s, "hello") == []


def test_function_stats_sum_up_records(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [record("r0", 0), record("r1", 1, "Unhandled"), record("r2", 2)])
        repo.add_invocation_records(s, [replace(record("x", 0), function_name="other")])
    with transaction(sessions) as s:
        stats = repo.function_stats(s, "hello")
        recent = repo.function_stats(s, "hello", since=T0 + timedelta(seconds=1))
        nothing = repo.function_stats(s, "nobody")
    assert (stats.invocations, stats.errors, stats.cold_starts) == (3, 1, 1)
    assert stats.average_duration_ms == pytest.approx(12.5)
    assert stats.billed_duration_ms == 39
    assert stats.gb_seconds == pytest.approx(39 * 128 / 1024 / 1000)
    assert (recent.invocations, recent.cold_starts) == (2, 0)
    assert nothing == repo.FunctionStats(0, 0, 0, None, 0, 0.0)
    with pytest.raises(InvalidParameter), transaction(sessions) as s:
        repo.function_stats(s, "hello", since=datetime(2026, 1, 1))


def test_large_batches_are_written_whole(sessions: sessionmaker[Session]) -> None:
    batch = [record(f"bulk-{i}", i) for i in range(1_234)]
    with transaction(sessions) as s:
        repo.add_invocation_records(s, batch)
        repo.add_log_events(s, [log(f"line {i}", i) for i in range(1_234)])
    with transaction(sessions) as s:
        assert repo.function_stats(s, "hello").invocations == 1_234
        assert len(repo.recent_log_events(s, "hello", limit=5_000)) == 1_234 * 4  # output, START, END, REPORT
