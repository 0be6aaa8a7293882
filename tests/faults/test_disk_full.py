"""The data dir's disk fills up: deploys fail with a clear 507 naming the data dir and leave no
artifact or version behind, warm invocations go on, and once space is freed the SQLite database
is intact, deploys work and the records held meanwhile are written. The data dir is a small
tmpfs mounted by the test (root only), unmounted afterwards."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_platform import running_platform
from fault_functions import deploy, deployed, package

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SIZE = "48m"


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the disk is full; returns the filler to delete."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for size in (4096, 512, 1):  # the last partial pages too
        with open(filler, "ab", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def stored_request_ids(db: Path, wanted: list[str]) -> set[str]:
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(wanted))
        return {
            r[0]
            for r in conn.execute(
                f"SELECT request_id FROM invocation_records WHERE request_id IN ({marks})", wanted
            )
        }


def test_a_full_data_dir_fails_deploys_cleanly_and_warm_calls_go_on(
    docker_images: None, small_data_dir: Path
) -> None:
    with running_platform(small_data_dir) as plat:
        deployed(plat, "resident")
        assert plat.invoke("resident", {"n": 0}).status_code == 200  # warm
        artifacts_before = sorted((small_data_dir / "artifacts").rglob("*"))

        filler = fill(small_data_dir)
        refused = deploy(plat, package("latecomer"))
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert "data dir (FNPLAT_DATA_DIR)" in body["message"]
        assert str(small_data_dir) not in body["message"]
        assert sorted((small_data_dir / "artifacts").rglob("*")) == artifacts_before  # nothing partial
        listed = requests.get(f"{plat.url}/v1/functions", headers=plat.headers(), timeout=30).json()
        assert [f["name"] for f in listed["functions"]] == ["resident"]

        during = []
        for n in range(1, 6):
            response = plat.invoke("resident", {"n": n})
            assert response.status_code == 200, response.text
            assert "X-Amz-Function-Error" not in response.headers
            during.append(response.headers["x-amzn-RequestId"])

        filler.unlink()
        db = small_data_dir / "fnplat.db"
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        accepted = deploy(plat, package("latecomer"))
        assert accepted.status_code == 201, accepted.text
        assert plat.invoke("latecomer", {}).status_code == 200
        deadline = time.monotonic() + 30
        while stored_request_ids(db, during) != set(during):  # the recorder's retries (another process)
            assert time.monotonic() < deadline, "records held while the disk was full were never written"
            time.sleep(0.5)

    with sqlite3.connect(small_data_dir / "fnplat.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
