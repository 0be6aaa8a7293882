"""Engines, sessions, transactions and schema migration for the metadata store.

Nothing is created at import time: the process entry point calls `make_engine` once, runs
`upgrade_to_head`, and hands a `sessionmaker` to the layers that need one.

Every Postgres connection has a connect timeout and a statement timeout, and the pool a
checkout timeout (TelemetrySettings): a slow or locked database fails a call instead of holding
it. A frozen one answers nothing at all, not even a timeout: callers on the event loop bound
their wait themselves (store/calls.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fnplat.config import TelemetrySettings
from fnplat.errors import InvalidParameter, ServiceError
from fnplat.resource_errors import log_store_failure, store_failure
from fnplat.sealing import EnvironmentCipher

# Any constant works; it only has to be the same for every fnplat process sharing a database.
_MIGRATION_LOCK_KEY = 0x666E706C6174  # "fnplat"


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain `postgresql://` (and `postgres://`) use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidParameter(f"invalid database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidParameter(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def make_engine(url: str, timeouts: TelemetrySettings | None = None) -> Engine:
    """An engine for SQLite (the one-host default) or Postgres, with the Postgres timeouts of
    `timeouts` (the defaults when None)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        t = timeouts or TelemetrySettings()
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_timeout=t.postgres_pool_timeout_s,
            connect_args={
                # libpq counts whole seconds (at least 2); psycopg enforces it on the whole handshake.
                "connect_timeout": max(2, math.ceil(t.postgres_connect_timeout_s)),
                "options": f"-c statement_timeout={max(1, round(t.postgres_statement_timeout_s * 1000))}",
            },
        )
    return _make_sqlite_engine(parsed)


def _make_sqlite_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if _is_memory_sqlite(url):
        kwargs["poolclass"] = StaticPool  # one shared connection, else every thread sees an empty DB
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    memory = _is_memory_sqlite(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # SQLite enforces foreign keys only when asked, per connection.
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                # WAL lets readers (gateway cache loads, fnctl logs) run while the batch writer writes.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    return engine


# Where a session carries the cipher of function environments (see repository._cipher).
CIPHER_INFO_KEY = "fnplat.environment_cipher"


def make_sessionmaker(engine: Engine, cipher: EnvironmentCipher | None = None) -> sessionmaker[Session]:
    """Sessions for `engine`. Reading or writing a function version needs `cipher` (its
    environment is encrypted in the store); other data does not."""
    # Repository functions return domain dataclasses, but expire_on_commit=False also keeps any
    # row read inside a transaction usable after it without a surprise reload.
    info = {CIPHER_INFO_KEY: cipher} if cipher is not None else None
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits when the block succeeds, rolls back when it raises.

    A store that cannot be reached or is out of disk raises the caller-facing error for it
    (fnplat.resource_errors: ServiceUnavailable, InsufficientStorage) instead of the driver's.
    """
    try:
        with factory() as session, session.begin():
            yield session
    except (DBAPIError, SATimeoutError) as exc:
        mapped = store_failure(exc)
        if mapped is None:
            raise
        log_store_failure(exc, mapped)
        raise mapped from exc


def alembic_config() -> Config:
    """Alembic configuration for the packaged `fnplat.migrations` scripts; no alembic.ini needed."""
    location = files("fnplat.migrations")
    if not isinstance(location, Path):
        raise ServiceError("fnplat.migrations must be installed as a directory, not inside an archive")
    config = Config()
    config.set_main_option("script_location", str(location))
    return config


def heads() -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision, in one transaction."""
    config = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # Batch migrations recreate tables; with foreign keys on, dropping a parent table
            # would cascade-delete its children. The pragma is ignored inside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    # A migration may rewrite a large table: the per-statement bound is for
                    # serving, not for this one-off transaction.
                    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    # Two processes starting at once must not both migrate.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ServiceError(f"migration left rows violating foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
