"""A task reaches its Runtime API and, by default, the internet, and nothing else (ARCHITECTURE.md,
Sandboxes): not the host's services, not link-local addresses (cloud metadata), not the metadata
store, not private networks unless an operator allowed a CIDR; `network: none` reaches only its
Runtime API. The controller's rules go when it stops.

From inside tasks, against stand-ins this test starts on this machine (net_stand_ins.py):
- INPUT path (addresses of the host): a listener on the task bridge's gateway address (not the
  Runtime API's port), and on a link-local and a private address added to `lo`;
- FORWARD path (elsewhere): a namespace behind a veth pair with "the internet" (198.51.100.71),
  a link-local address, a private one inside the CIDR the platform is told to allow and one
  outside it, and the platform's own Postgres (a forwarder to the test Postgres) on an address
  inside the allowed CIDR, so only the rule derived from the database URL refuses it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from e2e_platform import Platform, running_platform
from net_stand_ins import Elsewhere, host_addresses, listeners

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

PROBE = Path(__file__).parent / "functions" / "net-probe"
PORT = 4071  # every listener in the namespace

HOST_LINK_LOCAL = "169.254.171.254"  # never 169.254.169.254 itself
HOST_PRIVATE = "10.254.71.1"  # inside the allowed CIDR: allowed CIDRs never open the host
INTERNET = "198.51.100.71"
LINK_LOCAL = "169.254.171.253"
ALLOWED_CIDR = "10.254.71.0/24"
ALLOWED = "10.254.71.9"
PRIVATE = "10.254.72.9"
DATABASE = "10.254.71.20"  # inside the allowed CIDR


def postgres_bridge_address(postgres_url: str) -> str:
    """Where the test Postgres container listens on the default bridge."""
    port = int(urlparse(postgres_url).port or 0)
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"publish={port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(ids) == 1, ids
    inspected = subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True)
    info = json.loads(inspected.stdout)
    return str(next(iter(info[0]["NetworkSettings"]["Networks"].values()))["IPAddress"])


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own in the test Postgres (the session's one stays empty for others)."""
    name = f"fnplat_net_{uuid.uuid4().hex[:8]}"
    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def our_rules(instance_id: str) -> list[str]:
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True)
    return [line for line in saved.stdout.splitlines() if instance_id in line]


def deploy_isolated_probe(platform: Platform, tmp_path: Path) -> None:
    isolated = tmp_path / "net-probe-none"
    shutil.copytree(PROBE, isolated)
    spec = isolated / "function.yaml"
    spec.write_text(spec.read_text().replace("name: net-probe", "name: net-probe-none") + "network: none\n")
    platform.fnctl("deploy", str(isolated))


def probe(platform: Platform, function: str, targets: list[str]) -> dict[str, str]:
    response = platform.invoke(function, {"targets": targets})
    assert response.status_code == 200, response.text
    result: dict[str, str] = response.json()
    return result


def test_a_task_reaches_its_runtime_api_and_the_internet_and_nothing_else(
    docker_images: None, postgres_url: str, database: str, tmp_path: Path
) -> None:
    elsewhere = Elsewhere([INTERNET, LINK_LOCAL, ALLOWED, PRIVATE, DATABASE])
    forward_to_postgres = f"{DATABASE}:5432={postgres_bridge_address(postgres_url)}:5432"
    listen = [f"{address}:{PORT}" for address in (INTERNET, LINK_LOCAL, ALLOWED, PRIVATE, DATABASE)]
    data_dir = tmp_path / "data"
    with (
        elsewhere.running(listen, proxy=[forward_to_postgres]),
        host_addresses([HOST_LINK_LOCAL, HOST_PRIVATE]),
        running_platform(
            data_dir,
            FNPLAT_TASK_ALLOW_CIDRS=ALLOWED_CIDR,
            FNPLAT_DATABASE_URL=f"postgresql+psycopg://fnplat:fnplat@{DATABASE}:5432/{database}",
        ) as platform,
    ):
        instance_id = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        gateway = str(ipaddress.ip_network(platform.subnet)[1])
        with listeners([gateway, HOST_LINK_LOCAL, HOST_PRIVATE]) as ports:
            host_targets = [f"{address}:{port}" for address, port in ports.items()]
            blocked_elsewhere = [f"{a}:{PORT}" for a in (LINK_LOCAL, PRIVATE)] + [f"{DATABASE}:5432"]
            reachable_elsewhere = [f"{a}:{PORT}" for a in (INTERNET, ALLOWED, DATABASE)]
            targets = ["runtime-api", *host_targets, *blocked_elsewhere, *reachable_elsewhere]

            platform.fnctl("deploy", str(PROBE))
            # Refused by a rule (EHOSTUNREACH: icmp-admin-prohibited), not merely unanswered.
            assert probe(platform, "net-probe", targets) == {
                "runtime-api": "connected",
                **{target: "EHOSTUNREACH" for target in host_targets},  # any port of any host address
                **{target: "EHOSTUNREACH" for target in blocked_elsewhere},
                **{target: "connected" for target in reachable_elsewhere},
            }

            deploy_isolated_probe(platform, tmp_path)
            assert probe(platform, "net-probe-none", targets) == {
                "runtime-api": "connected",
                **{target: "EHOSTUNREACH" for target in targets if target != "runtime-api"},
            }
        assert our_rules(instance_id), "the controller's chains are named after its instance"
    assert our_rules(instance_id) == [], "the controller left rules behind"
