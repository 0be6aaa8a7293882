"""Fault: stored data is bounded (ARCHITECTURE.md, "Bounds and recovery").

Invocation records and log lines expire, the usage rollup stays; a removed function's artifact,
unpacked code and function image are collected; what a function still uses is kept and still
runs. The platform first runs with the defaults (no housekeeping run within the test), then is
restarted with a retention age under a second and a housekeeping run every second.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from e2e_platform import Platform, running_platform

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def copy_function(tmp_path: Path, example: str, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(REPO / "examples" / example, target)
    spec = (target / "function.yaml").read_text().splitlines()
    spec = [f"name: {name}" if line.startswith("name:") else line for line in spec]
    spec = [line for line in spec if "/hello" not in line]  # routes of the example: not needed here
    (target / "function.yaml").write_text("\n".join(spec).replace("routes:", "routes: []") + "\n")
    return target


def query(plat: Platform, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{plat.data_dir / 'fnplat.db'}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def image_exists(tag: str) -> bool:
    return (
        subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0
    )


def test_records_expire_usage_stays_and_a_removed_function_is_collected(
    docker_images: None, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    gone, kept = f"gc-gone-{suffix}", f"gc-kept-{suffix}"
    try:
        run(tmp_path, gone, kept)
    finally:  # the image this test built, if collection did not remove it
        for line in subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"fnplat-fn/{gone}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split():
            subprocess.run(["docker", "rmi", line], capture_output=True, check=False)


def run(tmp_path: Path, gone: str, kept: str) -> None:
    with running_platform(tmp_path / "data") as plat:
        plat.fnctl("deploy", str(copy_function(tmp_path, "hello-image", gone)))
        plat.fnctl("deploy", str(copy_function(tmp_path, "hello-python", kept)))
        for name in (gone, gone, kept):
            assert plat.invoke(name, {"pathParameters": {"name": "x"}}).status_code == 200
        (image,) = query(
            plat, f"SELECT image, code_sha256 FROM function_versions WHERE function_name = '{gone}'"
        )
        tag, gone_sha = str(image[0]), str(image[1])
        (kept_sha,) = query(
            plat, f"SELECT code_sha256 FROM function_versions WHERE function_name = '{kept}'"
        )[0]
        assert image_exists(tag)
        plat.fnctl("rm", gone)
        deadline = time.monotonic() + 30
        while query(plat, "SELECT count(*) FROM invocation_records")[0][0] < 3:
            assert time.monotonic() < deadline, "the records were not written"
            time.sleep(0.5)  # polling another process, with a deadline

        plat.stop()
        plat.env.update(
            FNPLAT_RETENTION_DAYS="0.00001",  # under a second
            FNPLAT_HOUSEKEEPING_INTERVAL="1",
            FNPLAT_GC_GRACE="0",
        )
        plat.start()
        zips = plat.data_dir / "artifacts" / "sha256"
        code = plat.data_dir / "code"
        deadline = time.monotonic() + 60
        while (
            image_exists(tag)
            or (zips / f"{gone_sha}.zip").exists()
            or (code / gone_sha).exists()
            or query(plat, "SELECT count(*) FROM invocation_records")[0][0] > 0
        ):
            assert time.monotonic() < deadline, "not collected in time"
            time.sleep(0.5)  # polling another process, with a deadline

        usage = dict(
            query(plat, "SELECT function_name, sum(requests) FROM usage_hourly GROUP BY function_name")
        )
        assert usage == {gone: 2, kept: 1}  # the rollup outlives the records
        assert (zips / f"{kept_sha}.zip").exists()
        assert query(plat, f"SELECT count(*) FROM artifacts WHERE sha256 = '{gone_sha}'") == [(0,)]
        assert plat.invoke(kept, {"pathParameters": {"name": "y"}}).status_code == 200  # still runs
