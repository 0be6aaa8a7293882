"""The data dir is private: 0700, and what it holds (database, keys, artifacts, unpacked code)
readable by the platform's user only, apart from the code the tasks read.

`prepare_data_dir` creates it so on first start and tightens what an earlier version (or a
loose umask) left readable; `code_access_for` decides how unpacked code is shared with tasks.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Collection
from pathlib import Path

from sqlalchemy.engine import make_url

from fnplat.artifacts import CodeAccess, make_private_dirs
from fnplat.config import Settings
from fnplat.errors import InvalidParameter, ServiceError

log = logging.getLogger("fnplat.datadir")

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Files of the data dir that must never be readable by others; SQLite's -wal and -shm get the
# mode of the database file they belong to.
_PRIVATE_FILES = ("admin-key", "secret.key")
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def prepare_data_dir(settings: Settings) -> None:
    """Create the data dir 0700 (or tighten it), make the SQLite database file 0600 before
    SQLite creates it (its -wal and -shm copy that mode), and tighten what is already there."""
    data_dir = settings.data_dir
    try:
        make_private_dirs(data_dir)
        tighten(data_dir, PRIVATE_DIR_MODE)
        for directory in (settings.artifacts_dir, settings.artifacts_dir / "sha256", settings.code_dir):
            tighten(directory, PRIVATE_DIR_MODE)
        for name in _PRIVATE_FILES:
            tighten(data_dir / name, PRIVATE_FILE_MODE)
        database = sqlite_file(settings.db_url)
        if database is not None:
            make_private_dirs(database.parent)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
            for suffix in _SQLITE_SUFFIXES:
                tighten(database.with_name(database.name + suffix), PRIVATE_FILE_MODE)
    except PermissionError as exc:
        problem = f"{exc.strerror}: {exc.filename}"
        raise ServiceError(f"cannot prepare the data dir {data_dir}: {problem}") from None


def tighten(path: Path, mode: int) -> None:
    """Take away from `path` every permission bit `mode` does not grant (no-op if it is absent)."""
    try:
        current = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        try:
            os.chmod(path, current & mode, follow_symlinks=False)
        except PermissionError:
            # Not ours (a volume prepared by someone else): start anyway, say so loudly. What
            # the platform writes inside is still private, file by file.
            log.warning(
                "%s is mode %o and belongs to another user: cannot make it %o, other local users "
                "may list or read it",
                path,
                current,
                current & mode,
            )
            return
        log.info("tightened %s from %o to %o", path, current, current & mode)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for Postgres or an in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(parsed.database).expanduser()


def parse_task_user(task_user: str) -> tuple[int, int]:
    uid, sep, gid = task_user.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise InvalidParameter(f"FNPLAT_TASK_USER={task_user!r} must be numeric uid:gid, e.g. 993:990")
    return int(uid), int(gid)


def code_access_for(task_user: str, euid: int, groups: Collection[int]) -> CodeAccess:
    """Unpacked code readable by the tasks' group when this process may give files that group
    (root, or a member of it), else world-readable bits: the 0700 data dir above it still keeps
    other local users out, and inside a task the parents' modes do not apply."""
    _, gid = parse_task_user(task_user)
    if euid == 0 or gid in groups:
        return CodeAccess.for_group(gid)
    return CodeAccess.world_readable()


def own_code_access(task_user: str) -> CodeAccess:
    return code_access_for(task_user, os.geteuid(), {os.getegid(), *os.getgroups()})
