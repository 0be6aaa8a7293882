"""Fixtures for the real Docker engine tests (helpers in engine_harness.py).

Every test here needs a running Docker engine and the base image `fnplat/debian:bookworm`
(scripts/build-images.sh base); they fail, not skip, without them.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from engine_harness import (
    BASE_IMAGE,
    RUN_ID,
    Harness,
    NetworkUnderTest,
    close_harness,
    docker_cli,
    free_subnets,
    open_harness,
    remove_test_containers,
)


@pytest.fixture(scope="session")
def docker_engine_ready() -> None:
    """Fail (never skip) when the engine or the base image is missing."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"Docker is needed for these tests and is not usable: {exc}")
    if info.returncode != 0:
        pytest.fail(f"Docker engine not reachable (run scripts/ensure-docker.sh): {info.stderr.strip()}")
    if docker_cli("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {BASE_IMAGE} missing: run scripts/build-images.sh base")


@pytest.fixture(autouse=True)
def _docker_marked_tests_need_docker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_engine_ready")


@pytest.fixture(scope="session")
def task_network(docker_engine_ready: None) -> Iterator[NetworkUnderTest]:
    subnet, spare = free_subnets(2)
    network = NetworkUnderTest(name=f"fnplat-test-engine-{RUN_ID}", subnet=subnet, spare_subnet=spare)
    yield network
    remove_test_containers()
    docker_cli("network", "rm", network.name, check=False)


@pytest.fixture
async def harness(task_network: NetworkUnderTest) -> AsyncIterator[Harness]:
    opened = await open_harness(task_network)
    try:
        yield opened
    finally:
        await close_harness(opened)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A function's code directory, readable by the sandbox's non-root user."""
    code = tmp_path / "code"
    code.mkdir(mode=0o755)
    code.chmod(0o755)
    (code / "handler.txt").write_text("handler-code\n")
    (code / "handler.txt").chmod(0o644)
    return code
