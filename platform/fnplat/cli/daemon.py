"""`fnctl down`: stop the one-host server through the pid file it writes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from fnplat.errors import FnplatError, NotFound

PID_FILENAME = "fnplat.pid"


def read_pid(data_dir: Path) -> int:
    pid_file = data_dir / PID_FILENAME
    try:
        text = pid_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise NotFound(f"no fnplat server is running for {data_dir} (no {pid_file})") from exc
    if not text.isdigit() or int(text) <= 1:
        raise FnplatError(f"{pid_file} does not hold a process id: {text!r}")
    return int(text)


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def stop_server(data_dir: Path, wait_s: float = 15.0, poll_s: float = 0.1) -> int:
    """SIGTERM the server of `data_dir` and wait for it to exit; returns its pid."""
    pid = read_pid(data_dir)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError as exc:
        raise NotFound(f"fnplat (pid {pid}) is not running; stale {data_dir / PID_FILENAME}") from exc
    deadline = time.monotonic() + wait_s
    while is_running(pid) and not _reaped(pid):
        if time.monotonic() > deadline:
            raise FnplatError(f"fnplat (pid {pid}) did not stop within {wait_s:.0f} s")
        time.sleep(poll_s)  # waiting on another process: there is no event to wait on
    return pid


def _reaped(pid: int) -> bool:
    """True when `pid` is our own exited child (a zombie until reaped): reap it."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid
