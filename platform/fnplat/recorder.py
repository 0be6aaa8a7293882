"""Writes invocation records and output lines to the store in batches, off the hot path.

The controller calls `log()` and `record()` synchronously (an append to a list); a background
task flushes every `interval` seconds, or sooner when a batch fills, through the backend's
`TelemetryWriter` (store/telemetry_writers.py: on the loop for SQLite, in a thread for Postgres),
one transaction per `rows_per_write` rows. A transaction that fails goes back to the front of the
queue, so a passing store failure loses nothing and writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store.telemetry_writers import TelemetryWriter

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 5.0


class Recorder:
    def __init__(
        self,
        writer: TelemetryWriter,
        *,
        interval: float = 0.5,
        batch_size: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._interval = interval
        self._batch_size = batch_size
        self._clock = clock
        self._events: list[LogEvent] = []
        self._records: list[InvocationRecord] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_checkpoint = clock()
        self._written_since_checkpoint = False
        self._closing = False

    def log(self, event: LogEvent) -> None:
        self._events.append(event)
        if len(self._events) >= self._batch_size:
            self._wake.set()

    def record(self, record: InvocationRecord) -> None:
        self._records.append(record)
        if len(self._records) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recorder")

    async def close(self) -> None:
        # Not cancelled: a slice being written in a thread would be written again by the final flush.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        try:
            await self.flush()
        finally:
            self._writer.close()

    async def flush(self) -> None:
        """Write everything pending; callers that read logs call this first.

        A cancelled caller stops waiting, but the flush goes on: a slice cancelled while a thread
        writes it could not be known to be written or not.
        """
        await asyncio.shield(self._flush())

    async def _flush(self) -> None:
        async with self._flush_lock:
            events, self._events = self._events, []
            records, self._records = self._records, []
            step = self._writer.rows_per_write
            done_events = done_records = 0
            try:
                while done_events < len(events) or done_records < len(records):
                    some_events = events[done_events : done_events + step]
                    some_records = records[done_records : done_records + step]
                    await self._writer.write(some_events, some_records)
                    done_events += len(some_events)
                    done_records += len(some_records)
                    self._written_since_checkpoint = True
            except Exception:
                # Put back what was not written, in front of what arrived meanwhile.
                self._events[:0] = events[done_events:]
                self._records[:0] = records[done_records:]
                raise

    async def tick(self) -> None:
        """One round of the background loop: flush, then the writer's maintenance when rows were
        written and CHECKPOINT_EVERY_S passed since the last."""
        await self.flush()
        if not self._written_since_checkpoint or self._clock() - self._last_checkpoint < CHECKPOINT_EVERY_S:
            return
        self._written_since_checkpoint = False
        self._last_checkpoint = self._clock()
        await asyncio.to_thread(self._writer.checkpoint)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # a failed slice must not stop the writer; it stays queued for the next try
                log.exception("writing invocation records and logs failed")


RecordSink = Callable[[InvocationRecord], None]
LogSink = Callable[[LogEvent], None]
