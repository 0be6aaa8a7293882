"""Shared test configuration.

Tests marked `docker` need a running Docker engine and the images from scripts/build-images.sh.
They fail (not skip) when the engine is missing: `make test` starts it and builds the images.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

REPO = Path(__file__).resolve().parent.parent

# testcontainers' reaper image cannot be pulled here; fixtures clean up their own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that restart dockerd run only when asked for by name (`-m docker_restart`): they kill
    every container on the machine, the session's own Postgres included."""
    if "docker_restart" in (config.option.markexpr or ""):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker("docker_restart") else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session")
def docker_images() -> None:
    """Make sure the engine answers and every image is built (idempotent, fast when unchanged)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/build-images.sh failed:\n{result.stdout}\n{result.stderr}")


POSTGRES_IMAGE = "fnplat/postgres:15"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """An empty Postgres (the locally built image) on 127.0.0.1, for the session; removed afterwards."""
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
    ).with_kwargs(labels={"fnplat.test": "postgres"})
    cast(dict[str, Any], container.ports)["5432"] = ("127.0.0.1", None)
    with container:
        yield container.get_connection_url(host="127.0.0.1")
