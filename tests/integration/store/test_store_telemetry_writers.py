"""The recorder's writers on a real SQLite file: one transaction per write, written in slices,
a short busy wait, checkpoints done by checkpoint(), and the choice of writer per backend."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from store_samples import T0

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.errors import InvalidParameter
from fnplat.store import repository as repo
from fnplat.store.db import make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.telemetry_writers import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_ROWS_PER_SLICE,
    SqliteLoopWriter,
    ThreadWriter,
    writer_for,
)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "fnplat.db"


@pytest.fixture
def sqlite_engine(sqlite_file: Path) -> Engine:
    engine = make_engine(f"sqlite:///{sqlite_file}")
    upgrade_to_head(engine)
    return engine


def file_size(path: Path) -> int:
    return os.path.getsize(path)


def record(i: int) -> InvocationRecord:
    return InvocationRecord(f"r{i}", "hello", 1, "$LATEST", T0, 2.0, 2, 128, 30, None, None)


def stored(engine: Engine) -> tuple[list[str], list[str]]:
    with transaction(make_sessionmaker(engine)) as s:
        records = [r.request_id for r in repo.get_invocation_records(s, "hello", limit=10_000)]
        lines = [e.message for e in repo.recent_log_events(s, "hello", limit=10_000)]
    return records, lines


async def test_a_write_is_readable_by_other_connections(sqlite_engine: Engine) -> None:
    writer = SqliteLoopWriter(sqlite_engine)
    try:
        await writer.write([LogEvent("hello", "r1", T0, "printed")], [record(1)])
    finally:
        writer.close()
    records, lines = stored(sqlite_engine)
    assert records == ["r1"]
    assert lines[:2] == ["START RequestId: r1 Version: $LATEST", "printed"]


async def test_a_failed_write_writes_nothing(sqlite_engine: Engine) -> None:
    writer = SqliteLoopWriter(sqlite_engine)
    naive = LogEvent("hello", "r1", datetime(2026, 1, 1), "no time zone")
    try:
        with pytest.raises(InvalidParameter):
            # The naive line is in the second slice: the first slice's records go too.
            lines = [LogEvent("hello", "r1", T0, f"line {i}") for i in range(SQLITE_ROWS_PER_SLICE)]
            await writer.write([*lines, naive], [record(i) for i in range(SQLITE_ROWS_PER_SLICE + 1)])
        await writer.write([], [record(99)])  # the writer's connection is usable after a failure
    finally:
        writer.close()
    records, lines = stored(sqlite_engine)
    assert records == ["r99"]
    assert [line.split(" ")[0] for line in lines] == ["START", "END", "REPORT"]  # r99's, nothing else


async def test_a_held_write_lock_fails_the_write_quickly(sqlite_engine: Engine, sqlite_file: Path) -> None:
    # The loop must not stall behind another writer (a deploy): the slice fails and is retried.
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    writer = SqliteLoopWriter(sqlite_engine)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            await writer.write([], [record(1)])
        assert time.monotonic() - started < 10 * SQLITE_BUSY_TIMEOUT_MS / 1000
        holder.execute("ROLLBACK")
        await writer.write([], [record(1)])
    finally:
        writer.close()
        holder.close()
    assert stored(sqlite_engine)[0] == ["r1"]


async def test_writes_leave_checkpoints_to_checkpoint(sqlite_engine: Engine, sqlite_file: Path) -> None:
    writer = SqliteLoopWriter(sqlite_engine)
    try:
        await writer.write([], [record(0)])
        before = file_size(sqlite_file)
        for start in range(1, 3001, 500):  # ~100 WAL pages: far below an automatic checkpoint anyway
            await writer.write([], [record(i) for i in range(start, start + 500)])
        assert file_size(sqlite_file) == before  # everything is still in the WAL
        writer.checkpoint()
        assert file_size(sqlite_file) > before
    finally:
        writer.close()
    assert len(stored(sqlite_engine)[0]) == 3001


def test_the_writer_fits_the_backend(sqlite_engine: Engine) -> None:
    sessions = make_sessionmaker(sqlite_engine)
    assert isinstance(writer_for(sqlite_engine, sessions), SqliteLoopWriter)
    memory = make_engine("sqlite://")
    assert isinstance(writer_for(memory, make_sessionmaker(memory)), ThreadWriter)
    postgres = make_engine("postgresql://fnplat:secret@127.0.0.1:1/fnplat")  # never connected
    assert isinstance(writer_for(postgres, make_sessionmaker(postgres)), ThreadWriter)
