"""Between the threads that read tasks' output and the event loop: every output line passes here
(it is the engine's `OutputSink`).

On the reading threads, each line is charged to its function's budget (output_limits.py) and,
when admitted, decoded and put in a bounded outbox; a line over budget, or one that finds the
outbox full because the loop is not keeping up, is dropped there and then and counted in a
notice. Nothing queues without bound, whatever a function writes.

The loop is woken once for a batch, not once per line, and takes at most `batch` lines per turn
before yielding to its other callbacks. A notice ("N lines dropped") is written to the
function's log, and counted in the metrics, NOTICE_AFTER_S after its first drop: at most one per
function and reason each second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from fnplat.controller.output_limits import (
    BACKLOG,
    RATE_LIMIT,
    DropLedger,
    DropNotice,
    OutputBudget,
    OutputLimits,
)

log = logging.getLogger(__name__)

OUTBOX_LINES = 10_000  # lines read and not yet taken in by the loop
OUTBOX_BYTES = 16 * 1024 * 1024
DRAIN_BATCH = 500  # lines the loop takes in per turn
NOTICE_AFTER_S = 1.0

LineCallback = Callable[[str, str, float], None]  # (container id, line, unix timestamp), on the loop
NoticeCallback = Callable[[DropNotice, str], None]  # (notice, its text), on the loop


class OutputGate:
    def __init__(
        self,
        limits: OutputLimits,
        loop: asyncio.AbstractEventLoop,
        *,
        on_line: LineCallback,
        on_dropped: NoticeCallback,
        clock: Callable[[], float] = time.monotonic,
        outbox_lines: int = OUTBOX_LINES,
        outbox_bytes: int = OUTBOX_BYTES,
        batch: int = DRAIN_BATCH,
        notice_after_s: float = NOTICE_AFTER_S,
    ) -> None:
        self.limits = limits
        self._loop = loop
        self._on_line = on_line
        self._on_dropped = on_dropped
        self._clock = clock
        self._max_lines = outbox_lines
        self._max_bytes = outbox_bytes
        self._batch = batch
        self._lock = threading.Lock()
        self._budgets: dict[str, OutputBudget] = {}
        self._notice_after_s = notice_after_s
        self._ledger = DropLedger(notice_after_s)
        self._outbox: deque[tuple[str, str, float, int]] = deque()  # (container, line, time, bytes)
        self._outbox_bytes = 0
        self._drain_scheduled = False
        self._sweep_scheduled = False
        self._closed = False

    @property
    def max_line_bytes(self) -> int:
        return self.limits.max_line_bytes

    # -- on any thread ----------------------------------------------------------------------------
    def offer(self, function: str, container_id: str, line: bytes, timestamp: float) -> None:
        size = len(line)
        callback: Callable[[], None] | None = None
        with self._lock:
            now = self._clock()
            budget = self._budgets.get(function)
            if budget is None:
                budget = self._budgets[function] = OutputBudget(self.limits, now)
            if not budget.take(size, now):
                if self._drop(function, RATE_LIMIT, container_id, size, timestamp, now):
                    callback = self._arm_sweep
            elif len(self._outbox) >= self._max_lines or self._outbox_bytes + size > self._max_bytes:
                if self._drop(function, BACKLOG, container_id, size, timestamp, now):
                    callback = self._arm_sweep
            else:
                self._outbox.append((container_id, line.decode("utf-8", "replace"), timestamp, size))
                self._outbox_bytes += size
                if not self._drain_scheduled:
                    self._drain_scheduled = True
                    callback = self._drain
        if callback is not None:
            self._call_soon(callback)

    def backlog(self) -> tuple[int, int]:
        """(lines, bytes) read and not yet taken in by the loop."""
        with self._lock:
            return len(self._outbox), self._outbox_bytes

    # -- on the loop ------------------------------------------------------------------------------
    def forget(self, function: str) -> None:
        """The function is gone: drop its budget (it starts full if it ever comes back)."""
        with self._lock:
            self._budgets.pop(function, None)

    def close(self) -> None:
        """Write the notices still open; nothing is scheduled afterwards."""
        with self._lock:
            self._closed = True
            notices = self._ledger.close_all()
        self._write_notices(notices)

    def _drain(self) -> None:
        with self._lock:
            outbox = self._outbox
            taken = [outbox.popleft() for _ in range(min(self._batch, len(outbox)))]
            self._outbox_bytes -= sum(item[3] for item in taken)
            more = bool(outbox)
            self._drain_scheduled = more
        if more:
            self._loop.call_soon(self._drain)  # the rest next turn: other callbacks go first
        on_line = self._on_line
        for container_id, line, timestamp, _ in taken:
            try:
                on_line(container_id, line, timestamp)
            except Exception:
                log.exception("delivering an output line of %s failed", container_id[:12])

    def _arm_sweep(self) -> None:
        self._loop.call_later(self._notice_after_s, self._sweep)

    def _sweep(self) -> None:
        with self._lock:
            if self._closed:
                return  # close() wrote them
            notices, next_due = self._ledger.due(self._clock())
            self._sweep_scheduled = next_due is not None and not self._closed
        if self._sweep_scheduled and next_due is not None:
            self._loop.call_later(max(0.0, next_due - self._clock()), self._sweep)
        self._write_notices(notices)

    def _write_notices(self, notices: list[DropNotice]) -> None:
        for notice in notices:
            try:
                self._on_dropped(notice, notice.text(self.limits))
            except Exception:
                log.exception("writing an output drop notice for %s failed", notice.function)

    # -- helpers ----------------------------------------------------------------------------------
    def _drop(
        self, function: str, reason: str, container_id: str, size: int, timestamp: float, now: float
    ) -> bool:
        """Under the lock: count a dropped line; True when the sweep must be armed."""
        opened = self._ledger.dropped(function, reason, container_id, size, timestamp, now)
        if not opened or self._sweep_scheduled or self._closed:
            return False
        self._sweep_scheduled = True
        return True

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(callback)
