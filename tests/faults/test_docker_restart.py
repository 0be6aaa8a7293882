"""dockerd restarts under a running platform: every container dies while the platform's event
stream is down (dockerd closes its API before it stops containers, so no `die` event arrives).
The platform reconnects, finds the dead tasks by listing its containers, and the next call of
each function succeeds on a new task instead of waiting for its timeout on a dead one.

Restarting dockerd kills every container on the machine (the session's Postgres too): these tests
carry the `docker_restart` marker, which plain `pytest` runs leave out; `make test` runs them in
a final invocation of their own (`pytest -m docker_restart`).
"""

from __future__ import annotations

import json
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
DAEMON_JSON = Path("/etc/docker/daemon.json")
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


@pytest.fixture
def live_restore(dockerd_restored: None) -> Iterator[None]:
    """dockerd's live-restore switched on for the test (a reloadable option: SIGHUP, no restart)
    and back to what it was afterwards."""
    original = DAEMON_JSON.read_text() if DAEMON_JSON.exists() else None
    config = json.loads(original) if original else {}
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_JSON.write_text(json.dumps({**config, "live-restore": True}))
    try:
        reload_dockerd(True)
        yield
    finally:
        ensure_docker()
        # Reload from a file that says so (a reload without the file would keep live-restore on),
        # then put the file back as it was.
        was = bool(config.get("live-restore"))
        DAEMON_JSON.write_text(json.dumps({**config, "live-restore": was}))
        reload_dockerd(was)
        if original is None:
            DAEMON_JSON.unlink(missing_ok=True)
        else:
            DAEMON_JSON.write_text(original)


def reload_dockerd(expected: bool) -> None:
    os.kill(int(DOCKER_PID_FILE.read_text().strip()), signal.SIGHUP)
    deadline = time.monotonic() + 30
    while True:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.LiveRestoreEnabled}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if info.stdout.strip() == str(expected).lower():
            return
        assert time.monotonic() < deadline, f"dockerd did not reload live-restore={expected}: {info.stderr}"
        time.sleep(0.2)


def test_with_live_restore_tasks_survive_and_their_output_is_followed_again(
    docker_images: None, live_restore: None, tmp_path: Path
) -> None:
    with running_platform(tmp_path) as plat:
        deployed(plat, "keeper", timeout=FUNCTION_TIMEOUT)
        assert call(plat, "keeper", {"before": True}).status_code == 200
        before = containers_of(plat)

        restart_dockerd()

        response = call(plat, "keeper", {"after": True})
        assert response.status_code == 200, response.text
        assert response.json() == {"function": "keeper", "event": {"after": True}}
        assert containers_of(plat) == before  # the same task: it survived the restart
        assert metric(plat, "fnplat_tasks_found_dead_total") == 0
        printed = requests.post(
            f"{plat.url}/2015-03-31/functions/keeper/invocations",
            json={"print": "after the restart"},
            headers=plat.headers(),
            timeout=CALL_TIMEOUT,
        )
        assert printed.status_code == 200
        deadline = time.monotonic() + 20
        while True:  # its output is followed again: the line reaches the logs
            logs = plat.fnctl("logs", "keeper", "--request-id", printed.headers["x-amzn-RequestId"]).stdout
            if "after the restart" in logs:
                break
            assert time.monotonic() < deadline, logs
            time.sleep(0.5)
