"""Alembic environment for fnplat.

Driven two ways: from code (`fnplat.store.db.upgrade_to_head` passes an open connection in
`config.attributes["connection"]`, inside its own transaction), and from the alembic CLI
(`alembic upgrade head` with `sqlalchemy.url` from alembic.ini or FNPLAT_DATABASE_URL).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from fnplat.store.db import make_engine, normalize_url
from fnplat.store.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = os.environ.get("FNPLAT_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set FNPLAT_DATABASE_URL or sqlalchemy.url in alembic.ini")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    url = normalize_url(_database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # As in upgrade_to_head: table rebuilds must not cascade-delete child rows.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
