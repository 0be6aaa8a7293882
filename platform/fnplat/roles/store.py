"""The metadata store as a resource of a role: engine, schema, the environment cipher, sessions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fnplat.config import Settings
from fnplat.errors import InvalidParameter, ServiceError
from fnplat.secrets_startup import start_environment_cipher
from fnplat.store.db import current_revision, heads, make_engine, make_sessionmaker, upgrade_to_head

log = logging.getLogger(__name__)

SCHEMA_POLL_S = 2.0  # waiting on another process (the migrate job): there is no event to wait on


@dataclass(frozen=True, slots=True)
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    deadline_s: float  # how long a caller on the loop waits for one store call (then 503)

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def require_postgres(settings: Settings, role: str) -> None:
    """Cluster roles share state through Postgres; SQLite is one process's store."""
    url = settings.database_url or ""
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise InvalidParameter(
            f"fnctl server {role} needs a Postgres metadata store shared by every gateway and "
            "controller: set FNPLAT_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DB "
            "(SQLite is for `fnctl up`, one process on one host)"
        )


@asynccontextmanager
async def open_store(settings: Settings, *, migrate: bool, server_role: bool) -> AsyncIterator[Store]:
    """The store, at the schema this code needs.

    With `migrate` the schema is upgraded here (`fnctl up`, `fnctl server migrate`); otherwise
    (gateways, controllers) it waits for the migrate job, up to FNPLAT_SCHEMA_WAIT.
    """
    engine = make_engine(settings.db_url, settings.telemetry)
    try:
        if migrate:
            await asyncio.to_thread(upgrade_to_head, engine)
        else:
            await wait_for_schema(engine, settings.cluster.schema_wait_s)
        cipher = await asyncio.to_thread(
            start_environment_cipher,
            settings,
            engine,
            may_create_key=not server_role,
            seal=migrate,
        )
        yield Store(engine, make_sessionmaker(engine, cipher), settings.telemetry.store_call_deadline_s)
    finally:
        engine.dispose()


async def wait_for_schema(engine: Engine, wait_s: float) -> None:
    """Until the store's schema is this code's head; ServiceError after `wait_s`."""
    want = set(heads())
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        try:
            have = await asyncio.to_thread(current_revision, engine)
        except Exception as exc:  # not reachable yet: the database may be starting too
            have, reason = None, f"the store is not reachable ({type(exc).__name__})"
        else:
            reason = f"the store is at revision {have or 'none'}"
        if have in want:
            return
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"{reason}, not {', '.join(sorted(want))}: run `fnctl server migrate` "
                f"(waited {wait_s:g} s, FNPLAT_SCHEMA_WAIT)"
            )
        if not announced:
            log.info("waiting for the store's schema: %s; run `fnctl server migrate`", reason)
            announced = True
        await asyncio.sleep(SCHEMA_POLL_S)
