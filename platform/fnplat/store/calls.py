"""Calling the store from the event loop without being held by it, and telling its failures apart.

A Postgres that is frozen (a paused VM or container, a stalled disk) still accepts TCP: the
kernel acknowledges every packet, so neither the server's statement timeout nor TCP keepalives
ever fire, and a blocking call waits forever. So a caller on the loop waits for a store call only
up to a deadline (`run_blocking`), and the call runs on a daemon thread of its own: the loop's
default executor joins its threads at interpreter exit, so one thread stuck there would hold
shutdown until the database woke up.

Failures come in two kinds (`is_row_error`): those caused by the values written (a NUL byte
Postgres text refuses, a string over its column's length, a value Python cannot bind), which
the recorder isolates row by row, and everything else (connection lost, timeouts, locks, a full
disk), which is the store's and is retried with the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from fnplat.errors import InvalidParameter, ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

UNAVAILABLE_MESSAGE = "the metadata store is unavailable or did not answer in time; retry later"


class StoreTimeout(Exception):
    """A store call did not finish within its deadline (it may still finish on its thread)."""


def start_blocking(fn: Callable[[], T], name: str = "fnplat-store") -> asyncio.Future[T]:
    """Run `fn` on a new daemon thread; its outcome resolves the returned future on this loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: T | BaseException, failed: bool) -> None:
        if future.done():  # cancelled by its waiter
            return
        if failed:
            assert isinstance(outcome, BaseException)
            future.set_exception(outcome)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: T | BaseException = fn()
            failed = False
        except BaseException as exc:  # handed to the awaiting coroutine, not lost
            outcome, failed = exc, True
        # RuntimeError: the loop closed while the database was frozen; nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome, failed)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


async def run_blocking(fn: Callable[[], T], deadline: float | None) -> T:
    """Run a blocking store call off the loop and wait at most `deadline` seconds for it.

    Raises StoreTimeout when the deadline passes; the call goes on on its thread and its result
    is dropped (a read) or settled by its transaction (a write)."""
    future = start_blocking(fn)
    try:
        return await asyncio.wait_for(asyncio.shield(future), deadline)
    except TimeoutError:
        # Retrieve the late outcome, so asyncio does not log "exception was never retrieved".
        future.add_done_callback(_discard)
        raise StoreTimeout(f"the store did not answer within {deadline} s") from None


def _discard(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def is_row_error(exc: BaseException) -> bool:
    """True when the failure comes from the values written, not from the store: splitting the
    batch can then find the row at fault. Anything else means the same rows are retried later."""
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError | InvalidParameter | UnicodeError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return False  # operational, interface, programming, internal: not the row's doing
    if isinstance(exc, sa_exc.StatementError):
        # A value a bind processor refused (a naive timestamp, a type it cannot convert).
        return isinstance(exc.orig, ValueError | TypeError | InvalidParameter)
    return isinstance(exc, ValueError | TypeError)


def is_unavailable(exc: BaseException) -> bool:
    """True for the failures a caller should see as 503: the store is down, hung or overloaded."""
    return isinstance(
        exc,
        ServiceUnavailable  # already mapped by store.db.transaction (fnplat/resource_errors.py)
        | StoreTimeout
        | TimeoutError
        | sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError  # no free connection in the pool
        | sa_exc.DisconnectionError
        | ConnectionError,
    )


async def store_call(fn: Callable[[], T], deadline: float | None, what: str) -> T:
    """A store call made for a request: ServiceUnavailable (503) when the store is unreachable or
    does not answer within `deadline`; the cause goes to the platform's log, not to the caller."""
    try:
        return await run_blocking(fn, deadline)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("%s: the store is unavailable: %s: %s", what, type(exc).__name__, exc)
        raise ServiceUnavailable(UNAVAILABLE_MESSAGE) from None
