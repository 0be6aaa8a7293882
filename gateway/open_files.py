"""The process's open-files limit, and how many client connections fit under it.

Every client connection holds a file descriptor, and so does everything else the platform does:
the database, the Docker socket (one connection per engine worker and per followed task), each
task's Runtime API connection, a deploy's files. Many systems start services with a soft limit
of 1024 while allowing far more (the hard limit), so the server raises its soft limit at start,
and the gateway keeps a quarter of whatever it got for the rest.
"""

from __future__ import annotations

import contextlib
import resource

RESERVED_MIN = 256  # descriptors never handed to client connections, however small the limit


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; return (soft, hard) as they are after it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        # It can fail (a hard limit above the kernel's nr_open, say): then the soft one stays.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 30 if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(configured: int, open_files: int) -> int:
    """The connection cap to enforce: the configured one, lowered to keep a quarter of the
    open-files limit (at least RESERVED_MIN descriptors) for everything that is not a client."""
    reserve = max(RESERVED_MIN, open_files // 4)
    return max(1, min(configured, open_files - reserve))
