"""The recorder's batching: slices, retries without loss or duplicates, checkpoints, shutdown; and
its bounds: records spilled to the journal and replayed, lines dropped with a count, bad rows
isolated, a hung store waited for a bounded time."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DataError, OperationalError

from fnplat.bad_rows import StoreFailed
from fnplat.config import TelemetrySettings
from fnplat.domain import InvocationRecord, LogEvent
from fnplat.journal import REJECTED_FILE, Journal
from fnplat.metrics import Metrics
from fnplat.recorder import CHECKPOINT_EVERY_S, DROPPED_NOTICE, LINE_OVERHEAD, Recorder
from fnplat.store.calls import StoreTimeout

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def record(i: int, function: str = "fn") -> InvocationRecord:
    return InvocationRecord(f"r{i}", function, 1, "$LATEST", T0, 1.0, 1, 128, None, None, None)


def line(i: int, function: str = "fn", message: str | None = None) -> LogEvent:
    return LogEvent(function, f"r{i}", T0, message if message is not None else f"line {i}")


def store_down() -> OperationalError:
    return OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))


def bad_value() -> DataError:
    return DataError("INSERT ...", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))


Failure = Callable[[Sequence[LogEvent], Sequence[InvocationRecord]], BaseException | None]


@dataclass
class FakeWriter:
    in_thread: bool = False  # write in a worker thread, as ThreadWriter does
    rows_per_write: int = 2
    fail_on_write: set[int] = field(default_factory=set)  # 1-based numbers of the writes that fail
    failure: Failure | None = None  # or decide from the rows
    writes: list[tuple[list[str], list[str]]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    checkpoints: int = 0
    closed: bool = False
    attempts: int = 0
    gate: threading.Event | None = None
    hang: asyncio.Event | None = None  # a write waits for it (a hung store)
    hung_fails: bool = False  # a hung write fails once released
    hanging: asyncio.Event = field(default_factory=asyncio.Event)  # a write is hanging
    unhung: asyncio.Event = field(default_factory=asyncio.Event)  # a hung write has ended

    async def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        if self.hang is not None and not self.hang.is_set():
            self.attempts += 1
            self.hanging.set()
            try:
                await self.hang.wait()
                if self.hung_fails:
                    raise store_down()
                self.writes.append(([e.message for e in events], [r.request_id for r in records]))
            finally:
                self.unhung.set()
            return
        if self.in_thread:
            await asyncio.to_thread(self._write, events, records)
        else:
            self._write(events, records)

    def _write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
        self.attempts += 1
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        if self.attempts in self.fail_on_write:
            raise RuntimeError("database is locked")
        if self.failure is not None and (exc := self.failure(events, records)) is not None:
            raise exc
        self.writes.append(([e.message for e in events], [r.request_id for r in records]))

    def checkpoint(self) -> None:
        self.checkpoints += 1

    def close(self) -> None:
        self.closed = True

    def written_records(self) -> list[str]:
        return [rid for _, records in self.writes for rid in records]

    def written_lines(self) -> list[str]:
        return [message for events, _ in self.writes for message in events]


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def settings(**overrides: object) -> TelemetrySettings:
    return dataclasses.replace(TelemetrySettings(), **overrides)  # type: ignore[arg-type]


def make(writer: FakeWriter, tmp_path: Path, metrics: Metrics | None = None, **overrides: object) -> Recorder:
    write_timeout = overrides.pop("write_timeout", None)
    clock = overrides.pop("clock", None)
    return Recorder(
        writer,
        Journal(tmp_path / "journal"),
        settings=settings(**overrides),
        metrics=metrics,
        write_timeout=write_timeout,  # type: ignore[arg-type]
        **({"clock": clock} if clock else {}),  # type: ignore[arg-type]
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# ---- batching (as before) ------------------------------------------------------------------------


async def test_a_flush_writes_batches_of_at_most_rows_per_write(tmp_path: Path) -> None:
    writer = FakeWriter()
    recorder = make(writer, tmp_path)
    for i in range(5):
        recorder.record(record(i))
    for i in range(3):
        recorder.log(line(i))
    await recorder.flush()
    assert writer.writes == [
        (["line 0", "line 1"], ["r0", "r1"]),
        (["line 2"], ["r2", "r3"]),
        ([], ["r4"]),
    ]
    assert writer.threads == {threading.current_thread().name}
    await recorder.flush()  # nothing pending: no empty write
    assert len(writer.writes) == 3


async def test_a_failed_batch_goes_back_in_front_and_nothing_is_written_twice(tmp_path: Path) -> None:
    writer = FakeWriter(fail_on_write={2})
    recorder = make(writer, tmp_path)
    for i in range(5):
        recorder.record(record(i))
        recorder.log(line(i))
    with pytest.raises(StoreFailed):
        await recorder.flush()
    recorder.record(record(5))  # arrived after the failure
    await recorder.flush()
    assert writer.written_records() == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert writer.written_lines() == [f"line {i}" for i in range(5)]


async def test_a_cancelled_reader_does_not_cancel_the_flush(tmp_path: Path) -> None:
    writer = FakeWriter(in_thread=True, gate=threading.Event())
    recorder = make(writer, tmp_path)
    recorder.record(record(1))
    reader = asyncio.create_task(recorder.flush())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert writer.gate is not None
    writer.gate.set()
    await recorder.flush()  # waits for the flush in progress, then finds nothing left
    assert writer.written_records() == ["r1"]


async def test_checkpoints_follow_writes_at_most_every_few_seconds(tmp_path: Path) -> None:
    clock = Clock()
    writer = FakeWriter()
    recorder = make(writer, tmp_path, clock=clock)
    recorder.record(record(1))
    await recorder.tick()
    assert writer.checkpoints == 0  # written, but the last checkpoint is recent
    clock.now += CHECKPOINT_EVERY_S
    await recorder.tick()
    assert writer.checkpoints == 1
    clock.now += CHECKPOINT_EVERY_S
    await recorder.tick()
    assert writer.checkpoints == 1  # nothing written since


async def test_close_writes_what_is_left_and_closes_the_writer(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=10)
    recorder = make(writer, tmp_path, flush_interval_s=60)
    await recorder.start()
    recorder.record(record(1))
    recorder.log(line(1))
    await recorder.close()
    assert writer.writes == [(["line 1"], ["r1"])]
    assert writer.closed
    assert list((tmp_path / "journal").iterdir()) == []  # nothing left for the journal


# ---- records: bounded memory, never dropped -------------------------------------------------------


async def test_records_past_the_backlog_spill_to_the_journal_and_are_replayed_in_order(
    tmp_path: Path,
) -> None:
    metrics = Metrics(CollectorRegistry())
    writer = FakeWriter(rows_per_write=4, failure=lambda e, r: store_down())
    recorder = make(writer, tmp_path, metrics, record_backlog=8)
    await recorder.start()
    try:
        for i in range(30):
            recorder.record(record(i))
            assert sample(metrics, "fnplat_recorder_backlog", kind="records") <= 8  # the bound holds
        assert sample(metrics, "fnplat_recorder_journal_bytes") > 0
        assert sample(metrics, "fnplat_recorder_spilled_records_total") >= 22
        spilled = sample(metrics, "fnplat_recorder_spilled_records_total")
        writer.failure = None  # the store is back
        await tick_until(recorder, lambda: len(writer.written_records()) == 30 and not has_journal(tmp_path))
    finally:
        await recorder.close()
    written = writer.written_records()
    assert sorted(written) == sorted(f"r{i}" for i in range(30))  # each once
    replayed = [r for r in written if int(r[1:]) < spilled]
    assert replayed == [f"r{i}" for i in range(int(spilled))]  # the journal in order
    assert sample(metrics, "fnplat_recorder_journal_bytes") == 0
    assert sample(metrics, "fnplat_recorder_replayed_rows_total") == spilled


async def tick_until(recorder: Recorder, done: Callable[[], bool], rounds: int = 200) -> None:
    for _ in range(rounds):
        if done():
            return
        await recorder.tick()
    raise AssertionError(f"not done after {rounds} rounds")


def has_journal(tmp_path: Path) -> bool:
    return any(p.suffix == ".jsonl" for p in (tmp_path / "journal").iterdir())


async def test_no_record_is_lost_or_written_twice_through_an_outage_with_a_small_backlog(
    tmp_path: Path,
) -> None:
    writer = FakeWriter(rows_per_write=3)
    down = True
    writer.failure = lambda e, r: store_down() if down else None
    recorder = make(writer, tmp_path, record_backlog=5)
    await recorder.start()
    for i in range(100):
        recorder.record(record(i))
        if i % 7 == 0:
            await recorder.tick()
    down = False
    await tick_until(recorder, lambda: len(writer.written_records()) == 100 and not has_journal(tmp_path))
    await recorder.close()
    written = writer.written_records()
    assert sorted(written) == sorted(f"r{i}" for i in range(100))
    assert len(written) == len(set(written))


async def test_a_journal_left_by_a_crash_is_replayed_at_start(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.open()
    first = Recorder(FakeWriter(), journal, settings=settings(record_backlog=2))
    for i in range(10):
        first.record(record(i))  # spills r0..r7 (down to 3/4 of the bound each time)
    first.log(line(0))
    # The process dies here: nothing of close() runs; r8, r9 and the line were only in memory.
    writer = FakeWriter(rows_per_write=3)
    second = make(writer, tmp_path)
    await second.start()
    await tick_until(second, lambda: not has_journal(tmp_path))
    await second.close()
    assert writer.written_records() == [f"r{i}" for i in range(8)]


async def test_a_replay_interrupted_by_a_crash_resumes_at_the_last_chunk_written(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.open()
    from fnplat.journal import encode

    journal.append([encode(record(i)) for i in range(10)])
    journal.seal()
    (segment,) = journal.sealed_segments()
    _, after_four = journal.read(segment, 0, 4)
    journal.advance(segment, after_four)  # a replay wrote 4 records, then the process died

    writer = FakeWriter(rows_per_write=3)
    recorder = make(writer, tmp_path)
    await recorder.start()
    await tick_until(recorder, lambda: not has_journal(tmp_path))
    await recorder.close()
    assert writer.written_records() == [f"r{i}" for i in range(4, 10)]


async def test_records_stay_in_memory_when_the_journal_cannot_be_written(tmp_path: Path) -> None:
    class FullDisk(Journal):
        def append(self, lines: Sequence[bytes]) -> None:
            raise OSError(28, "No space left on device")

    writer = FakeWriter(failure=lambda e, r: store_down())
    recorder = Recorder(writer, FullDisk(tmp_path / "journal"), settings=settings(record_backlog=4))
    await recorder.start()
    for i in range(20):
        recorder.record(record(i))
    writer.failure = None
    await recorder.flush()
    await recorder.close()
    assert writer.written_records() == [f"r{i}" for i in range(20)]


# ---- lines: bounded, dropped with a count ---------------------------------------------------------


async def test_lines_past_the_byte_bound_are_dropped_and_counted_in_the_logs_and_a_metric(
    tmp_path: Path,
) -> None:
    metrics = Metrics(CollectorRegistry())
    writer = FakeWriter(rows_per_write=100, failure=lambda e, r: store_down())
    room = 10 * (len("line 0") + LINE_OVERHEAD)
    recorder = make(writer, tmp_path, metrics, log_backlog_bytes=room)
    for i in range(10):
        recorder.log(line(i))
    for i in range(10, 1244):
        recorder.log(line(i % 10, "fn"))
    for i in range(3):
        recorder.log(line(i, "other"))
    await recorder.tick()
    assert sample(metrics, "fnplat_recorder_dropped_lines_total", function="fn") == 1234
    assert sample(metrics, "fnplat_recorder_dropped_lines_total", function="other") == 3
    writer.failure = None
    await recorder.tick()  # the held lines, then the notices
    await recorder.tick()
    lines = writer.written_lines()
    assert lines[:10] == [f"line {i}" for i in range(10)]
    assert set(lines[10:]) == {DROPPED_NOTICE.format(count=3), DROPPED_NOTICE.format(count=1234)}
    assert len(lines) == 12
    notice = "[fnplat] 1234 log lines dropped: the log store was unavailable"
    assert DROPPED_NOTICE.format(count=1234) == notice
    recorder.log(line(99))  # room again
    await recorder.flush()
    assert writer.written_lines()[-1] == "line 99"


async def test_the_line_bound_counts_lines_being_written(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=100, hang=asyncio.Event())
    room = 4 * (len("line 0") + LINE_OVERHEAD)
    recorder = make(writer, tmp_path, log_backlog_bytes=room, write_timeout=0.01)
    for i in range(4):
        recorder.log(line(i))
    with pytest.raises(StoreFailed):
        await recorder.flush()  # the 4 lines are in flight now, not in the list
    recorder.log(line(4))
    recorder.log(line(5))
    assert writer.hang is not None
    writer.hang.set()
    await writer.unhung.wait()
    await recorder.flush()
    assert writer.written_lines() == [f"line {i}" for i in range(4)] + [DROPPED_NOTICE.format(count=2)]


# ---- bad rows ---------------------------------------------------------------------------------------


async def test_a_bad_row_in_the_middle_is_rejected_and_every_other_row_is_written(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())

    def refuse_nul(events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> BaseException | None:
        return bad_value() if any("\x00" in e.message for e in events) else None

    writer = FakeWriter(rows_per_write=100, failure=refuse_nul)
    recorder = make(writer, tmp_path, metrics)
    await recorder.start()
    for i in range(40):
        recorder.log(line(i, message="bad\x00line" if i == 17 else f"line {i}"))
        recorder.record(record(i))
    await recorder.flush()
    await recorder.close()
    assert writer.written_lines() == [f"line {i}" for i in range(40) if i != 17]
    assert writer.written_records() == [f"r{i}" for i in range(40)]
    assert sample(metrics, "fnplat_recorder_rejected_rows_total", function="fn", kind="line") == 1
    assert sample(metrics, "fnplat_recorder_write_failures_total", reason="row") >= 1
    rejected = (tmp_path / "journal" / REJECTED_FILE).read_text()
    assert "r17" in rejected and "NUL" in rejected


async def test_a_store_outage_is_retried_not_split(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=100, failure=lambda e, r: store_down())
    recorder = make(writer, tmp_path)
    for i in range(64):
        recorder.record(record(i))
    with pytest.raises(StoreFailed):
        await recorder.flush()
    assert writer.attempts == 1  # one transaction tried, not split
    writer.failure = None
    await recorder.flush()
    assert writer.written_records() == [f"r{i}" for i in range(64)]
    assert not (tmp_path / "journal" / REJECTED_FILE).exists()


# ---- a hung store -----------------------------------------------------------------------------------


async def test_a_write_that_outlives_its_timeout_blocks_further_writes_until_it_ends(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    writer = FakeWriter(rows_per_write=100, hang=asyncio.Event())
    recorder = make(writer, tmp_path, metrics, write_timeout=0.01)
    recorder.record(record(1))
    with pytest.raises(StoreFailed) as failed:
        await recorder.flush()
    assert isinstance(failed.value.cause, StoreTimeout)
    recorder.record(record(2))
    with pytest.raises(StoreTimeout):
        await recorder.flush()  # nothing new starts while the first write may still commit
    assert writer.attempts == 1
    assert writer.hang is not None
    writer.hang.set()
    await writer.unhung.wait()
    await recorder.flush()
    assert writer.written_records() == ["r1", "r2"]  # r1 by the hung write, once
    assert sample(metrics, "fnplat_recorder_write_failures_total", reason="timeout") == 1


async def test_a_hung_write_that_fails_in_the_end_is_retried(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=100, hang=asyncio.Event(), hung_fails=True)
    recorder = make(writer, tmp_path, write_timeout=0.01)
    recorder.record(record(1))
    with pytest.raises(StoreFailed):
        await recorder.flush()
    assert writer.hang is not None
    writer.hang.set()
    await writer.unhung.wait()
    await recorder.flush()
    assert writer.written_records() == ["r1"]


async def test_close_is_bounded_by_a_hung_store_and_journals_what_is_unwritten(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=100, hang=asyncio.Event())
    recorder = make(writer, tmp_path, write_timeout=30.0, close_timeout_s=0.2, flush_interval_s=0.01)
    await recorder.start()
    recorder.record(record(1))
    recorder.log(line(1))
    await writer.hanging.wait()  # the background loop's write
    recorder.record(record(2))
    async with asyncio.timeout(5):
        await recorder.close()
    assert writer.closed and writer.writes == []

    replayer = FakeWriter(rows_per_write=100)
    again = make(replayer, tmp_path)
    await again.start()
    await tick_until(again, lambda: not has_journal(tmp_path))
    await again.close()
    assert sorted(replayer.written_records()) == ["r1", "r2"]
    assert replayer.written_lines() == ["line 1"]


async def test_close_takes_back_the_rows_of_a_readers_flush_stuck_on_a_hung_store(tmp_path: Path) -> None:
    writer = FakeWriter(rows_per_write=100, hang=asyncio.Event())
    recorder = make(writer, tmp_path, write_timeout=30.0, close_timeout_s=0.2, flush_interval_s=3600)
    await recorder.start()
    recorder.record(record(1))
    reader = asyncio.create_task(recorder.flush_before_read(30))  # `fnctl logs` while the store hangs
    await writer.hanging.wait()
    recorder.record(record(2))
    async with asyncio.timeout(5):
        await recorder.close()
    with pytest.raises(asyncio.CancelledError):
        await reader

    replayer = FakeWriter(rows_per_write=100)
    again = make(replayer, tmp_path)
    await again.start()
    await tick_until(again, lambda: not has_journal(tmp_path))
    await again.close()
    assert sorted(replayer.written_records()) == ["r1", "r2"]
