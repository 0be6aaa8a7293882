"""The usage rollup equals the sum of the raw records and survives their expiry; retention deletes
by age and by cap, oldest first, in chunks; one retention run at a time per database."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from store_samples import T0

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store import repository as repo
from fnplat.store import retention
from fnplat.store.db import transaction
from fnplat.store.models import InvocationRecordRow, LogEventRow

HOUR = timedelta(hours=1)


def workload(seed: int = 7) -> list[InvocationRecord]:
    """Three functions over three hours: errors, cold starts, several memory sizes."""
    rng = random.Random(seed)
    records = []
    for i in range(600):
        name = ("alpha", "beta", "gamma")[i % 3]
        duration = round(rng.uniform(0.5, 900.0), 3)
        records.append(
            InvocationRecord(
                request_id=f"w-{i}",
                function_name=name,
                version=1,
                executed_version="$LATEST",
                started_at=T0 + timedelta(seconds=rng.uniform(0, 3 * 3600 - 1)),
                duration_ms=duration,
                billed_duration_ms=int(duration) + 1,
                memory_size_mb=(128, 512, 1769)[i % 3],
                max_memory_used_mb=None,
                init_duration_ms=123.0 if i % 10 == 0 else None,
                error_type="Unhandled" if i % 7 == 0 else None,
            )
        )
    return records


def expected_rollup(records: list[InvocationRecord]) -> dict[tuple[str, datetime], tuple[float, ...]]:
    totals: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0, 0])
    for r in records:
        t = totals[(r.function_name, r.started_at.replace(minute=0, second=0, microsecond=0))]
        t[0] += 1
        t[1] += r.error_type is not None
        t[2] += r.init_duration_ms is not None
        t[3] += r.duration_ms
        t[4] += r.billed_duration_ms
        t[5] += r.billed_duration_ms * r.memory_size_mb
    return {k: tuple(v) for k, v in totals.items()}


def stored_rollup(s: Session) -> dict[tuple[str, datetime], tuple[float, ...]]:
    return {
        (u.function_name, u.hour): (
            u.requests,
            u.errors,
            u.cold_starts,
            u.duration_ms,
            u.billed_duration_ms,
            u.billed_mb_ms,
        )
        for name in ("alpha", "beta", "gamma")
        for u in repo.hourly_usage(s, name)
    }


def assert_same(actual: dict[tuple[str, datetime], tuple[float, ...]], wanted: dict) -> None:  # type: ignore[type-arg]
    assert actual.keys() == wanted.keys()
    for key, values in wanted.items():
        assert actual[key][:3] == values[:3] and actual[key][4:] == values[4:], key
        assert actual[key][3] == pytest.approx(values[3]), key


def test_the_rollup_equals_the_raw_records_and_survives_their_expiry(sessions: sessionmaker[Session]) -> None:
    records = workload()
    with transaction(sessions) as s:
        assert repo.add_invocation_records(s, records[:400]) == records[:400]
    with transaction(sessions) as s:
        # A replay of records already stored (after a timeout or from the journal) adds nothing.
        inserted = repo.add_invocation_records(s, records[300:] + records[300:310])
    assert inserted == records[400:]
    with transaction(sessions) as s:
        rollup = stored_rollup(s)
        raw = s.execute(select(func.count(), func.sum(InvocationRecordRow.billed_duration_ms))).one()
    assert_same(rollup, expected_rollup(records))
    assert raw == (600, sum(r.billed_duration_ms for r in records))
    assert sum(v[0] for v in rollup.values()) == 600

    policy = retention.RetentionPolicy(
        max_age=timedelta(days=1), max_records=10**9, max_lines=10**9, chunk_rows=128
    )
    deleted = retention.expire(sessions, policy, T0 + timedelta(days=2), pause=lambda _: None)
    assert deleted.counts == {("invocation_records", "age"): 600}
    with transaction(sessions) as s:
        assert repo.get_invocation_records(s, "alpha") == []
        assert_same(stored_rollup(s), expected_rollup(records))  # usage stays
        since = repo.hourly_usage(s, "alpha", since=T0 + timedelta(hours=1, minutes=30))
    assert [u.hour for u in since] == [T0 + HOUR, T0 + 2 * HOUR]


def lines(n: int, start: datetime, prefix: str = "line") -> list[LogEvent]:
    return [LogEvent("alpha", None, start + timedelta(seconds=i), f"{prefix} {i}") for i in range(n)]


def test_retention_by_age_deletes_the_oldest_first_and_keeps_the_rest(
    sessions: sessionmaker[Session],
) -> None:
    records = workload()
    now = T0 + timedelta(days=7, hours=1, minutes=30)  # cutoff T0 + 1h30
    with transaction(sessions) as s:
        repo.add_invocation_records(s, records)
        repo.add_log_events(s, lines(700, T0 + HOUR))  # 1h00 .. 1h11: older than the cutoff
        repo.add_log_events(s, lines(50, T0 + 2 * HOUR, "young"))
        repo.add_log_events(s, lines(5, T0, "late"))  # replayed late: old, but after young ids
    pauses: list[float] = []
    policy = retention.RetentionPolicy(
        max_age=timedelta(days=7), max_records=10**9, max_lines=10**9, chunk_rows=100, pause_s=0.5
    )
    deleted = retention.expire(sessions, policy, now, pause=pauses.append)
    cutoff = now - timedelta(days=7)
    old_records = sum(r.started_at < cutoff for r in records)
    assert deleted.counts == {("invocation_records", "age"): old_records, ("log_events", "age"): 700}
    assert len(pauses) >= old_records // 100 + 6 and set(pauses) == {0.5}  # a pause after each chunk
    with transaction(sessions) as s:
        starts = s.execute(select(InvocationRecordRow.started_at)).scalars().all()
        kept = s.execute(select(LogEventRow.message).order_by(LogEventRow.id)).scalars().all()
    assert starts and min(starts) >= cutoff
    assert kept == [f"young {i}" for i in range(50)] + [f"late {i}" for i in range(5)]


def test_retention_caps_keep_the_newest_rows(sessions: sessionmaker[Session]) -> None:
    records = workload()
    with transaction(sessions) as s:
        repo.add_invocation_records(s, records)
        repo.add_log_events(s, lines(2_500, T0))
    policy = retention.RetentionPolicy(
        max_age=timedelta(days=3650), max_records=250, max_lines=1_000, chunk_rows=300
    )
    deleted = retention.expire(sessions, policy, T0 + HOUR, pause=lambda _: None)
    assert deleted.counts == {("invocation_records", "cap"): 350, ("log_events", "cap"): 1_500}
    with transaction(sessions) as s:
        starts = sorted(s.execute(select(InvocationRecordRow.started_at)).scalars())
        kept = s.execute(select(LogEventRow.message).order_by(LogEventRow.id)).scalars().all()
    assert starts == sorted(r.started_at for r in records)[-250:]
    assert kept == [f"line {i}" for i in range(1_500, 2_500)]


def test_a_stopped_run_stops_between_chunks(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_invocation_records(s, workload())
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    policy = retention.RetentionPolicy(
        max_age=timedelta(0), max_records=10**9, max_lines=10**9, chunk_rows=100
    )
    with pytest.raises(retention.Stopped) as stopped:
        retention.expire(sessions, policy, datetime.now(UTC), pause=lambda _: None, should_stop=stop)
    assert stopped.value.deleted.counts == {("invocation_records", "age"): 200}


def test_only_one_process_runs_retention_at_a_time(engine: Engine) -> None:
    with retention.exclusive_run(engine) as first:
        assert first
        with retention.exclusive_run(engine) as second:
            # SQLite: one process per data dir, always True; Postgres: the advisory lock is taken.
            assert second == (engine.dialect.name == "sqlite")
    with retention.exclusive_run(engine) as again:
        assert again  # released
