"""A function cannot reach the metadata store or other tasks: only the outside world and, with a
key, the gateway if an operator exposes it."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from e2e_platform import Platform

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

PROBE = Path(__file__).parent / "functions" / "py-probe"


def bridge_address_of_port(published_port: int) -> str:
    """The default-bridge address of the container publishing `published_port` on 127.0.0.1."""
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"publish={published_port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(ids) == 1, ids
    info = json.loads(
        subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True).stdout
    )
    networks = info[0]["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def test_a_task_reaches_neither_the_metadata_store_nor_the_gateway(
    platform: Platform, postgres_url: str
) -> None:
    postgres = bridge_address_of_port(int(urlparse(postgres_url).port or 0))
    gateway_ip = str(ipaddress.ip_network(platform.subnet)[1])  # the host's address on the task bridge
    platform.fnctl("deploy", str(PROBE))
    targets = [f"{postgres}:5432", f"{gateway_ip}:{platform.port}"]
    result = platform.invoke("py-probe", {"targets": targets})
    assert result.status_code == 200, result.text
    outcome = result.json()
    assert outcome[f"{postgres}:5432"] != "connected"  # Docker isolates bridges from each other
    assert outcome[f"{gateway_ip}:{platform.port}"] != "connected"  # the gateway listens on loopback only


def test_a_task_cannot_reach_another_task(platform: Platform, tmp_path: Path) -> None:
    listener = tmp_path / "py-listener"  # the probe's code under another name: a second function
    shutil.copytree(PROBE, listener)
    spec = listener / "function.yaml"
    spec.write_text(spec.read_text().replace("name: py-probe", "name: py-listener"))
    platform.fnctl("deploy", str(listener))
    platform.fnctl("deploy", str(PROBE))
    # The listener's task listens on :8000 and can reach itself there (the control)...
    own = platform.invoke("py-listener", {"listen": 8000, "targets": ["127.0.0.1:8000"]}).json()
    assert own == {"127.0.0.1:8000": "connected"}
    header, *tasks = platform.fnctl("tasks").stdout.splitlines()
    columns = header.split()
    function, ip = columns.index("FUNCTION"), columns.index("IP")
    listener_ips = [line.split()[ip] for line in tasks if line.split()[function] == "py-listener"]
    assert listener_ips
    # ...but the probe's task cannot: no traffic between tasks on the task bridge.
    result = platform.invoke("py-probe", {"targets": [f"{ip}:8000" for ip in listener_ips]}).json()
    assert all(value != "connected" for value in result.values()), result
