"""The pid file of the one-host server, and the lock on it that says the server is alive.

The server holds an exclusive `flock` on `<data dir>/fnplat.pid` for its whole life and writes
its pid into it. The kernel drops the lock when the process dies, however it dies: a pid file
left by a server killed with SIGKILL is unlocked, so it is known to be stale (its pid may belong
to another process by now, and nothing signals it), and the next server takes it over. Two
servers on one data dir would remove each other's tasks as orphans: the second refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from fnplat.errors import FnplatError

PID_FILENAME = "fnplat.pid"
# `fnctl down` probes the lock for an instant; a server starting at that moment tries again.
ACQUIRE_RETRY_S = 2.0
_RETRY_EVERY_S = 0.05


class ServerRunning(FnplatError):
    """Another server holds the data dir."""

    status = 409
    error_type = "ResourceConflictException"


def pid_file(data_dir: Path) -> Path:
    return data_dir / PID_FILENAME


class ServerLock:
    """Held by the running server; `release()` (or the process's death) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> ServerLock:
        path = pid_file(data_dir)
        deadline = time.monotonic() + ACQUIRE_RETRY_S
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    holder = holder_pid(data_dir)
                    who = f" (pid {holder})" if holder is not None else ""
                    raise ServerRunning(f"another fnplat server{who} is running for {data_dir}") from None
                time.sleep(_RETRY_EVERY_S)  # waiting on another process: nothing to wait on
                continue
            # Locked, but maybe a file a stopping server unlinked just now: lock the one on disk.
            try:
                current = os.stat(path)
            except FileNotFoundError:
                os.close(fd)
                continue
            opened = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return cls(path, fd)

    def release(self) -> None:
        """Remove the pid file and drop the lock (in that order: nobody locks a file on its way out)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(fd)


def holder_pid(data_dir: Path) -> int | None:
    """The pid of the server holding the data dir, or None when no server does (no pid file, or a
    stale one). Raises FnplatError when the locked file does not hold a pid."""
    path = pid_file(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a server is running
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        text = os.pread(fd, 64, 0).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    if not text.isdigit() or int(text) <= 1:
        raise FnplatError(f"{path} does not hold a process id: {text!r}")
    return int(text)
