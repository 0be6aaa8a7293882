"""A migrated metadata store on each backend: SQLite (a temp file) and Postgres (a container of
the locally built `fnplat/postgres:15`). Both are session-scoped; every test gets a clean slate.

Postgres cases are marked `postgres` and `docker`; they fail, not skip, when Docker is missing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from fnplat.store.db import make_engine, make_sessionmaker, upgrade_to_head
from fnplat.store.models import Base

REPO = Path(__file__).resolve().parents[3]
POSTGRES_IMAGE = "fnplat/postgres:15"
TEST_LABEL = {"fnplat.test": "store"}


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    # The reaper image cannot be pulled here; this fixture removes its own container instead.
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    build = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), "postgres"], capture_output=True, text=True, check=False
    )
    if build.returncode != 0:
        pytest.fail(f"building {POSTGRES_IMAGE} failed (is Docker running?):\n{build.stdout}\n{build.stderr}")

    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True
    container = PostgresContainer(
        POSTGRES_IMAGE, username="fnplat", password="fnplat", dbname="fnplat", driver="psycopg"
    ).with_kwargs(labels=TEST_LABEL)
    # Publish on loopback only (testcontainers would bind every interface).
    cast(dict[str, Any], container.ports)["5432"] = ("127.0.0.1", None)
    # Entering waits until psql can log in over TCP inside the container, and removes the
    # container if that never happens; leaving always removes it.
    with container:
        yield container.get_connection_url(host="127.0.0.1")


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
    yield make_sessionmaker(engine)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed at the end of the test (tests may also commit themselves)."""
    with sessions() as opened:
        yield opened
        opened.commit()
