"""Postgres timeouts: a slow statement is cancelled by the server, and a frozen database (its
container paused: the kernel still accepts TCP, the server answers nothing) holds neither a
request nor the recorder's shutdown beyond the configured timeouts."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from own_postgres import OwnPostgres, own_postgres
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from store_samples import T0

from fnplat.config import TelemetrySettings
from fnplat.domain import InvocationRecord
from fnplat.errors import ServiceUnavailable
from fnplat.journal import Journal
from fnplat.recorder import Recorder
from fnplat.store import repository as repo
from fnplat.store.calls import store_call
from fnplat.store.db import make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.telemetry_writers import writer_for

pytestmark = [pytest.mark.postgres, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[3]
SHORT = TelemetrySettings(
    postgres_connect_timeout_s=2,
    postgres_statement_timeout_s=1,
    postgres_pool_timeout_s=1,
    close_timeout_s=2,
)


@pytest.fixture(scope="module")
def database() -> Iterator[OwnPostgres]:
    built = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), "postgres"], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"building the Postgres image failed:\n{built.stdout}\n{built.stderr}")
    with own_postgres() as pg:
        migrated = make_engine(pg.url)
        upgrade_to_head(migrated)
        migrated.dispose()
        yield pg


@pytest.fixture
def engine(database: OwnPostgres) -> Iterator[Engine]:
    engine = make_engine(database.url, SHORT)
    yield engine
    engine.dispose()


def record(i: int) -> InvocationRecord:
    return InvocationRecord(
        f"frozen-{i}", "frozen", 1, "$LATEST", T0 + timedelta(seconds=i), 1.0, 1, 128, None, None, None
    )


def test_a_slow_statement_is_cancelled_by_the_statement_timeout(engine: Engine) -> None:
    started = time.monotonic()
    with pytest.raises(OperationalError, match="statement timeout"), engine.connect() as connection:
        connection.execute(text("SELECT pg_sleep(60)"))
    assert time.monotonic() - started < 30  # cancelled long before the sleep ends


def test_migrations_are_not_bound_by_the_statement_timeout(database: OwnPostgres) -> None:
    engine = make_engine(database.url, SHORT)
    try:
        upgrade_to_head(engine)  # idempotent at head; runs with statement_timeout 0 inside
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            connection.execute(text("SELECT pg_sleep(1.5)"))
    finally:
        engine.dispose()


async def test_a_frozen_database_answers_503_within_the_timeouts(
    database: OwnPostgres, engine: Engine
) -> None:
    sessions = make_sessionmaker(engine)

    def read() -> int:
        with transaction(sessions) as s:
            return len(repo.get_invocation_records(s, "frozen"))

    assert await store_call(read, SHORT.store_call_deadline_s, "warm-up") >= 0  # a pooled connection
    database.pause()
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await store_call(read, SHORT.store_call_deadline_s, "a read")  # the pooled connection hangs
        with pytest.raises(ServiceUnavailable):
            await store_call(read, SHORT.store_call_deadline_s, "another")  # a new one times out
        assert time.monotonic() - started < 4 * SHORT.store_call_deadline_s
    finally:
        database.unpause()
    assert await store_call(read, SHORT.store_call_deadline_s, "after") >= 0


async def test_the_recorder_closes_within_its_timeout_on_a_frozen_database_and_nothing_is_lost(
    database: OwnPostgres, engine: Engine, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(engine)
    recorder = Recorder(writer_for(engine, sessions), Journal(tmp_path / "journal"), settings=SHORT)
    await recorder.start()
    recorder.record(record(0))
    await recorder.flush()
    database.pause()
    try:
        for i in range(1, 50):
            recorder.record(record(i))
        started = time.monotonic()
        async with asyncio.timeout(30):
            await recorder.close()
        assert time.monotonic() - started < 3 * SHORT.close_timeout_s
    finally:
        database.unpause()
    assert any(tmp_path.joinpath("journal").glob("segment-*.jsonl"))

    again = Recorder(writer_for(engine, sessions), Journal(tmp_path / "journal"), settings=SHORT)
    await again.start()
    async with asyncio.timeout(60):
        while any(tmp_path.joinpath("journal").glob("segment-*.jsonl")):
            await again.tick()
    await again.close()
    with transaction(sessions) as s:
        stored = {r.request_id for r in repo.get_invocation_records(s, "frozen", limit=1000)}
        usage = repo.hourly_usage(s, "frozen")
    assert stored == {f"frozen-{i}" for i in range(50)}
    assert sum(u.requests for u in usage) == 50  # written once each, whatever hung
