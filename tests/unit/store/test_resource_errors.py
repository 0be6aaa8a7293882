"""Store and disk failures become the errors callers get, in one place (fnplat.resource_errors),
with real driver errors: a Postgres that refuses connections, a SQLite database that is full."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fnplat.errors import InsufficientStorage, ServiceUnavailable
from fnplat.resource_errors import disk_errors_as_insufficient_storage, store_failure
from fnplat.store.db import make_engine, make_sessionmaker, transaction


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_postgres_is_service_unavailable_with_no_driver_text() -> None:
    engine = make_engine(f"postgresql://fnplat:secret@127.0.0.1:{closed_port()}/fnplat")
    try:
        with pytest.raises(ServiceUnavailable) as raised, transaction(make_sessionmaker(engine)) as s:
            s.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert raised.value.status == 503 and raised.value.retry_after_s > 0
    assert raised.value.message == "the metadata store is unavailable right now; retry shortly"
    assert "127.0.0.1" not in raised.value.message and "secret" not in raised.value.message


def test_a_full_sqlite_database_is_insufficient_storage(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as s:
        s.execute(text("CREATE TABLE t (x TEXT)"))
    try:
        with pytest.raises(InsufficientStorage) as raised, transaction(sessions) as s:
            s.execute(text("PRAGMA max_page_count = 3"))  # as if the disk had no room left
            for _ in range(100):
                s.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 4000})
    finally:
        engine.dispose()
    assert raised.value.status == 507
    assert "FNPLAT_DATA_DIR" in raised.value.message and str(tmp_path) not in raised.value.message


def test_constraint_violations_and_bugs_are_not_resource_failures(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as s:
        s.execute(text("CREATE TABLE t (x TEXT UNIQUE)"))
        s.execute(text("INSERT INTO t VALUES ('a')"))
    with pytest.raises(IntegrityError), transaction(sessions) as s:
        s.execute(text("INSERT INTO t VALUES ('a')"))
    with pytest.raises(Exception, match="no such table") as raised, transaction(sessions) as s:
        s.execute(text("SELECT * FROM missing"))
    assert store_failure(raised.value) is None
    engine.dispose()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_data_dir_is_insufficient_storage(code: int) -> None:
    full = pytest.raises(InsufficientStorage, match="no space left in the platform's data dir")
    with full, disk_errors_as_insufficient_storage("the artifact"):
        raise OSError(code, "No space left on device", "/var/lib/fnplat/artifacts/x.zip")


def test_other_os_errors_pass_unchanged() -> None:
    with pytest.raises(PermissionError), disk_errors_as_insufficient_storage("the artifact"):
        raise PermissionError(errno.EACCES, "Permission denied")
