"""Engine set-up, URL handling and the unit-of-work helper (SQLite only, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fnplat.errors import InvalidParameter
from fnplat.store.db import make_engine, make_sessionmaker, normalize_url, transaction, upgrade_to_head
from fnplat.store.models import ArtifactRow


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/fnplat", "postgresql+psycopg"),
        ("postgres://u:p@db/fnplat", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@db/fnplat", "postgresql+psycopg"),
        ("sqlite:////var/lib/fnplat/fnplat.db", "sqlite"),
    ],
)
def test_normalize_url_uses_psycopg3_for_plain_postgres(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database in ("fnplat", "/var/lib/fnplat/fnplat.db")


@pytest.mark.parametrize("bad", ["not a url", "mysql://u:p@db/fnplat", "oracle://db"])
def test_normalize_url_rejects_garbage_and_unsupported_backends(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        normalize_url(bad)


def test_sqlite_engine_creates_parent_dir_and_enables_wal_and_foreign_keys(tmp_path: Path) -> None:
    db_file = tmp_path / "nested" / "dir" / "fnplat.db"
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert db_file.exists()
    finally:
        engine.dispose()


@pytest.fixture
def migrated(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(engine)
    return engine


def test_upgrade_returns_connections_with_foreign_keys_back_on(migrated: Engine) -> None:
    # upgrade_to_head turns foreign keys off for its own connection; the pool must not keep that.
    with migrated.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_upgrade_is_idempotent(migrated: Engine) -> None:
    upgrade_to_head(migrated)
    with migrated.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_transaction_commits_on_success(migrated: Engine) -> None:
    sessions = make_sessionmaker(migrated)
    with transaction(sessions) as session:
        session.add(ArtifactRow(sha256="a" * 64, size=1, unzipped_size=2))
    with transaction(sessions) as session:
        assert session.get(ArtifactRow, "a" * 64) is not None


def test_transaction_rolls_back_on_error(migrated: Engine) -> None:
    sessions = make_sessionmaker(migrated)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        session.add(ArtifactRow(sha256="b" * 64, size=1, unzipped_size=2))
        session.flush()
        raise RuntimeError("boom")
    with transaction(sessions) as session:
        assert session.get(ArtifactRow, "b" * 64) is None


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    import threading

    engine = make_engine("sqlite://")
    upgrade_to_head(engine)
    sessions = make_sessionmaker(engine)
    found: list[bool] = []

    def writer() -> None:
        with transaction(sessions) as session:
            session.add(ArtifactRow(sha256="c" * 64, size=1, unzipped_size=1))

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(timeout=10)
    with transaction(sessions) as session:
        found.append(session.get(ArtifactRow, "c" * 64) is not None)
    assert found == [True]
