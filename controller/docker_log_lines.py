"""Log line framing: Docker's timestamped log frames turned into complete output lines.

Pure (no I/O, no docker SDK): docker_watchers.py feeds it the frames it reads.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_TIMESTAMP_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def parse_timestamp_ns(text: str) -> int | None:
    """Docker's RFC 3339 timestamps (`2024-05-01T10:20:30.123456789Z`) as integer nanoseconds."""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    whole = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(whole.timestamp()) * 10**9 + int((match.group(2) or "0").ljust(9, "0"))


class LogLines:
    """Turns timestamped log frames into complete lines, and remembers how far it has read.

    Docker splits lines longer than 16 KiB into partial frames without a newline that share
    one timestamp: frames are joined while their timestamp stays the same, and a frame without
    a newline followed by a different timestamp is a line of its own (output that did not end
    in a newline). The read position lets a second read skip what the first delivered.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._pending_ns = 0
        self._last_ns = 0  # newest frame timestamp seen
        self._seen_at_last = 0  # frames seen with exactly that timestamp
        self._replay_skip = 0

    def since(self) -> int | None:
        """Whole second to re-read from (Docker's `since` is inclusive), or None for everything."""
        return self._last_ns // 10**9 if self._last_ns else None

    def begin_replay(self) -> None:
        """A second read starts: frames up to and including the read position are skipped."""
        self._replay_skip = self._seen_at_last

    def feed(self, frame: bytes, replay: bool = False) -> list[tuple[str, float]]:
        text = frame.decode("utf-8", errors="replace")
        stamp, sep, message = text.partition(" ")
        ts_ns = parse_timestamp_ns(stamp) if sep else None
        if ts_ns is None:  # not timestamped: take the frame as it is
            ts_ns, message = time.time_ns(), text
        if replay and not self._is_new(ts_ns):
            return []
        if ts_ns > self._last_ns:
            self._last_ns, self._seen_at_last = ts_ns, 1
        elif ts_ns == self._last_ns:
            self._seen_at_last += 1
        return self._assemble(ts_ns, message)

    def _is_new(self, ts_ns: int) -> bool:
        if ts_ns < self._last_ns:
            return False
        if ts_ns == self._last_ns and self._replay_skip > 0:
            self._replay_skip -= 1
            return False
        return True

    def _assemble(self, ts_ns: int, message: str) -> list[tuple[str, float]]:
        lines: list[tuple[str, float]] = []
        if self._pending and ts_ns != self._pending_ns:
            lines.extend(self.flush())
        if not self._pending:
            self._pending_ns = ts_ns
        *complete, self._pending = (self._pending + message).split("\n")
        lines.extend((line, self._pending_ns / 1e9) for line in complete)
        return lines

    def flush(self) -> list[tuple[str, float]]:
        if not self._pending:
            return []
        line, self._pending = self._pending, ""
        return [(line, self._pending_ns / 1e9)]
