"""Writes invocation records and output lines to the store in batches, off the hot path, within
bounds that a store outage, a hung store or a bad row cannot break.

The controller calls `log()` and `record()` synchronously (an append to a list and a bound
check); a background task writes every `interval` seconds, or sooner when a batch fills,
through the backend's `TelemetryWriter` (store/telemetry_writers.py: on the loop for SQLite, in
a thread for Postgres), one transaction per `rows_per_write` rows. Then:

- Records are never dropped. While the store fails they are held in memory up to
  `record_backlog`; past it the oldest spill to the journal (fnplat/journal.py), which is
  replayed, in order, when the store takes writes again, and at the next start after a crash.
  Replaying is safe: the store skips a request id it already has.
- Lines may be dropped, and only counted: past `log_backlog_bytes` held, a new line is dropped
  and counted per function (metric `fnplat_recorder_dropped_lines`); once the store takes writes
  again each function's logs get one line saying how many (`DROPPED_NOTICE`).
- One bad row never blocks the others: a transaction refused for its values is split until the
  rows at fault are alone (fnplat/bad_rows.py); those are rejected (logged with their request
  id, counted, kept in journal/rejected.jsonl). Any other failure is the store's: the same rows
  are retried, in front of what arrived meanwhile, so nothing is lost or written twice.
- A hung store holds nothing: a write is awaited at most `write_timeout` seconds. A write that
  has not ended by then is "in flight": no other write starts until it ends (so its rows are
  never written twice), and its outcome settles its rows.
- `close()` is bounded by `close_timeout`: whatever is not written by then, in memory or in
  flight, goes to the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from fnplat.bad_rows import Batch, StoreFailed, write_isolating
from fnplat.config import TelemetrySettings
from fnplat.domain import InvocationRecord, LogEvent
from fnplat.journal import Entry, Journal, decode, encode_all
from fnplat.metrics import Metrics
from fnplat.store.calls import StoreTimeout, is_row_error, run_blocking
from fnplat.store.telemetry_writers import TelemetryWriter

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 5.0
LINE_OVERHEAD = 128  # bytes a held line costs besides its text (the object, its list slot)
REPLAY_CHUNKS_PER_TICK = 8  # then the memory backlog gets its turn
JOURNAL_SYNC_WAIT_S = 10.0
STOP_WRITING_WAIT_S = 2.0  # a cancelled write on the loop rolls back at its next pause
DROPPED_NOTICE = "[fnplat] {count} log lines dropped: the log store was unavailable"

RecordSink = Callable[[InvocationRecord], None]
LogSink = Callable[[LogEvent], None]


def _line_bytes(events: Iterable[LogEvent]) -> int:
    return sum(len(e.message) + LINE_OVERHEAD for e in events)


class Recorder:
    def __init__(
        self,
        writer: TelemetryWriter,
        journal: Journal,
        *,
        settings: TelemetrySettings | None = None,
        metrics: Metrics | None = None,
        write_timeout: float | None = None,
        batch_size: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = settings or TelemetrySettings()
        self._writer = writer
        self._journal = journal
        self._metrics = (metrics or Metrics()).telemetry
        self._interval = s.flush_interval_s
        self._record_backlog = max(1, s.record_backlog)
        self._log_backlog_bytes = s.log_backlog_bytes
        self._close_timeout = s.close_timeout_s
        self._write_timeout = s.store_call_deadline_s if write_timeout is None else write_timeout
        self._batch_size = batch_size
        # record() looks at one number: the first length that needs a wake-up or a spill.
        self._records_check = min(batch_size, self._record_backlog + 1)
        self._clock = clock
        self._events: list[LogEvent] = []
        self._records: list[InvocationRecord] = []
        self._held_line_bytes = 0  # lines in memory, in hand and in flight
        self._dropped: dict[str, int] = {}
        self._in_flight: asyncio.Future[None] | None = None  # a write that outlived write_timeout
        self._in_flight_batch: Batch | None = None  # its rows when they came from memory
        self._store_ok = True
        self._journal_failing = False
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._replay_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[object] | None = None  # the task holding _flush_lock
        self._last_checkpoint = clock()
        self._written_since_checkpoint = False
        self._closing = False

    # ---- the hot path ----------------------------------------------------------------------

    def log(self, event: LogEvent) -> None:
        held = self._held_line_bytes + len(event.message) + LINE_OVERHEAD
        if held > self._log_backlog_bytes:
            self._drop(event.function_name)
            return
        self._held_line_bytes = held
        events = self._events
        events.append(event)
        if len(events) >= self._batch_size:
            self._wake.set()

    def record(self, record: InvocationRecord) -> None:
        records = self._records
        records.append(record)
        if len(records) >= self._records_check:
            if len(records) >= self._batch_size:
                self._wake.set()
            if len(records) > self._record_backlog:
                self._spill()

    def _drop(self, function_name: str) -> None:
        self._dropped[function_name] = self._dropped.get(function_name, 0) + 1
        self._metrics.line_dropped(function_name)

    # ---- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._journal.open()
        self._metrics.backlog.labels("records").set_function(lambda: len(self._records))
        self._metrics.backlog.labels("lines").set_function(lambda: len(self._events))
        self._metrics.journal_bytes.set_function(lambda: self._journal.size_bytes)
        if self._journal.has_backlog():
            size, where = self._journal.size_bytes, self._journal.directory
            log.info("replaying %d bytes of telemetry journal from %s", size, where)
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name="recorder")

    async def close(self) -> None:
        """Write what can be written within `close_timeout`; journal the rest."""
        self._closing = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._close_timeout
        try:
            if self._task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    self._task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._task
            await self._stop_writing()
            try:
                # Not shielded: at the deadline the write in progress is abandoned and journaled.
                await asyncio.wait_for(self._flush(), max(0.0, deadline - loop.time()))
            except (TimeoutError, StoreFailed, StoreTimeout) as exc:
                log.warning("the store did not take the last telemetry before shutdown (%s)", exc)
        finally:
            self._journal_the_rest()
            self._journal.close()
            self._writer.close()

    async def flush(self) -> None:
        """Write what is held in memory; callers that read logs call this first. Raises StoreFailed
        or StoreTimeout when the store fails (the rows stay queued).

        A cancelled caller stops waiting, but the flush goes on: a slice cancelled while a thread
        writes it could not be known to be written or not.
        """
        await asyncio.shield(self._flush())

    async def flush_before_read(self, wait_s: float) -> None:
        """`flush()` for a reader: waits at most `wait_s` seconds and never raises (a reader
        still gets what the store has)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), wait_s)

    async def tick(self) -> None:
        """One round of the background loop: settle, write memory, replay the journal, then the
        writer's maintenance when rows were written and CHECKPOINT_EVERY_S passed since the last."""
        try:
            try:
                await self._flush()  # not shielded: close() can cancel the loop's writes
            except (StoreFailed, StoreTimeout):
                return  # _write_once logged it; the rows wait for the next round
            await self._replay()
            if self._written_since_checkpoint and self._clock() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
                self._written_since_checkpoint = False
                self._last_checkpoint = self._clock()
                await asyncio.to_thread(self._writer.checkpoint)
        finally:
            if len(self._records) > self._record_backlog:
                self._spill()  # rows handed back by a failed write
            if not self._closing:  # close() syncs the journal itself
                await self._sync_journal()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # a bug must not stop the writer; what it holds stays queued
                log.exception("writing invocation records and logs failed")

    # ---- writing ---------------------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._flush_lock, self._holding_the_lock():
            if not self._settle():
                raise StoreTimeout("an earlier telemetry write has not ended")
            if self._dropped and self._store_ok:
                self._add_drop_notices()
            step = self._writer.rows_per_write
            # Only what is held now: under steady load a flush must end.
            rounds = math.ceil(max(len(self._events), len(self._records)) / step)
            for _ in range(rounds):
                if not (self._events or self._records):
                    break
                batch = Batch(self._events[:step], self._records[:step])
                del self._events[:step], self._records[:step]
                await self._write_from_memory(batch)
            if self._dropped and self._store_ok:
                self._add_drop_notices()  # written with the next batch

    @contextlib.asynccontextmanager
    async def _holding_the_lock(self) -> AsyncIterator[None]:
        self._writing = asyncio.current_task()
        try:
            yield
        finally:
            self._writing = None

    async def _stop_writing(self) -> None:
        """At shutdown: cancel the write in progress (a reader's flush may hold the lock), so its
        rows go back to memory and close() journals them."""
        writing = self._writing
        if writing is not None and writing is not asyncio.current_task():
            writing.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({writing}, timeout=STOP_WRITING_WAIT_S)

    async def _write_from_memory(self, batch: Batch) -> None:
        try:
            await write_isolating(self._write_once, batch, self._reject)
        except asyncio.CancelledError:
            # Shutdown gave up on the store: the batch goes back, and close() journals it.
            self._requeue(batch)
            raise
        except StoreFailed as failed:
            self._requeue(failed.unwritten)
            if failed.in_doubt is not None:
                self._in_flight_batch = failed.in_doubt
            still_held = failed.unwritten.events + (failed.in_doubt.events if failed.in_doubt else [])
            self._held_line_bytes -= _line_bytes(batch.events) - _line_bytes(still_held)
            raise
        self._held_line_bytes -= _line_bytes(batch.events)

    async def _write_once(self, part: Batch) -> None:
        """One transaction, awaited at most write_timeout seconds."""
        started = time.perf_counter()
        task = asyncio.ensure_future(self._writer.write(part.events, part.records))
        try:
            await asyncio.wait_for(asyncio.shield(task), self._write_timeout)
        except TimeoutError:
            self._in_flight = task
            self._metrics.write_failures.labels("timeout").inc()
            exc = StoreTimeout(f"a telemetry write did not end within {self._write_timeout} s")
            self._store_down(exc)
            raise exc from None
        except asyncio.CancelledError:
            task.cancel()  # a write on the loop (SQLite) rolls back; a thread's is abandoned
            with contextlib.suppress(BaseException):
                await asyncio.wait({task}, timeout=1.0)
            raise
        except Exception as exc:
            row = is_row_error(exc)
            self._metrics.write_failures.labels("row" if row else "unavailable").inc()
            if not row:
                self._store_down(exc)
            raise
        self._metrics.write_duration.observe(time.perf_counter() - started)
        self._written_since_checkpoint = True
        self._store_up()

    def _settle(self) -> bool:
        """Account for a write that outlived its timeout, once it has ended; False while it runs."""
        task = self._in_flight
        if task is None:
            return True
        if not task.done():
            return False
        batch, self._in_flight, self._in_flight_batch = self._in_flight_batch, None, None
        failed = task.cancelled() or task.exception() is not None
        if batch is not None:
            if failed:
                self._requeue(batch)
            else:
                self._held_line_bytes -= _line_bytes(batch.events)
        if not failed:
            self._store_up()
        return True

    def _requeue(self, batch: Batch) -> None:
        """Rows not written go back in front of what arrived meanwhile (already counted)."""
        self._events[:0] = batch.events
        self._records[:0] = batch.records

    def _reject(self, entry: Entry, exc: BaseException) -> None:
        kind = "record" if isinstance(entry, InvocationRecord) else "line"
        reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "the store refused a %s of function %s (request %s); kept in %s: %s",
            kind,
            entry.function_name,
            entry.request_id,
            self._journal.directory,
            reason[:500],
        )
        self._metrics.rejected_rows.labels(entry.function_name, kind).inc()
        self._journal.reject(entry, reason)

    def _add_drop_notices(self) -> None:
        now = datetime.now(UTC)
        dropped, self._dropped = self._dropped, {}
        for name, count in dropped.items():
            notice = LogEvent(name, None, now, DROPPED_NOTICE.format(count=count))
            self._held_line_bytes += len(notice.message) + LINE_OVERHEAD
            self._events.append(notice)

    # ---- the journal -----------------------------------------------------------------------

    def _spill(self) -> None:
        """Move the oldest records to the journal, down to 3/4 of the bound (not one at a time)."""
        excess = len(self._records) - self._record_backlog * 3 // 4
        if excess <= 0:
            return
        chunk = self._records[:excess]
        lines, unencodable = encode_all(chunk)
        try:
            self._journal.append(lines)
        except OSError as exc:
            # Nowhere to put them: memory is the only place left, so they stay there.
            if not self._journal_failing:
                log.error("cannot write the telemetry journal in %s: %s", self._journal.directory, exc)
            self._journal_failing = True
            return
        self._journal_failing = False
        del self._records[:excess]
        self._metrics.spilled_records.inc(len(lines))
        for entry, reason in unencodable:
            self._reject(entry, ValueError(reason))

    async def _replay(self) -> None:
        """Write journal segments back, oldest first, a few chunks per round."""
        if not self._journal.has_backlog() or self._closing or self._replay_lock.locked():
            return
        async with self._replay_lock:
            await self._replay_segments()

    async def _replay_segments(self) -> None:
        self._journal.seal()  # appends from now on go to a new segment, never to one being read
        chunks = 0
        for segment in self._journal.sealed_segments():
            offset = self._journal.position(segment)
            while True:
                if chunks == REPLAY_CHUNKS_PER_TICK or self._closing:
                    self._wake.set()  # more to do: no pause before the next round
                    return
                lines, end = self._journal.read(segment, offset, self._writer.rows_per_write)
                if not lines:
                    self._journal.finish(segment)
                    break
                chunks += 1
                if not await self._replay_chunk(segment, lines, end):
                    return
                offset = end
        self._journal.recount()

    async def _replay_chunk(self, segment: Path, lines: list[bytes], end: int) -> bool:
        batch = Batch()
        for line in lines:
            try:
                entry = decode(line)
            except ValueError as exc:
                self._journal.reject(line, str(exc))
                continue
            if isinstance(entry, InvocationRecord):
                batch.records.append(entry)
            else:
                batch.events.append(entry)
        async with self._flush_lock, self._holding_the_lock():
            if not self._settle():
                return False
            try:
                await write_isolating(self._write_once, batch, self._reject)
            except StoreFailed as failed:
                if failed.written and failed.in_doubt is None:
                    # Part of the chunk is written: move the rest to the active segment, so the
                    # written part is not replayed again (lines have no key to skip them by).
                    rest, _ = encode_all([*failed.unwritten.records, *failed.unwritten.events])
                    with contextlib.suppress(OSError):
                        self._journal.append(rest)
                        self._journal.advance(segment, end)
                return False
        self._journal.advance(segment, end)
        self._metrics.replayed_rows.inc(len(batch))
        return True

    def _journal_the_rest(self) -> None:
        """At shutdown: everything not written goes to the journal."""
        self._settle()
        entries: list[Entry] = []
        if self._in_flight_batch is not None:  # may still commit: records are idempotent
            entries += self._in_flight_batch.records
            entries += self._in_flight_batch.events
            self._in_flight_batch = None
        if self._dropped:
            self._add_drop_notices()
        entries += self._records
        entries += self._events
        if not entries:
            return
        lines, unencodable = encode_all(entries)
        for entry, reason in unencodable:
            self._reject(entry, ValueError(reason))
        try:
            self._journal.append(lines)
        except OSError as exc:
            log.error("lost %d telemetry rows at shutdown: cannot write the journal: %s", len(lines), exc)
            return
        log.info("%d telemetry rows kept in the journal for the next start", len(lines))
        self._records, self._events = [], []

    async def _sync_journal(self) -> None:
        fd = self._journal.sync_handle()
        if fd is None:
            return

        def sync() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        # Bounded: a disk that hangs an fsync must not stop the writes to the store.
        with contextlib.suppress(OSError, StoreTimeout):
            await run_blocking(sync, JOURNAL_SYNC_WAIT_S)

    # ---- the store's state, logged when it changes -----------------------------------------

    def _store_down(self, exc: BaseException) -> None:
        if self._store_ok:
            log.warning(
                "the store is not taking telemetry (%s: %s); records are held in memory up to %d,"
                " then in the journal",
                type(exc).__name__,
                str(exc)[:300],
                self._record_backlog,
            )
        self._store_ok = False

    def _store_up(self) -> None:
        if not self._store_ok:
            log.info("the store takes telemetry again")
        self._store_ok = True
