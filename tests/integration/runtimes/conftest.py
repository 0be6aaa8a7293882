"""Fixtures for the runtime tests: the stub Runtime API, bootstrap launchers, runtime images."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from runtime_stub import REPO, Launcher, StubRuntimeApi


@pytest.fixture
async def stub_api() -> AsyncIterator[StubRuntimeApi]:
    api = StubRuntimeApi()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def launch(stub_api: StubRuntimeApi, tmp_path: Path) -> AsyncIterator[Launcher]:
    launcher = Launcher(stub_api, tmp_path)
    yield launcher
    for runtime in launcher.started:
        await runtime.stop()


# ------------------------------------------------------------------ Docker (images) fixtures


@pytest.fixture(scope="session")
def runtime_images() -> Iterator[None]:
    """Build (or confirm up to date) the runtime images; fails, never skips, without Docker."""
    subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), "python3.11", "nodejs18.x", "provided"],
        check=True,
        timeout=900,
    )
    yield


@pytest.fixture(scope="session")
def bridge_gateway() -> str:
    """The host's address on docker0: containers reach a stub listening there."""
    out = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture
async def bridge_api(bridge_gateway: str) -> AsyncIterator[StubRuntimeApi]:
    api = StubRuntimeApi()
    await api.start(bridge_gateway)
    yield api
    await api.stop()
