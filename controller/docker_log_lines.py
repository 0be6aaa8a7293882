"""Log line framing: Docker's timestamped log frames turned into complete output lines.

Pure (no I/O, no docker SDK): docker_watchers.py feeds it the frames it reads.

A line is what ends with `\\n` (or a frame that ended without one, see LogLines). Lines are cut
at `max_line` bytes (Lambda cuts a log line at 256 KB) and end with TRUNCATED; the rest of the
line is dropped as it arrives, never held, so a 200 MB line without a newline costs no more
memory than a line of max_line bytes. `\\r` does not end a line: Lambda's Node.js runtime (and
ours) writes a multi-line message as one line with `\\r` for its line breaks, and `\\r\\n` endings
must not make empty lines; a `\\r`-only progress bar is therefore one long line, cut like any
other.
"""

from __future__ import annotations

import calendar
import re
import time

MAX_LINE_BYTES = 256 * 1024  # Lambda's limit for one log line
TRUNCATED = b"... [fnplat: line truncated at %d bytes]"
_TIMESTAMP_RE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def parse_timestamp_ns(text: str | bytes) -> int | None:
    """Docker's RFC 3339 timestamps (`2024-05-01T10:20:30.123456789Z`) as integer nanoseconds."""
    match = _TIMESTAMP_RE.fullmatch(text.encode("ascii", "replace") if isinstance(text, str) else text)
    if match is None:
        return None
    return _seconds(match.group(1)) * 10**9 + int((match.group(2) or b"0").ljust(9, b"0"))


def _seconds(text: bytes) -> int:
    return calendar.timegm(time.strptime(text.decode("ascii"), "%Y-%m-%dT%H:%M:%S"))


class LogLines:
    """Turns timestamped log frames into complete lines (bytes, without the newline), and
    remembers how far it has read.

    Docker splits lines longer than 16 KiB into partial frames without a newline that share
    one timestamp: frames are joined while their timestamp stays the same, and a frame without
    a newline followed by a different timestamp is a line of its own (output that did not end
    in a newline). The read position lets a second read skip what the first delivered.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line
        self._marker = TRUNCATED % max_line
        self._parts: list[bytes] = []  # the line so far, at most max_line bytes
        self._size = 0
        self._pending_ns = 0  # timestamp of the line in progress
        self._cut = False  # the line in progress went out cut: drop the rest of it
        self._last_ns = 0  # newest frame timestamp seen
        self._seen_at_last = 0  # frames seen with exactly that timestamp
        self._replay_skip = 0
        self._stamp = b""  # the last timestamp parsed, as text, and its value
        self._stamp_ns = 0
        self._second = b""  # the whole-second part of the last timestamp parsed, and its value
        self._second_ns = 0

    def since(self) -> int | None:
        """Whole second to re-read from (Docker's `since` is inclusive), or None for everything."""
        return self._last_ns // 10**9 if self._last_ns else None

    def begin_replay(self) -> None:
        """A second read starts: frames up to and including the read position are skipped."""
        self._replay_skip = self._seen_at_last

    def feed(self, frame: bytes, replay: bool = False) -> list[tuple[bytes, float]]:
        stamp, sep, message = frame.partition(b" ")
        ts_ns = self._parse(stamp) if sep else None
        if ts_ns is None:  # not timestamped: take the frame as it is
            ts_ns, message = time.time_ns(), frame
        if replay and not self._is_new(ts_ns):
            return []
        if ts_ns > self._last_ns:
            self._last_ns, self._seen_at_last = ts_ns, 1
        elif ts_ns == self._last_ns:
            self._seen_at_last += 1
        return self._assemble(ts_ns, message)

    def flush(self) -> list[tuple[bytes, float]]:
        """End the line in progress (its output ended without a newline)."""
        if self._cut:
            self._cut = False  # what was kept of it went out when it was cut
            return []
        if not self._parts:
            return []
        return [(self._take(), self._pending_ns / 1e9)]

    def _parse(self, stamp: bytes) -> int | None:
        # Partial frames of one long line share their timestamp, and successive lines mostly
        # share the second: parse each part once.
        if stamp == self._stamp:
            return self._stamp_ns
        match = _TIMESTAMP_RE.fullmatch(stamp)
        if match is None:
            return None
        second = match.group(1)
        if second != self._second:
            self._second, self._second_ns = second, _seconds(second) * 10**9
        self._stamp = stamp
        self._stamp_ns = self._second_ns + int((match.group(2) or b"0").ljust(9, b"0"))
        return self._stamp_ns

    def _is_new(self, ts_ns: int) -> bool:
        if ts_ns < self._last_ns:
            return False
        if ts_ns == self._last_ns and self._replay_skip > 0:
            self._replay_skip -= 1
            return False
        return True

    def _assemble(self, ts_ns: int, message: bytes) -> list[tuple[bytes, float]]:
        in_line = self._cut or bool(self._parts)
        if in_line and ts_ns != self._pending_ns:
            lines = self.flush()  # the line in progress ended without a newline
            in_line = False
        else:
            lines = []
        if not in_line:
            self._pending_ns = ts_ns
        newline = message.find(b"\n")
        end = len(message)
        if newline >= 0 and newline == end - 1 and not in_line and newline <= self._max_line:
            lines.append((message[:newline], ts_ns / 1e9))  # one whole line: Docker's usual frame
            return lines
        start = 0
        while newline >= 0:
            self._add(message, start, newline, lines)
            if self._cut:
                self._cut = False
            else:
                lines.append((self._take(), self._pending_ns / 1e9))
            self._pending_ns = ts_ns
            start = newline + 1
            newline = message.find(b"\n", start)
        self._add(message, start, end, lines)
        return lines

    def _add(self, message: bytes, start: int, end: int, lines: list[tuple[bytes, float]]) -> None:
        """Append message[start:end] to the line in progress; cut the line if it gets too long."""
        if self._cut or end <= start:
            return
        room = self._max_line - self._size
        if end - start <= room:
            self._parts.append(message[start:end])
            self._size += end - start
            return
        keep = start + room
        floor = max(start, keep - 3)
        while keep > floor and message[keep] & 0xC0 == 0x80:
            keep -= 1  # do not split a UTF-8 character (its continuation bytes are 10xxxxxx)
        self._parts.append(message[start:keep])
        lines.append((self._take() + self._marker, self._pending_ns / 1e9))
        self._cut = True

    def _take(self) -> bytes:
        parts = self._parts
        line = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._size = 0
        return line
