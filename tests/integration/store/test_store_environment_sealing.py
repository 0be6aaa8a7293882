"""Function environments at rest, on SQLite and Postgres: rows (and SQLite's files) hold no
plaintext, rows written before encryption are encrypted at start, retired keys are rotated out,
and a wrong or lost key stops start-up with a clear error."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session, sessionmaker
from store_samples import sha

from fnplat.config import SecretsSettings, Settings
from fnplat.domain import FunctionSpec, frozen_map
from fnplat.errors import SecretKeyError, ServiceError
from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, generate_key
from fnplat.secrets_startup import start_environment_cipher
from fnplat.store import repository as repo
from fnplat.store.columns import utcnow
from fnplat.store.db import alembic_config, make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.models import FunctionRow, FunctionVersionRow


def secret() -> str:
    return f"s3cret-{uuid.uuid4().hex}"


def spec_with(name: str, value: str) -> FunctionSpec:
    environment = frozen_map({"DB_PASSWORD": value, "STAGE": "prod"})
    return FunctionSpec(name=name, runtime="python3.11", handler="app.handler", environment=environment)


def cipher(current: str, *retired: str) -> EnvironmentCipher:
    return EnvironmentCipher(SecretKeys(current.encode(), tuple(k.encode() for k in retired), "test"))


def settings(data_dir: Path, key: str | None = None, *old: str) -> Settings:
    return Settings(data_dir=data_dir, secrets=SecretsSettings(key=key, old_keys=old))


def raw_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        query = text("SELECT environment, environment_sealed FROM function_versions ORDER BY id")
        return [tuple(row) for row in connection.execute(query)]


def sqlite_bytes(engine: Engine) -> bytes:
    """Everything SQLite keeps on disk for this database: the file, its WAL and shared memory."""
    database = Path(str(engine.url.database))
    parts = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm")]
    return b"".join(part.read_bytes() for part in parts if part.exists())


def add_plaintext_row(engine: Engine, name: str, value: str) -> None:
    """A version as the store wrote it before environments were encrypted."""
    now = utcnow()
    with engine.begin() as connection:
        function = {"name": name, "latest_version": 1, "created_at": now, "updated_at": now}
        connection.execute(insert(FunctionRow).values(**function))
        connection.execute(
            insert(FunctionVersionRow).values(
                function_name=name,
                version=1,
                runtime="python3.11",
                handler="app.handler",
                memory=128,
                timeout=3,
                environment={"DB_PASSWORD": value, "PADDING": "p" * 3000},  # spills to overflow pages
                code_sha256=sha(name),
                created_at=now,
            )
        )


@pytest.fixture
def clean(sessions: sessionmaker[Session]) -> None:
    """Uses the store fixture only for its clean-up of every table afterwards."""


def test_stored_versions_hold_no_plaintext(engine: Engine, clean: None) -> None:
    value = secret()
    box = cipher(generate_key())
    with transaction(make_sessionmaker(engine, box)) as s:
        created = repo.create_version(s, spec_with("fn", value), sha("1"), None)
    assert created.environment["DB_PASSWORD"] == value
    ((plain, sealed),) = raw_rows(engine)
    assert value not in f"{plain}{sealed}" and "DB_PASSWORD" not in f"{plain}{sealed}"
    with transaction(make_sessionmaker(engine, box)) as s:
        latest, first = repo.get_latest_version(s, "fn"), repo.get_version(s, "fn", 1)
    assert latest is not None and first is not None
    assert dict(latest.environment) == dict(first.environment) == {"DB_PASSWORD": value, "STAGE": "prod"}
    if engine.dialect.name == "sqlite":
        assert value.encode() not in sqlite_bytes(engine)


def test_versions_need_the_cipher(engine: Engine, clean: None) -> None:
    plain_sessions = make_sessionmaker(engine)
    refused = pytest.raises(ServiceError, match="function environments are encrypted")
    with refused, transaction(plain_sessions) as s:
        repo.create_version(s, spec_with("fn", secret()), sha("1"), None)
    with transaction(plain_sessions) as s:
        assert repo.list_functions(s) == []  # other data needs no key


def test_start_encrypts_rows_written_before_and_leaves_no_plaintext(
    engine: Engine, clean: None, tmp_path: Path
) -> None:
    value = secret()
    add_plaintext_row(engine, "legacy", value)
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert value.encode() in sqlite_bytes(engine)  # the premise: the plaintext is on disk
    key = generate_key()
    box = start_environment_cipher(settings(tmp_path, key), engine)
    ((plain, sealed),) = raw_rows(engine)
    assert plain in ({}, "{}") and isinstance(sealed, str) and value not in sealed
    with transaction(make_sessionmaker(engine, box)) as s:
        version = repo.get_latest_version(s, "legacy")
    assert version is not None and version.environment["DB_PASSWORD"] == value
    if engine.dialect.name == "sqlite":
        assert value.encode() not in sqlite_bytes(engine)
    # A second start finds nothing to do and the same key opens everything.
    start_environment_cipher(settings(tmp_path, key), engine)
    assert raw_rows(engine) == [(plain, sealed)]


def test_a_wrong_key_stops_start_and_retired_keys_are_rotated_out(
    engine: Engine, clean: None, tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    with transaction(make_sessionmaker(engine, cipher(old))) as s:
        repo.create_version(s, spec_with("fn", "v"), sha("1"), None)
    with pytest.raises(SecretKeyError, match="cannot be decrypted with the key from FNPLAT_SECRET_KEY"):
        start_environment_cipher(settings(tmp_path, new), engine)
    box = start_environment_cipher(settings(tmp_path, new, old), engine)
    (_, sealed), = raw_rows(engine)
    assert isinstance(sealed, str) and box.is_current(sealed)
    start_environment_cipher(settings(tmp_path, new), engine)  # the old key is no longer needed
    with pytest.raises(SecretKeyError):
        start_environment_cipher(settings(tmp_path, old), engine)


def test_a_lost_key_file_is_not_replaced_by_a_new_key(engine: Engine, clean: None, tmp_path: Path) -> None:
    box = start_environment_cipher(settings(tmp_path), engine)  # first start: makes secret.key
    key_file = tmp_path / "secret.key"
    assert key_file.is_file()
    with transaction(make_sessionmaker(engine, box)) as s:
        repo.create_version(s, spec_with("fn", "v"), sha("1"), None)
    start_environment_cipher(settings(tmp_path), engine)  # the same key again
    key_file.unlink()
    with pytest.raises(SecretKeyError, match=re.escape(f"no secret key: {key_file} does not exist")):
        start_environment_cipher(settings(tmp_path), engine)
    assert not key_file.exists()


def test_migration_0006_keeps_older_rows_for_the_first_start(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "3f6a1c2e9b02")
        now = utcnow().isoformat()
        connection.execute(
            text("INSERT INTO functions VALUES ('old', 1, :now, :now)"), {"now": now}
        )
        connection.execute(
            text(
                "INSERT INTO function_versions (function_name, version, runtime, handler, memory, timeout,"
                " environment, code_sha256, image, created_at)"
                " VALUES ('old', 1, 'python3.11', 'app.handler', 128, 3, :env, :sha, NULL, :now)"
            ),
            {"env": '{"TOKEN": "from-before"}', "sha": sha("old"), "now": now},
        )
    upgrade_to_head(engine)
    assert raw_rows(engine) == [('{"TOKEN": "from-before"}', None)]
    box = start_environment_cipher(settings(tmp_path, generate_key()), engine)
    with transaction(make_sessionmaker(engine, box)) as s:
        version = repo.get_latest_version(s, "old")
    assert version is not None and dict(version.environment) == {"TOKEN": "from-before"}
    assert b"from-before" not in sqlite_bytes(engine)
    with engine.begin() as connection, pytest.raises(RuntimeError, match="would lose them"):
        config.attributes["connection"] = connection
        command.downgrade(config, "3f6a1c2e9b02")
    with engine.connect() as connection:
        columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(function_versions)")]
    assert "environment_sealed" in columns
    engine.dispose()
