"""Start-up of environment encryption: load (or on first start create) the key, then bring every
stored environment under it before anything reads one.

Rows written before encryption are encrypted here (a migration cannot see the key) and rows
under a retired key are re-encrypted with the current one. A key that opens none of the stored
environments stops start-up with SecretKeyError, whose message says what to fix.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text

from fnplat.config import Settings
from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import load_keys
from fnplat.store import repository
from fnplat.store.db import make_sessionmaker, transaction

log = logging.getLogger("fnplat.secrets")


def start_environment_cipher(
    settings: Settings, engine: Engine, *, may_create_key: bool = True, seal: bool = True
) -> EnvironmentCipher:
    """The cipher of function environments, once every stored environment opens with it.

    `fnctl up` may create the key on first start and seals what needs it. Cluster roles pass
    may_create_key=False (every process must share one key: a key made by one of them would be
    unknown to the others) and only the migrate role seals (seal=False for gateways and
    controllers, which only need to open what is there)."""
    with transaction(make_sessionmaker(engine)) as session:
        encrypted_before = repository.has_sealed_environments(session)
    # A key is made up only for a store with nothing encrypted: one made over a lost key would
    # leave every stored environment unreadable.
    keys = load_keys(
        settings.secrets, settings.secret_key_file, may_create=may_create_key and not encrypted_before
    )
    cipher = EnvironmentCipher(keys)
    if not seal:
        return cipher
    sqlite = engine.dialect.name == "sqlite"
    with transaction(make_sessionmaker(engine, cipher)) as session:
        if sqlite:
            # The plaintext that rows held before must not stay behind in freed database pages.
            session.connection().exec_driver_sql("PRAGMA secure_delete=ON")
        try:
            counts = repository.seal_environments(session)
        finally:
            if sqlite:
                session.connection().exec_driver_sql("PRAGMA secure_delete=OFF")
    if counts.sealed and sqlite:
        # ...nor in the write-ahead log: copy it into the database and empty it.
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    if counts.sealed or counts.resealed:
        log.info(
            "function environments: %d encrypted, %d re-encrypted with the current key (from %s)",
            counts.sealed,
            counts.resealed,
            keys.source,
        )
    return cipher
