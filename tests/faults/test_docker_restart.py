"""dockerd restarts under a running platform. The platform reconnects, reconciles its tasks with
what Docker lists, and the next call of every function succeeds instead of waiting for its
timeout on a task that is dead.

- Without live-restore, dockerd stops every container on its way down. Their `die` events may
  reach the platform, but removing the containers then fails (dockerd is going away): the
  platform removes them once dockerd is back.
- With live-restore, containers outlive dockerd. One that dies while dockerd is down never gets
  a `die` event (dockerd restores it as stopped, silently): only the re-check finds it. The
  survivors keep serving and their output is followed again.

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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform, running_platform
from fault_functions import deployed

from fnplat.config import Settings

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


def wait_for(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll another process's state until `predicate()` holds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stop_dockerd() -> None:
    """Stop dockerd through its pid file and wait until it has exited."""
    pid = int(DOCKER_PID_FILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    # It stops every container first (10 s grace each, in parallel) unless live-restore is on.
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 120, "dockerd to stop")


@pytest.fixture
def dockerd_restored() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("restarting dockerd needs root (CI runs as root)")
    try:
        yield
    finally:
        ensure_docker()  # whatever happened, the engine runs again for everyone else


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

    def reloaded() -> bool:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.LiveRestoreEnabled}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return info.stdout.strip() == str(expected).lower()

    wait_for(reloaded, 30, f"dockerd to reload live-restore={expected}")


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


def instance_containers(platform: Platform) -> set[str]:
    instance = Settings.from_env(data_dir=platform.data_dir).controller.instance_id
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=fnplat.instance={instance}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.split())


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

        stop_dockerd()
        ensure_docker()

        for name in names:
            response = call(plat, name, {"after": True})
            assert response.status_code == 200, "".join(plat.output[-30:])
            assert "X-Amz-Function-Error" not in response.headers, response.text
            assert response.json() == {"function": name, "event": {"after": True}}
        after = containers_of(plat)
        assert set(after) == set(names)
        assert not set(after.values()) & set(before.values())  # served by new tasks
        # The dead containers dockerd could not remove on its way down are removed now.
        wait_for(lambda: instance_containers(plat) == set(after.values()), 30, "only live tasks' containers")


def test_with_live_restore_a_task_that_died_meanwhile_is_replaced_and_survivors_serve_on(
    docker_images: None, live_restore: None, tmp_path: Path
) -> None:
    with running_platform(tmp_path) as plat:
        for name in ("victim", "keeper"):
            deployed(plat, name, timeout=FUNCTION_TIMEOUT)
            assert call(plat, name, {"before": True}).status_code == 200
        before = containers_of(plat)
        victim_pid = int(
            subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Pid}}", before["victim"]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )

        stop_dockerd()
        os.kill(victim_pid, signal.SIGKILL)  # the task dies while nobody can report it
        wait_for(lambda: not Path(f"/proc/{victim_pid}").exists(), 30, "the victim to die")
        ensure_docker()

        for name in ("victim", "keeper"):
            response = call(plat, name, {"after": True})
            assert response.status_code == 200, "".join(plat.output[-30:])
            assert response.json() == {"function": name, "event": {"after": True}}, response.text
        after = containers_of(plat)
        assert after["keeper"] == before["keeper"]  # it survived the restart and serves on
        assert after["victim"] != before["victim"]  # the dead one was found and replaced
        assert metric(plat, "fnplat_tasks_found_dead_total") == 1

        printed = call(plat, "keeper", {"print": "after the restart"})
        assert printed.status_code == 200
        request_id = printed.headers["x-amzn-RequestId"]

        def logged() -> bool:
            logs = plat.fnctl("logs", "keeper", "--request-id", request_id).stdout
            return "after the restart" in logs

        wait_for(logged, 20, "the keeper's output after the restart to reach its logs")
