"""The telemetry journal: private files, segments sealed before replay, positions, torn lines."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.journal import REJECTED_FILE, Journal, decode, encode, encode_all
from fnplat.store.telemetry_values import REPLACEMENT

T0 = datetime(2026, 12, 1, 10, 20, 30, 123456, tzinfo=UTC)


def record(i: int, error_type: str | None = None) -> InvocationRecord:
    return InvocationRecord(f"r{i}", "fn", 3, "3", T0, 12.5, 13, 256, 40, 120.25, error_type)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_entries_round_trip_and_text_is_cleaned() -> None:
    assert decode(encode(record(1, "Sandbox.Timedout"))) == record(1, "Sandbox.Timedout")
    event = LogEvent("fn", None, T0, "printed")
    assert decode(encode(event)) == event
    dirty = decode(encode(LogEvent("fn", "r1", T0, "bad \ud800 and \x00")))
    assert isinstance(dirty, LogEvent) and dirty.message == f"bad {REPLACEMENT} and {REPLACEMENT}"
    with pytest.raises(ValueError):
        decode(b'{"r": {"request_id": "torn')
    lines, failed = encode_all([record(1), record(2)])
    assert len(lines) == 2 and failed == [] and all(line.endswith(b"\n") for line in lines)


def test_files_are_private_and_segments_are_sealed_before_they_are_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.open()
    assert mode(journal.directory) == 0o700
    journal.append([encode(record(i)) for i in range(3)])
    assert journal.sealed_segments() == []  # the active segment is never read
    journal.seal()
    journal.append([encode(record(3))])
    (first,) = journal.sealed_segments()
    assert mode(first) == 0o600
    assert journal.size_bytes == sum(p.stat().st_size for p in journal.directory.glob("*.jsonl"))
    lines, offset = journal.read(first, 0, 2)
    assert [decode(line) for line in lines] == [record(0), record(1)]
    journal.advance(first, offset)
    assert journal.position(first) == offset
    rest, end = journal.read(first, journal.position(first), 10)
    assert [decode(line) for line in rest] == [record(2)]
    assert journal.read(first, end, 10) == ([], end)
    journal.finish(first)
    assert not first.exists() and not first.with_suffix(".pos").exists()
    journal.close()
    assert len(journal.sealed_segments()) == 1  # the second, sealed by close


def test_open_takes_stock_of_an_earlier_run_and_numbers_on(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.open()
    first.append([encode(record(1))])
    # A crash: no close(); a torn line at the end and a stale temporary file.
    (segment,) = [p for p in tmp_path.iterdir() if p.suffix == ".jsonl"]
    with open(segment, "ab") as handle:
        handle.write(b'{"r": {"request_id": "r2"')
    (tmp_path / "segment-000000000001.pos.tmp").write_text("12")
    second = Journal(tmp_path)
    second.open()
    assert second.sealed_segments() == [segment]
    assert second.size_bytes == segment.stat().st_size
    assert not (tmp_path / "segment-000000000001.pos.tmp").exists()
    second.append([encode(record(3))])
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [
        "segment-000000000001.jsonl",
        "segment-000000000002.jsonl",
    ]
    lines, _ = second.read(segment, 0, 10)
    assert decode(lines[0]) == record(1)
    with pytest.raises(ValueError):
        decode(lines[1])


def test_rejected_rows_are_kept_with_their_reason(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.reject(record(7), "DataError: value too long")
    journal.reject(b"not json\n", "torn line")
    kept = [orjson.loads(line) for line in (tmp_path / REJECTED_FILE).read_bytes().splitlines()]
    assert kept[0]["reason"] == "DataError: value too long" and '"r7"' in kept[0]["entry"]
    assert kept[1] == {"reason": "torn line", "entry": "not json"}
    assert mode(tmp_path / REJECTED_FILE) == 0o600


def test_a_sync_handle_is_a_duplicate_only_after_appends(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    assert journal.sync_handle() is None
    journal.append([encode(record(1))])
    fd = journal.sync_handle()
    assert fd is not None
    journal.seal()  # closing the original does not invalidate the duplicate
    os.fsync(fd)
    os.close(fd)
    assert journal.sync_handle() is None
