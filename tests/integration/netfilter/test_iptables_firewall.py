"""The task firewall on this host's real iptables: installed idempotently, re-asserted after
someone removed a jump or flushed a chain (as a dockerd restart or a firewall reload may), moved
to a new subnet without leftovers, and removed without a trace.

Needs root and Docker's DOCKER-USER chain (a running dockerd). The subnets are in 198.18.0.0/15
(benchmarking addresses, never a Docker network's), so these rules match nobody's traffic."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest

from fnplat.config import SandboxSettings
from fnplat.controller.engine import NetworkInfo
from fnplat.controller.netfilter import IptablesFirewall

pytestmark = pytest.mark.docker

TASKS = NetworkInfo("t", "198.18.200.0/24", "198.18.200.1")
BUILDS = NetworkInfo("b", "198.18.201.0/24", "198.18.201.1")
MOVED = NetworkInfo("t", "198.18.202.0/24", "198.18.202.1")


def iptables(*args: str, check: bool = True) -> str:
    done = subprocess.run(["iptables", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"iptables {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def docker_user_exists() -> bool:
    return subprocess.run(["iptables", "-S", "DOCKER-USER"], capture_output=True, check=False).returncode == 0


def ours(tag: str) -> list[str]:
    return [line for line in iptables("-S").splitlines() if line.endswith(tag) or f"-{tag} " in line]


@pytest.fixture
async def firewall() -> AsyncIterator[tuple[IptablesFirewall, str]]:
    if os.geteuid() != 0:
        pytest.fail("this test installs iptables rules: run it as root")
    if not docker_user_exists():
        pytest.fail("no DOCKER-USER chain: is dockerd running?")
    tag = f"it{uuid.uuid4().hex[:10]}"
    wall = IptablesFirewall(tag, SandboxSettings(), "postgresql://u:p@198.18.203.5:5432/db")
    try:
        yield wall, tag
    finally:
        await wall.remove()
        assert ours(tag) == []


async def test_install_is_idempotent_and_ensure_repairs(firewall: tuple[IptablesFirewall, str]) -> None:
    wall, tag = firewall
    await wall.install(TASKS, 9001, BUILDS)
    installed = ours(tag)
    await wall.install(TASKS, 9001, BUILDS)
    assert ours(tag) == installed  # no duplicate jumps or rules
    assert f"-A DOCKER-USER -s 198.18.200.0/24 -j FNPLAT-T-FWD-{tag}" in installed
    assert f"-A INPUT -s 198.18.201.0/24 -j FNPLAT-B-IN-{tag}" in installed
    assert any("198.18.203.5/32" in line and "--dport 5432" in line for line in installed)

    # What a dockerd restart or a firewall reload may do: a jump gone, a chain emptied.
    iptables("-D", "DOCKER-USER", "-s", "198.18.200.0/24", "-j", f"FNPLAT-T-FWD-{tag}")
    iptables("-F", f"FNPLAT-T-IN-{tag}")
    assert ours(tag) != installed
    await wall.ensure()
    assert sorted(ours(tag)) == sorted(installed)
    # Ours stays first in DOCKER-USER, before Docker's own RETURN.
    docker_user = iptables("-S", "DOCKER-USER").splitlines()
    assert docker_user.index(f"-A DOCKER-USER -s 198.18.200.0/24 -j FNPLAT-T-FWD-{tag}") < docker_user.index(
        "-A DOCKER-USER -j RETURN"
    )


async def test_a_new_subnet_replaces_the_old_one(firewall: tuple[IptablesFirewall, str]) -> None:
    wall, tag = firewall
    await wall.install(TASKS, 9001, BUILDS)
    await wall.install(MOVED, 9002, None)  # a restart with other settings, no build network
    rules = ours(tag)
    assert not any("198.18.200.0/24" in line or "198.18.201.0/24" in line for line in rules)
    assert not any("FNPLAT-B-" in line for line in rules)
    assert f"-A INPUT -s 198.18.202.0/24 -j FNPLAT-T-IN-{tag}" in rules
