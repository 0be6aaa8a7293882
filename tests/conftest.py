"""Shared test configuration.

Tests marked `docker` need a running Docker engine and the images from scripts/build-images.sh.
They fail (not skip) when the engine is missing: `make test` starts it and builds the images.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# testcontainers' reaper image cannot be pulled here; fixtures clean up their own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def docker_images() -> None:
    """Make sure the engine answers and every image is built (idempotent, fast when unchanged)."""
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/build-images.sh failed:\n{result.stdout}\n{result.stderr}")
