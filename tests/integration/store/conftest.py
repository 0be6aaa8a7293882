"""A migrated metadata store on each backend: SQLite (a temp file) and Postgres (a container of
the locally built `fnplat/postgres:15`). Both are session-scoped; every test gets a clean slate.

Postgres cases are marked `postgres` and `docker`; they fail, not skip, when Docker is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, generate_key
from fnplat.store.db import make_engine, make_sessionmaker, upgrade_to_head
from fnplat.store.models import Base


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.docker])],
)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'fnplat.db'}"
    migrated = make_engine(url)
    upgrade_to_head(migrated)
    yield migrated
    migrated.dispose()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_sessionmaker(engine, EnvironmentCipher(SecretKeys(generate_key().encode(), (), "test")))
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed at the end of the test (tests may also commit themselves)."""
    with sessions() as opened:
        yield opened
        opened.commit()
