"""Store calls from the loop: bounded waits on daemon threads, and which failures are a row's."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fnplat.errors import InvalidParameter, ServiceUnavailable
from fnplat.store.calls import StoreTimeout, is_row_error, is_unavailable, run_blocking, store_call


def dbapi(cls: type[Exception]) -> Exception:
    return cls("INSERT", {}, Exception("driver says no"))


def test_failures_caused_by_values_are_row_errors() -> None:
    assert is_row_error(dbapi(DataError))
    assert is_row_error(dbapi(IntegrityError))
    assert is_row_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert is_row_error(InvalidParameter("started_at must be timezone-aware"))
    assert is_row_error(StatementError("bind", "INSERT", {}, ValueError("naive datetime")))


def test_failures_of_the_store_are_not() -> None:
    for exc in (
        dbapi(OperationalError),
        dbapi(InterfaceError),
        dbapi(ProgrammingError),
        PoolTimeout("QueuePool limit reached"),
        StoreTimeout("no answer"),
        ConnectionRefusedError(),
        RuntimeError("database is locked"),
    ):
        assert not is_row_error(exc), exc
    assert is_unavailable(dbapi(OperationalError)) and is_unavailable(PoolTimeout("x"))
    assert not is_unavailable(dbapi(DataError))


async def test_a_call_past_its_deadline_raises_and_its_thread_is_a_daemon() -> None:
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hang() -> int:
        threads.append(threading.current_thread())
        release.wait(30)
        return 1

    started = time.monotonic()
    with pytest.raises(StoreTimeout):
        await run_blocking(hang, 0.05)
    assert time.monotonic() - started < 5
    assert threads[0].daemon  # never joined at interpreter exit
    release.set()
    assert await run_blocking(lambda: 2, 5) == 2


async def test_store_call_answers_503_for_an_unavailable_store_and_passes_other_errors() -> None:
    def down() -> None:
        raise dbapi(OperationalError)

    with pytest.raises(ServiceUnavailable) as unavailable:
        await store_call(down, 5, "test")
    assert unavailable.value.status == 503 and "driver says no" not in unavailable.value.message
    with pytest.raises(ServiceUnavailable):
        await store_call(lambda: threading.Event().wait(30), 0.05, "test")

    def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await store_call(bug, 5, "test")
