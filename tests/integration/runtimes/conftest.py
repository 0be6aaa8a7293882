"""Fixtures for the runtime tests: the stub Runtime API, bootstrap launchers, runtime images."""

from __future__ import annotations

import ipaddress
import json
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
    """The host's address on Docker's default bridge: containers reach a stub listening there.

    Docker 20.10 leaves IPAM Gateway empty for the default bridge, so fall back to the address of
    the bridge interface itself, then to the subnet's first host (Docker's convention).
    """
    inspected = subprocess.run(
        ["docker", "network", "inspect", "bridge"], check=True, capture_output=True, text=True
    ).stdout
    network = json.loads(inspected)[0]
    config = network["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    interface = network["Options"].get("com.docker.network.bridge.name", "docker0")
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True
    )
    for field in shown.stdout.split():
        if "/" in field and field[0].isdigit():
            return field.split("/")[0]
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture
async def bridge_api(bridge_gateway: str) -> AsyncIterator[StubRuntimeApi]:
    api = StubRuntimeApi()
    await api.start(bridge_gateway)
    yield api
    await api.stop()
