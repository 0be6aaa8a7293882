"""The telemetry journal: where invocation records go when the store cannot take them.

Append-only JSON lines in segments under `<data_dir>/journal/` (directory 0700, files 0600):
`segment-<n>.jsonl`, one record or log line per line. New entries go to the active segment;
the recorder seals it before replaying, so what it replays is never appended to. Replay reads a
sealed segment from its saved position (`segment-<n>.pos`, rewritten atomically after each chunk
written) and deletes both when done: a crash mid-replay resumes at the last chunk written, and
records written twice are skipped by the store (idempotent by request id).

Durability (fsync policy): every append is one write(2) straight to the file (no user-space
buffer), so a crash of the process loses nothing appended. The recorder fsyncs the active segment
from a worker thread once per flush interval when something was appended, and at shutdown; a
power loss can lose what was appended during the last interval.

Entries the store refused for their values are kept in `rejected.jsonl` (with the reason) for
an operator to inspect; nothing reads them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store.telemetry_values import clean_error_type, clean_message

log = logging.getLogger(__name__)

_SEGMENT_RE = re.compile(r"^segment-(\d{12})\.jsonl$")
REJECTED_FILE = "rejected.jsonl"

Entry = InvocationRecord | LogEvent


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._active: int | None = None  # fd of the active segment
        self._active_path: Path | None = None
        self._next_number = 1
        self._bytes = 0
        self._dirty = False

    # ---- life ------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (0700) and take stock: segments left by an earlier run are sealed
        (they are replayed); stale temporary files are removed."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        numbers = []
        for path in self.directory.iterdir():
            match = _SEGMENT_RE.match(path.name)
            if match:
                numbers.append(int(match.group(1)))
                self._bytes += path.stat().st_size
            elif path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
        self._next_number = max(numbers, default=0) + 1

    def close(self) -> None:
        """fsync and close the active segment."""
        if self._active is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._active)
            os.close(self._active)
            self._active = None
            self._active_path = None
            self._dirty = False

    @property
    def size_bytes(self) -> int:
        """Bytes of all segments on disk (replayed parts included until a segment is done)."""
        return self._bytes

    def has_backlog(self) -> bool:
        return self._bytes > 0

    # ---- writing ---------------------------------------------------------------------------

    def append(self, lines: Sequence[bytes]) -> None:
        """Append encoded entries (each ending in a newline) in one write. Raises OSError (disk
        full): the caller keeps the entries."""
        if not lines:
            return
        data = b"".join(lines)
        if self._active is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # open() may not have run
            path = self.directory / f"segment-{self._next_number:012d}.jsonl"
            self._next_number += 1
            self._active = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self._active_path = path
        written = 0
        view = memoryview(data)
        try:
            while written < len(data):
                written += os.write(self._active, view[written:])
        finally:
            self._bytes += written
            self._dirty = self._dirty or written > 0
        if written < len(data):  # pragma: no cover - os.write raises rather than stopping short
            raise OSError("short write to the journal")

    def seal(self) -> None:
        """End the active segment: it becomes replayable; the next append starts a new one."""
        self.close()

    def sync_handle(self) -> int | None:
        """A duplicate of the active segment's descriptor to fsync off the loop (the caller closes
        it), or None when nothing was appended since the last one. A duplicate, because the loop
        may close the original meanwhile."""
        if self._active is None or not self._dirty:
            return None
        self._dirty = False
        return os.dup(self._active)

    def reject(self, entry: Entry | bytes, reason: str) -> None:
        """Keep a copy of what the store refused, with why (best effort: a full disk loses it)."""
        body = entry if isinstance(entry, bytes) else encode(entry)
        line = orjson.dumps({"reason": reason[:2000], "entry": body.decode("utf-8", "replace").rstrip("\n")})
        try:
            fd = os.open(
                self.directory / REJECTED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("could not keep a rejected telemetry row in %s: %s", self.directory, exc)

    # ---- replaying -------------------------------------------------------------------------

    def sealed_segments(self) -> list[Path]:
        """Sealed segments, oldest first."""
        if not self.directory.is_dir():
            return []
        found = sorted(
            (int(m.group(1)), p)
            for p in self.directory.iterdir()
            if (m := _SEGMENT_RE.match(p.name)) and p != self._active_path
        )
        return [p for _, p in found]

    def position(self, segment: Path) -> int:
        try:
            return int(segment.with_suffix(".pos").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def read(self, segment: Path, offset: int, max_entries: int) -> tuple[list[bytes], int]:
        """Up to `max_entries` lines from `offset`, and the offset after them. A last line without
        its newline (a crash mid-append) is returned as it is; decoding it fails and rejects it."""
        lines: list[bytes] = []
        with open(segment, "rb") as handle:
            handle.seek(offset)
            while len(lines) < max_entries:
                line = handle.readline()
                if not line:
                    break
                lines.append(line)
            return lines, handle.tell()

    def advance(self, segment: Path, offset: int) -> None:
        """Remember that `segment` is written up to `offset` (atomically: temp file + rename)."""
        temp = segment.with_suffix(".pos.tmp")
        temp.write_text(f"{offset}\n")
        os.replace(temp, segment.with_suffix(".pos"))

    def recount(self) -> None:
        """Size the journal from the disk again (after a replay: the running count may drift if
        someone removed a segment by hand)."""
        if self.directory.is_dir():
            self._bytes = sum(p.stat().st_size for p in self.directory.iterdir() if _SEGMENT_RE.match(p.name))

    def finish(self, segment: Path) -> None:
        """A segment fully written: remove it and its position."""
        with contextlib.suppress(FileNotFoundError):
            self._bytes -= segment.stat().st_size
            segment.unlink()
        segment.with_suffix(".pos").unlink(missing_ok=True)
        self._bytes = max(self._bytes, 0)


# ---- entries as JSON lines ---------------------------------------------------------------------

_RECORD_FIELDS = tuple(f.name for f in fields(InvocationRecord))
_EVENT_FIELDS = tuple(f.name for f in fields(LogEvent))


def encode(entry: Entry) -> bytes:
    """One journal line. Text is cleaned first (telemetry_values): JSON cannot carry lone surrogates."""
    if isinstance(entry, InvocationRecord):
        body: dict[str, Any] = {name: getattr(entry, name) for name in _RECORD_FIELDS}
        body["error_type"] = clean_error_type(entry.error_type)
        return orjson.dumps({"r": body}, option=orjson.OPT_APPEND_NEWLINE)
    body = {name: getattr(entry, name) for name in _EVENT_FIELDS}
    body["message"] = clean_message(entry.message)
    return orjson.dumps({"l": body}, option=orjson.OPT_APPEND_NEWLINE)


def encode_all(entries: Iterable[Entry]) -> tuple[list[bytes], list[tuple[Entry, str]]]:
    """Encoded lines, and the entries that could not be encoded with why."""
    lines, failed = [], []
    for entry in entries:
        try:
            lines.append(encode(entry))
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            failed.append((entry, f"{type(exc).__name__}: {exc}"))
    return lines, failed


def decode(line: bytes) -> Entry:
    """The entry of one journal line; ValueError when it is not one (a torn last line)."""
    try:
        value = orjson.loads(line)
        if "r" in value:
            body = value["r"]
            body["started_at"] = datetime.fromisoformat(body["started_at"])
            return InvocationRecord(**body)
        body = value["l"]
        body["timestamp"] = datetime.fromisoformat(body["timestamp"])
        return LogEvent(**body)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a journal entry: {exc}") from exc
