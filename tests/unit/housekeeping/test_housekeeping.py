"""The housekeeping job: retention then GC per run, counted in metrics; a loop that close() stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from store_support import sealed_sessions

from fnplat.artifacts import ArtifactStore
from fnplat.config import TelemetrySettings
from fnplat.domain import InvocationRecord, LogEvent
from fnplat.housekeeping import Housekeeper
from fnplat.metrics import Metrics
from fnplat.store import repository as repo
from fnplat.store.db import make_engine, transaction, upgrade_to_head

NOW = datetime.now(UTC)


def record(i: int, age: timedelta) -> InvocationRecord:
    return InvocationRecord(f"r{i}", "fn", 1, "$LATEST", NOW - age, 1.0, 1, 128, None, None, None)


async def test_a_run_expires_old_rows_keeps_usage_and_is_counted(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(db)
    sessions = sealed_sessions(db)
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [record(i, timedelta(days=8)) for i in range(5)])
        repo.add_invocation_records(s, [record(i, timedelta(hours=1)) for i in range(5, 8)])
        repo.add_log_events(s, [LogEvent("fn", None, NOW - timedelta(days=9), "old")] * 4)
        repo.add_log_events(s, [LogEvent("fn", None, NOW, "new")])
    metrics = Metrics(CollectorRegistry())
    settings = TelemetrySettings(retention_days=7, housekeeping_interval_s=0)
    keeper = Housekeeper(db, sessions, ArtifactStore(tmp_path / "a", tmp_path / "c"), None, settings, metrics)
    await keeper.run_once()
    await keeper.close()
    with transaction(sessions) as s:
        assert [r.request_id for r in repo.get_invocation_records(s, "fn")] == ["r5", "r6", "r7"]
        assert [e.message for e in repo.recent_log_events(s, "fn") if e.request_id is None] == ["new"]
        assert sum(u.requests for u in repo.hourly_usage(s, "fn")) == 8

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("fnplat_retention_deleted_rows_total", table="invocation_records", reason="age") == 5
    assert value("fnplat_retention_deleted_rows_total", table="log_events", reason="age") == 4
    assert value("fnplat_housekeeping_runs_total", outcome="ok") == 1
    assert (value("fnplat_housekeeping_last_success_timestamp_seconds") or 0) > 0
    db.dispose()


async def test_close_stops_the_loop(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(db)
    metrics = Metrics(CollectorRegistry())
    keeper = Housekeeper(
        db,
        sealed_sessions(db),
        ArtifactStore(tmp_path / "a", tmp_path / "c"),
        None,
        TelemetrySettings(housekeeping_interval_s=3600),
        metrics,
    )
    await keeper.start()
    async with asyncio.timeout(5):
        await keeper.close()
    assert metrics.registry.get_sample_value("fnplat_housekeeping_runs_total", {"outcome": "ok"}) is None
    db.dispose()
