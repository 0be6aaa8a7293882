"""The data dir is private: after `fnctl up` and a deploy, the data dir, database, keys, stored
artifacts and unpacked code are not readable by another local user, and the function (whose
task runs as another uid and reads its code through a bind mount) still works."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_platform import running_platform

pytestmark = pytest.mark.docker

FUNCTION = Path(__file__).parent / "functions" / "py-env"
TASK_GID = 990  # ControllerSettings.task_user's group


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def reachable_parent() -> Iterator[Path]:
    """A parent any local user may enter (pytest's own temp dirs are 0700 and would hide a
    world-readable data dir): only the data dir's own modes protect what it holds."""
    base = Path(tempfile.mkdtemp(prefix="fnplat-private-"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_data_dir_is_private_and_the_function_still_reads_its_code(
    docker_images: None, reachable_parent: Path
) -> None:
    assert os.geteuid() == 0, "needs root: reads are attempted as another user with setpriv"
    with running_platform(reachable_parent / "data") as plat:
        plat.fnctl("deploy", str(FUNCTION))
        response = plat.invoke("py-env", {"names": ["STAGE"]})
        assert response.status_code == 200 and response.json() == {"STAGE": "prod"}, response.text

        data = plat.data_dir
        (artifact,) = (data / "artifacts" / "sha256").iterdir()
        (code,) = (p for p in (data / "code").iterdir() if not p.name.startswith("."))
        assert mode(data) == 0o700
        for directory in (data / "artifacts", data / "artifacts" / "sha256", data / "code"):
            assert mode(directory) == 0o700, directory
        private_files = [data / "fnplat.db", data / "admin-key", data / "secret.key", artifact]
        private_files += [data / f"fnplat.db-{suffix}" for suffix in ("wal", "shm")]
        for path in private_files:
            assert mode(path) == 0o600, path
        # Code: readable by the tasks' group only (root gives it that group).
        assert (mode(code), code.stat().st_gid) == (0o750, TASK_GID)
        for path in code.rglob("*"):
            expected = 0o750 if path.is_dir() else 0o640
            assert (mode(path), path.stat().st_gid) == (expected, TASK_GID), path

        # Another local user can neither list the data dir nor read anything in it, even by path.
        listing = as_nobody("ls", str(data))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
        for path in [*private_files, code / "app.py"]:
            read = as_nobody("cat", str(path))
            assert read.returncode != 0 and "Permission denied" in read.stderr, path
