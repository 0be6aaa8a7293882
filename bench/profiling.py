"""Optional: record the platform process with py-spy while the warm figures run (--profile DIR)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, out_dir: Path | None, name: str) -> Iterator[None]:
    """py-spy record of `pid` into out_dir/name.{speedscope.json,txt} while the block runs."""
    binary = py_spy() if out_dir is not None else None
    if out_dir is None or binary is None:
        if out_dir is not None:
            print("bench: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                # Sample without stopping the process (stopping ~70 threads 200 times a second
                # slowed the platform a hundredfold), and only the thread holding the GIL: the
                # samples then say where the CPU goes.
                "--nonblocking",
                "--gil",
                "--rate",
                "200",
                "--format",
                fmt,
                "-o",
                str(out_dir / f"{name}.{ext}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, ext in (("speedscope", "speedscope.json"), ("raw", "txt"))
    ]
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
