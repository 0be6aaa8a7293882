"""Migration 0003 fills usage_hourly from the records already stored, on SQLite and Postgres, so
the rollup equals the raw records from the first day; later writes add to the same hours."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from store_samples import T0

from fnplat.domain import InvocationRecord
from fnplat.store import repository as repo
from fnplat.store.db import alembic_config, make_engine, make_sessionmaker, transaction, upgrade_to_head

BEFORE = "3f6a1c2e9b02"  # the head before usage rollups


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.docker])])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fnplat.db'}"
        return
    server = make_url(request.getfixturevalue("postgres_url"))
    name = f"backfill_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def record(i: int, function: str, minutes: int) -> InvocationRecord:
    return InvocationRecord(
        f"m-{i}", function, 1, "$LATEST", T0 + timedelta(minutes=minutes, microseconds=i), 10.5, 11, 256,
        None, 99.0 if i == 0 else None, "Unhandled" if i % 2 else None,
    )  # fmt: skip


def test_migration_fills_the_rollup_from_existing_records(empty_url: str) -> None:
    engine = make_engine(empty_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BEFORE)
    old = [record(i, "old", minutes=(0, 10, 70)[i % 3]) for i in range(9)]
    with engine.begin() as connection:
        for r in old:
            connection.execute(
                text(
                    "INSERT INTO invocation_records (request_id, function_name, version, executed_version,"
                    " started_at, ended_at, duration_ms, billed_duration_ms, memory_size_mb,"
                    " init_duration_ms, error_type) VALUES (:rid, :fn, 1, '$LATEST', :start, :start,"
                    " :d, :b, :m, :init, :err)"
                ),
                {
                    "rid": r.request_id,
                    "fn": r.function_name,
                    # SQLite: the text SQLAlchemy writes for a UTC timestamp.
                    "start": r.started_at
                    if engine.dialect.name == "postgresql"
                    else r.started_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "d": r.duration_ms,
                    "b": r.billed_duration_ms,
                    "m": r.memory_size_mb,
                    "init": r.init_duration_ms,
                    "err": r.error_type,
                },
            )
    upgrade_to_head(engine)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as s:
        repo.add_invocation_records(s, [record(100, "old", minutes=5)])  # same hour as the backfill
        usage = repo.hourly_usage(s, "old")
    engine.dispose()
    assert [(u.hour, u.requests, u.errors, u.cold_starts) for u in usage] == [
        (T0, 7, 3, 1),
        (T0 + timedelta(hours=1), 3, 1, 0),
    ]
    assert [u.billed_mb_ms for u in usage] == [7 * 11 * 256, 3 * 11 * 256]
    assert usage[0].duration_ms == pytest.approx(7 * 10.5)
