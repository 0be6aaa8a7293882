"""Peak memory of task containers, read from their cgroups for every REPORT line.

This runs once per invocation on the event loop, so each container's peak file is opened once
and read with `pread` afterwards: an open() in cgroupfs costs ~25x a read of an open file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from fnplat.controller.docker_decisions import cgroup_peak_files


class PeakMemoryReader:
    """Keeps one open descriptor per container; `forget` closes it when the container goes."""

    def __init__(self, cgroup_root: Path) -> None:
        self._root = cgroup_root
        self._fds: dict[str, int] = {}

    def max_used_mb(self, container_id: str) -> int | None:
        fd = self._fds.get(container_id)
        if fd is None:
            fd = self._open(container_id)
            if fd is None:
                return None  # not there (yet, or any more): look again next time
            self._fds[container_id] = fd
        try:
            peak = int(os.pread(fd, 32, 0))
        except (OSError, ValueError):
            return None  # the cgroup was removed under the open file
        return math.ceil(peak / (1024 * 1024))

    def forget(self, container_id: str) -> None:
        fd = self._fds.pop(container_id, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for container_id in list(self._fds):
            self.forget(container_id)

    def _open(self, container_id: str) -> int | None:
        for path in cgroup_peak_files(container_id, self._root):
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
        return None
