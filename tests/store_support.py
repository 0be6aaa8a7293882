"""Store helpers for tests in every directory (tests/ is on sys.path through its conftest)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, generate_key
from fnplat.store.db import make_sessionmaker


def make_test_cipher() -> EnvironmentCipher:
    """A cipher with a fresh key: function versions can be written and read with it."""
    return EnvironmentCipher(SecretKeys(generate_key().encode(), (), "test"))


def sealed_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions that can read and write function versions (their environments are encrypted)."""
    return make_sessionmaker(engine, make_test_cipher())
