"""Writes invocation records and log lines to the store in batches, off the hot path.

The controller calls `log()` and `record()` synchronously (an append to a list); a background
task flushes every `interval` seconds, or sooner when a batch fills, in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store import repository
from fnplat.store.db import transaction

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self, sessions: sessionmaker[Session], *, interval: float = 0.5, batch_size: int = 500
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._batch_size = batch_size
        self._events: list[LogEvent] = []
        self._records: list[InvocationRecord] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Write everything pending; callers that read logs call this first."""
        async with self._flush_lock:
            events, self._events = self._events, []
            records, self._records = self._records, []
            if not (events or records):
                return
            try:
                await asyncio.to_thread(self._write, events, records)
            except Exception:
                # Put the batch back in front so a passing store failure loses nothing.
                self._events[:0] = events
                self._records[:0] = records
                raise

    def _write(self, events: list[LogEvent], records: list[InvocationRecord]) -> None:
        with transaction(self._sessions) as session:
            if records:
                repository.add_invocation_records(session, records)
            if events:
                repository.add_log_events(session, events)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a failed batch must not stop the writer; it stays queued for the next try
                log.exception("writing invocation records and logs failed")


RecordSink = Callable[[InvocationRecord], None]
LogSink = Callable[[LogEvent], None]
