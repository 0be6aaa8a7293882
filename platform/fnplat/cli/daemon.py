"""`fnctl down`: stop the one-host server of a data dir and wait until it has exited.

The server is found through its pid file and known to be alive by the lock it holds on that file
(fnplat.server_lock): a pid file left by a server that was killed is stale, and its pid is never
signalled (it may be another process's by now).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from fnplat.errors import FnplatError, NotFound
from fnplat.server_lock import PID_FILENAME, holder_pid


def is_running(pid: int) -> bool:
    """True while `pid` exists and has not exited (an exited process its parent has not reaped
    yet, a zombie, has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # "pid (comm) S ...": the state follows the last ')' (comm may itself contain parentheses).
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stop_server(data_dir: Path, wait_s: float, poll_s: float = 0.1) -> int:
    """SIGTERM the server of `data_dir` and wait up to `wait_s` for it to exit; returns its pid."""
    pid_file = data_dir / PID_FILENAME
    if not pid_file.exists():
        raise NotFound(f"no fnplat server is running for {data_dir} (no {pid_file})")
    pid = holder_pid(data_dir)
    if pid is None:
        raise NotFound(
            f"no fnplat server is running for {data_dir}: {pid_file} is stale "
            "(left by a server that did not stop cleanly; the next `fnctl up` takes it over)"
        )
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError as exc:
        raise NotFound(f"fnplat (pid {pid}) is not running") from exc
    deadline = time.monotonic() + wait_s
    # The lock goes when the server has shut down; the process is gone moments later.
    while holder_pid(data_dir) == pid or (is_running(pid) and not _reaped(pid)):
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
