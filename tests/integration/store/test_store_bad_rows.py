"""One bad row never blocks the rows behind it, on each backend, through the recorder and the
backend's real writer: what can be cleaned is stored cleaned, what still fails is rejected alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from store_samples import T0

from fnplat.config import TelemetrySettings
from fnplat.domain import InvocationRecord, LogEvent
from fnplat.journal import REJECTED_FILE, Journal
from fnplat.recorder import Recorder
from fnplat.store import repository as repo
from fnplat.store.db import transaction
from fnplat.store.models import InvocationRecordRow, LogEventRow
from fnplat.store.telemetry_values import ERROR_TYPE_MAX_CHARS, REPLACEMENT, TRUNCATION_MARKER
from fnplat.store.telemetry_writers import writer_for


def record(i: int, **changes: object) -> InvocationRecord:
    r = InvocationRecord(
        f"bad-rows-{i}", "hello", 1, "$LATEST", T0 + timedelta(seconds=i), 12.5, 13, 128, 30, None, None
    )
    return replace(r, **changes)  # type: ignore[arg-type]


def line(i: int, message: str | None = None, **changes: object) -> LogEvent:
    e = LogEvent("hello", f"bad-rows-{i}", T0 + timedelta(seconds=i), message or f"line {i}")
    return replace(e, **changes)  # type: ignore[arg-type]


async def test_a_batch_with_bad_rows_in_the_middle_writes_every_other_row(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    naive = datetime(2026, 11, 23, 12, 0)  # no time zone: refused by the store layer on both backends
    records = [record(i) for i in range(40)]
    records[7] = record(7, error_type="E" * 300)  # over String(256): cut
    records[19] = record(19, started_at=naive)  # cannot be stored: rejected
    lines = [line(i) for i in range(40)]
    lines[5] = line(5, "nul \x00 byte")  # Postgres text refuses NUL: replaced
    lines[6] = line(6, "lone \ud800 surrogate")  # no driver encodes it: replaced
    lines[23] = line(23, timestamp=naive)  # rejected

    recorder = Recorder(
        writer_for(engine, sessions), Journal(tmp_path / "journal"), settings=TelemetrySettings()
    )
    await recorder.start()
    for r in records:
        recorder.record(r)
    for e in lines:
        recorder.log(e)
    await recorder.flush()
    await recorder.close()

    with transaction(sessions) as s:
        stored = {r.request_id: r for r in s.execute(select(InvocationRecordRow)).scalars()}
        messages = [m for m in s.execute(select(LogEventRow.message).order_by(LogEventRow.id)).scalars()]
        usage = repo.hourly_usage(s, "hello")
    assert sorted(stored) == sorted(r.request_id for i, r in enumerate(records) if i != 19)
    cut = stored["bad-rows-7"].error_type
    assert cut is not None and len(cut) == ERROR_TYPE_MAX_CHARS and cut.endswith(TRUNCATION_MARKER)
    assert messages == [
        f"nul {REPLACEMENT} byte" if i == 5 else f"lone {REPLACEMENT} surrogate" if i == 6 else f"line {i}"
        for i in range(40)
        if i != 23
    ]
    assert sum(u.requests for u in usage) == 39  # the rejected record is not counted
    rejected = [orjson.loads(x) for x in (tmp_path / "journal" / REJECTED_FILE).read_bytes().splitlines()]
    assert len(rejected) == 2
    assert {"bad-rows-19", "bad-rows-23"} == {
        orjson.loads(x["entry"]).popitem()[1]["request_id"] for x in rejected
    }
