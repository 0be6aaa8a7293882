"""What a function's output may cost: line and byte budgets per function, and the notices that
say what was dropped.

Pure (no threads, no I/O, the time is passed in): output_gate.py applies it to the lines the
engine reads. A budget is two token buckets, lines and bytes, refilled at the configured rates
and holding `burst_s` seconds' worth, so a function may print a burst (a stack trace, a dump)
at once but not sustain more than the rates; all tasks of a function share its budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from fnplat.config import OutputSettings
from fnplat.controller.docker_log_lines import TRUNCATED

RATE_LIMIT = "rate_limit"  # the function's budget is spent
BACKLOG = "backlog"  # the event loop has not taken in the lines before it yet


@dataclass(frozen=True, slots=True)
class OutputLimits:
    lines_per_s: float  # <= 0: no limit
    bytes_per_s: float  # <= 0: no limit
    burst_s: float
    max_line_bytes: int

    @classmethod
    def from_settings(cls, settings: OutputSettings) -> OutputLimits:
        return cls(settings.lines_per_s, settings.bytes_per_s, settings.burst_s, settings.max_line_bytes)

    @property
    def line_capacity(self) -> float:
        return max(1.0, self.lines_per_s * self.burst_s) if self.lines_per_s > 0 else float("inf")

    @property
    def byte_capacity(self) -> float:
        if self.bytes_per_s <= 0:
            return float("inf")
        # A line cut at the limit, with its marker, must always fit, however low the rate.
        longest = self.max_line_bytes + len(TRUNCATED % self.max_line_bytes)
        return max(float(longest), self.bytes_per_s * self.burst_s)


class OutputBudget:
    """One function's buckets; full when created."""

    __slots__ = ("_at", "_byte_cap", "_byte_rate", "_bytes", "_line_cap", "_line_rate", "_lines")

    def __init__(self, limits: OutputLimits, now: float) -> None:
        self._line_cap = self._lines = limits.line_capacity
        self._byte_cap = self._bytes = limits.byte_capacity
        self._line_rate = max(0.0, limits.lines_per_s)
        self._byte_rate = max(0.0, limits.bytes_per_s)
        self._at = now

    def take(self, size: int, now: float) -> bool:
        """Charge one line of `size` bytes; False (nothing charged) when the budget cannot pay."""
        elapsed = now - self._at
        if elapsed > 0:
            self._at = now
            self._lines = min(self._line_cap, self._lines + elapsed * self._line_rate)
            self._bytes = min(self._byte_cap, self._bytes + elapsed * self._byte_rate)
        if self._lines >= 1 and self._bytes >= size:
            self._lines -= 1
            self._bytes -= size
            return True
        return False


@dataclass(slots=True)
class DropNotice:
    """Lines of one function dropped for one reason since `opened`."""

    function: str
    reason: str
    container_id: str  # the task whose line was dropped first: the notice goes to its request
    timestamp: float  # unix time of the first line dropped: where the notice sorts in the log
    opened: float  # clock time of the first drop
    lines: int = 0
    bytes: int = 0

    def text(self, limits: OutputLimits) -> str:
        if self.reason == RATE_LIMIT:
            why = (
                f"this function's output went over {limits.lines_per_s:.15g} lines/s"
                f" or {limits.bytes_per_s:.15g} bytes/s"
            )
        else:
            why = "the platform could not take output in fast enough"
        return f"[fnplat: {self.lines} lines dropped ({self.bytes} bytes): {why}]"


class DropLedger:
    """Open notices, by function and reason: drops are counted until a notice is `after_s` old."""

    def __init__(self, after_s: float) -> None:
        self._after_s = after_s
        self._open: dict[tuple[str, str], DropNotice] = {}

    def __len__(self) -> int:
        return len(self._open)

    def dropped(
        self, function: str, reason: str, container_id: str, size: int, timestamp: float, now: float
    ) -> bool:
        """Count one dropped line; True when it opens a notice."""
        key = (function, reason)
        notice = self._open.get(key)
        opened = notice is None
        if notice is None:
            notice = self._open[key] = DropNotice(function, reason, container_id, timestamp, now)
        notice.lines += 1
        notice.bytes += size
        return opened

    def due(self, now: float) -> tuple[list[DropNotice], float | None]:
        """The notices old enough to write (closed), and when the next one will be (or None)."""
        ready = [n for n in self._open.values() if now - n.opened >= self._after_s]
        for notice in ready:
            del self._open[(notice.function, notice.reason)]
        next_due = min((n.opened + self._after_s for n in self._open.values()), default=None)
        return ready, next_due

    def close_all(self) -> list[DropNotice]:
        notices = list(self._open.values())
        self._open.clear()
        return notices
