"""Failures of the platform's own resources, mapped in one place to the errors callers get.

- The metadata store: a connection that cannot be made, was lost or timed out (the database
  restarted, stopped, or is unreachable; SQLite locked for too long) is `ServiceUnavailable`
  (503 with Retry-After): nothing is wrong with the request, and the pool reconnects by itself
  (`pool_pre_ping`). A full disk under the store is `InsufficientStorage` (507).
- The data dir's disk: ENOSPC or EDQUOT while writing artifacts or code is `InsufficientStorage`.

Callers get a stable message naming what failed (the metadata store, the data dir), never driver
text or host paths; the original goes to the platform's log. Anything else is not ours to
classify and propagates unchanged (an IntegrityError is the store's Conflict, mapped where the
write happens; a programming error stays a 500).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Iterator

import psycopg
import psycopg.errors
from sqlalchemy import exc as sa_exc

from fnplat.errors import FnplatError, InsufficientStorage, ServiceUnavailable

log = logging.getLogger(__name__)

STORE_RETRY_AFTER_S = 5
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
# Busy or locked past the busy timeout, cannot open the file, I/O error: transient or
# operational, not the request's fault.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})


def store_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the metadata store is unavailable right now; retry shortly", retry_after_s=STORE_RETRY_AFTER_S
    )


def store_failure(exc: BaseException) -> FnplatError | None:
    """The caller-facing error for a failure of the metadata store, or None when `exc` is not one
    (a constraint violation, a bug)."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return store_unavailable()
    if isinstance(exc, sa_exc.DBAPIError):
        driver = exc.orig
        if isinstance(driver, sqlite3.Error):
            code = getattr(driver, "sqlite_errorcode", 0) & 0xFF
            if code == _SQLITE_FULL:
                return InsufficientStorage(
                    "no space left in the platform's data dir (FNPLAT_DATA_DIR) for the metadata "
                    "store; free space and retry"
                )
            if code in _SQLITE_UNAVAILABLE or exc.connection_invalidated:
                return store_unavailable()
            return None
        if isinstance(driver, psycopg.errors.DiskFull):
            return InsufficientStorage("the metadata store is out of disk space; retry once it has room")
        if exc.connection_invalidated or isinstance(driver, psycopg.OperationalError):
            return store_unavailable()
        return None
    if isinstance(exc, psycopg.OperationalError):  # raised by the driver outside SQLAlchemy
        return store_unavailable()
    return None


def disk_failure(exc: OSError, what: str) -> InsufficientStorage | None:
    """The caller-facing error for a full disk while writing `what` to the data dir, or None."""
    if exc.errno not in _DISK_FULL_ERRNOS:
        return None
    return InsufficientStorage(
        f"no space left in the platform's data dir (FNPLAT_DATA_DIR) to store {what}; free space and retry"
    )


@contextlib.contextmanager
def disk_errors_as_insufficient_storage(what: str) -> Iterator[None]:
    """Turn a full disk while writing `what` into InsufficientStorage; other errors pass."""
    try:
        yield
    except OSError as exc:
        mapped = disk_failure(exc, what)
        if mapped is None:
            raise
        log.error("writing %s failed, the disk is full: %s", what, exc)
        raise mapped from exc


def log_store_failure(exc: BaseException, mapped: FnplatError) -> None:
    """One line per failure in the platform's log, with the driver's own text."""
    log.warning("metadata store: %s (%s: %s)", mapped.message, type(exc).__name__, exc)
