"""The data dir is made private at start: created 0700, loose modes tightened, the SQLite file
0600 before SQLite creates it; unpacked code shared with the tasks' group when possible."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fnplat.artifacts import CodeAccess
from fnplat.config import Settings
from fnplat.datadir import code_access_for, prepare_data_dir, sqlite_file
from fnplat.errors import InvalidParameter
from fnplat.store.db import make_engine, upgrade_to_head


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_data_dir_is_private(tmp_path: Path, loose_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "new" / "data")
    prepare_data_dir(settings)
    assert mode(settings.data_dir) == 0o700
    database = settings.data_dir / "fnplat.db"
    assert mode(database) == 0o600 and database.stat().st_size == 0
    engine = make_engine(settings.db_url)
    upgrade_to_head(engine)  # SQLite takes the empty file as a new database
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x)")  # a write: -wal and -shm exist now
        wal, shm = (settings.data_dir / f"fnplat.db-{s}" for s in ("wal", "shm"))
        assert mode(wal) == 0o600 and mode(shm) == 0o600  # SQLite copies the database's mode
    engine.dispose()


def test_an_existing_loose_data_dir_is_tightened(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    data = settings.data_dir
    (data / "artifacts" / "sha256").mkdir(parents=True)
    (data / "code" / ("a" * 64)).mkdir(parents=True)
    for directory in (data, data / "artifacts", data / "artifacts" / "sha256", data / "code"):
        os.chmod(directory, 0o755)
    for name in ("fnplat.db", "fnplat.db-wal", "fnplat.db-shm", "admin-key", "secret.key"):
        (data / name).write_text("x")
        os.chmod(data / name, 0o644)
    os.chmod(data / "code" / ("a" * 64), 0o750)
    prepare_data_dir(settings)
    for directory in (data, data / "artifacts", data / "artifacts" / "sha256", data / "code"):
        assert mode(directory) == 0o700, directory
    for name in ("fnplat.db", "fnplat.db-wal", "fnplat.db-shm", "admin-key", "secret.key"):
        assert mode(data / name) == 0o600, name
    assert mode(data / "code" / ("a" * 64)) == 0o750  # what tasks read is left as it was


def test_tightening_never_loosens(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    (settings.data_dir / "admin-key").write_text("x")
    os.chmod(settings.data_dir / "admin-key", 0o400)
    prepare_data_dir(settings)
    assert mode(settings.data_dir / "admin-key") == 0o400


def test_a_data_dir_that_is_not_ours_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    os.chmod(settings.data_dir, 0o775)
    real_chmod = os.chmod

    def chmod(path: Path, mode: int, **kwargs: bool) -> None:
        if Path(path) == settings.data_dir:
            raise PermissionError(1, "Operation not permitted", str(path))
        real_chmod(path, mode, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    prepare_data_dir(settings)
    assert "belongs to another user: cannot make it 700" in caplog.text
    assert mode(settings.data_dir / "fnplat.db") == 0o600  # what the platform writes is still private


def test_a_postgres_store_leaves_no_sqlite_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url="postgresql://u@127.0.0.1/db")
    prepare_data_dir(settings)
    assert list(settings.data_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/fnplat/fnplat.db", Path("/srv/fnplat/fnplat.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("sqlite:///file:x?mode=memory&uri=true", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_sqlite_file(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected


@pytest.mark.parametrize(
    ("euid", "groups", "expected"),
    [
        (0, {0}, CodeAccess.for_group(990)),  # root gives files any group
        (10001, {10001, 990}, CodeAccess.for_group(990)),  # a member of the tasks' group
        (10001, {10001}, CodeAccess.world_readable()),  # neither: the 0700 data dir keeps others out
    ],
)
def test_code_access(euid: int, groups: set[int], expected: CodeAccess) -> None:
    assert code_access_for("993:990", euid, groups) == expected


@pytest.mark.parametrize("task_user", ["993", "nobody:990", "993:", ":990"])
def test_task_user_must_be_numeric(task_user: str) -> None:
    with pytest.raises(InvalidParameter, match="must be numeric uid:gid"):
        code_access_for(task_user, 0, {0})
