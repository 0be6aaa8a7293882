"""The recorder's batching: slices, retries without loss or duplicates, checkpoints, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.recorder import CHECKPOINT_EVERY_S, Recorder

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def record(i: int) -> InvocationRecord:
    return InvocationRecord(f"r{i}", "fn", 1, "$LATEST", T0, 1.0, 1, 128, None, None, None)


def line(i: int) -> LogEvent:
    return LogEvent("fn", f"r{i}", T0, f"line {i}")


@dataclass
class FakeWriter:
    in_thread: bool = False  # write in a worker thread, as ThreadWriter does
    rows_per_write: int = 2
    fail_on_write: set[int] = field(default_factory=set)  # 1-based numbers of the writes that fail
    writes: list[tuple[list[str], list[str]]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    checkpoints: int = 0
    closed: bool = False
    attempts: int = 0
    gate: threading.Event | None = None

    async def write(self, events: Sequence[LogEvent], records: Sequence[InvocationRecord]) -> None:
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


async def test_a_flush_writes_batches_of_at_most_rows_per_write() -> None:
    writer = FakeWriter()
    recorder = Recorder(writer)
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


async def test_a_failed_batch_goes_back_in_front_and_nothing_is_written_twice() -> None:
    writer = FakeWriter(fail_on_write={2})
    recorder = Recorder(writer)
    for i in range(5):
        recorder.record(record(i))
        recorder.log(line(i))
    with pytest.raises(RuntimeError):
        await recorder.flush()
    recorder.record(record(5))  # arrived after the failure
    await recorder.flush()
    assert writer.written_records() == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert writer.written_lines() == [f"line {i}" for i in range(5)]


async def test_a_cancelled_reader_does_not_cancel_the_flush() -> None:
    writer = FakeWriter(in_thread=True, gate=threading.Event())
    recorder = Recorder(writer)
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


async def test_checkpoints_follow_writes_at_most_every_few_seconds() -> None:
    clock = Clock()
    writer = FakeWriter()
    recorder = Recorder(writer, clock=clock)
    recorder.record(record(1))
    await recorder.tick()
    assert writer.checkpoints == 0  # written, but the last checkpoint is recent
    clock.now += CHECKPOINT_EVERY_S
    await recorder.tick()
    assert writer.checkpoints == 1
    clock.now += CHECKPOINT_EVERY_S
    await recorder.tick()
    assert writer.checkpoints == 1  # nothing written since


async def test_close_writes_what_is_left_and_closes_the_writer() -> None:
    writer = FakeWriter(rows_per_write=10)
    recorder = Recorder(writer, interval=60)
    await recorder.start()
    recorder.record(record(1))
    recorder.log(line(1))
    await recorder.close()
    assert writer.writes == [(["line 1"], ["r1"])]
    assert writer.closed
