"""dockerd restarts under a running platform: every container dies while the platform's event
stream is down (dockerd closes its API before it stops containers, so no `die` event arrives).
The platform reconnects, finds the dead tasks by listing its containers, and the next call of
each function succeeds on a new task instead of waiting for its timeout on a dead one.

Restarting dockerd kills every container on the machine (the session's Postgres too): these tests
carry the `docker_restart` marker, which plain `pytest` runs leave out; `make test` runs them in
a final invocation of their own (`pytest -m docker_restart`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform, running_platform
from fault_functions import deployed

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.docker_restart]

REPO = Path(__file__).resolve().parents[2]
DOCKER_PID_FILE = Path("/var/run/docker.pid")
FUNCTION_TIMEOUT = 60  # a call that reached a dead task would wait this long for its answer
CALL_TIMEOUT = 45  # so a call that waits for a dead task fails the test instead


def ensure_docker() -> None:
    """Start dockerd the way the project does (scripts/ensure-docker.sh), if it is not running."""
    done = subprocess.run(
        [str(REPO / "scripts" / "ensure-docker.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def restart_dockerd() -> None:
    """Stop dockerd through its pid file, wait for it to exit, and start it again."""
    pid = int(DOCKER_PID_FILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 120  # it stops every container first (10 s grace each, in parallel)
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)  # waiting on another process
    ensure_docker()


@pytest.fixture
def dockerd_restored() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("restarting dockerd needs root (CI runs as root)")
    try:
        yield
    finally:
        ensure_docker()  # whatever happened, the engine runs again for everyone else


def call(platform: Platform, name: str, payload: dict[str, object]) -> requests.Response:
    return requests.post(
        f"{platform.url}/2015-03-31/functions/{name}/invocations",
        json=payload,
        headers=platform.headers(),
        timeout=CALL_TIMEOUT,
    )


def containers_of(platform: Platform) -> dict[str, str]:
    response = requests.get(f"{platform.url}/v1/tasks", headers=platform.headers(), timeout=30)
    return {
        t["function"]: t["container_id"] for t in response.json()["tasks"] if t["state"] in ("idle", "busy")
    }


def metric(platform: Platform, name: str) -> float:
    text = requests.get(f"{platform.url}/metrics", headers=platform.headers(), timeout=30).text
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(lines[0].split()[1]) if lines else 0.0


def test_after_a_dockerd_restart_the_next_call_of_every_function_succeeds(
    docker_images: None, dockerd_restored: None, tmp_path: Path
) -> None:
    names = ("left", "right")
    with running_platform(tmp_path) as plat:
        for name in names:
            deployed(plat, name, timeout=FUNCTION_TIMEOUT)
            assert call(plat, name, {"before": True}).status_code == 200
        before = containers_of(plat)
        assert set(before) == set(names)

        restart_dockerd()

        for name in names:
            response = call(plat, name, {"after": True})
            assert response.status_code == 200, response.text
            assert "X-Amz-Function-Error" not in response.headers, response.text
            assert response.json() == {"function": name, "event": {"after": True}}
        after = containers_of(plat)
        assert set(after) == set(names)
        assert not set(after.values()) & set(before.values())  # served by new tasks
        assert metric(plat, "fnplat_tasks_found_dead_total") == 2
