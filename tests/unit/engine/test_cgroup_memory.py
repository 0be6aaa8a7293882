"""Peak memory from a container's cgroup file: opened once, re-read on every call, closed on forget."""

from __future__ import annotations

import os
from pathlib import Path

from fnplat.controller.cgroup_memory import PeakMemoryReader

FULL_ID = "a" * 64
MB = 1024 * 1024


def peak_file(root: Path) -> Path:
    v1 = root / "memory" / "docker" / FULL_ID
    v1.mkdir(parents=True)
    return v1 / "memory.max_usage_in_bytes"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reads_the_current_peak_through_one_descriptor(tmp_path: Path) -> None:
    reader = PeakMemoryReader(tmp_path)
    assert reader.max_used_mb(FULL_ID) is None  # no cgroup yet: nothing is kept open
    path = peak_file(tmp_path)
    path.write_text(f"{40 * MB}\n")
    before = open_fds()
    assert reader.max_used_mb(FULL_ID) == 40
    with path.open("r+") as handle:  # the kernel updates the file in place
        handle.write(f"{77 * MB + 1}\n")
    assert reader.max_used_mb(FULL_ID) == 78  # rounded up, as Lambda reports it
    assert open_fds() == before + 1
    reader.forget(FULL_ID)
    assert open_fds() == before
    path.unlink()
    assert reader.max_used_mb(FULL_ID) is None
    reader.forget(FULL_ID)  # forgetting twice is harmless


def test_unreadable_content_is_unknown_and_close_releases_everything(tmp_path: Path) -> None:
    peak_file(tmp_path).write_text("max\n")
    reader = PeakMemoryReader(tmp_path)
    before = open_fds()
    assert reader.max_used_mb(FULL_ID) is None
    assert reader.max_used_mb("../../etc/passwd") is None
    reader.close()
    assert open_fds() == before
