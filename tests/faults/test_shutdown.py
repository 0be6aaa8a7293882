"""Shutting down and starting again: SIGTERM drains invocations in flight within the documented
bound and `fnctl down` waits for it; a platform killed with SIGKILL starts again cleanly, and a
second server never takes over a data dir that is in use."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from e2e_platform import FNCTL, Platform, free_port, running_platform
from fault_functions import deployed

from fnplat.shutdown import ShutdownBudget, down_wait_s

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SHUTDOWN_TIMEOUT = 12.0  # drain 8 s, tasks 3 s, close 1 s


def tasks(platform: Platform) -> list[dict[str, object]]:
    response = requests.get(f"{platform.url}/v1/tasks", headers=platform.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["tasks"])


def wait_for(predicate: object, within_s: float, what: str) -> None:
    """Poll another process's state until `predicate()` holds, failing after `within_s`."""
    deadline = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def instance_containers(platform: Platform) -> list[str]:
    from fnplat.config import Settings

    instance = Settings.from_env(data_dir=platform.data_dir).controller.instance_id
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=fnplat.instance={instance}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def test_sigterm_drains_invocations_in_flight_and_exits_within_the_bound(
    docker_images: None, tmp_path: Path
) -> None:
    budget = ShutdownBudget.of(SHUTDOWN_TIMEOUT)
    with running_platform(tmp_path, FNPLAT_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)) as plat:
        deployed(plat, "drain", timeout=120)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
        # Two finish within the drain; one would run far past the whole bound.
        short = [pool.submit(plat.invoke, "drain", {"sleep": 3, "n": n}) for n in range(2)]
        long = pool.submit(plat.invoke, "drain", {"sleep": 100})
        wait_for(lambda: sum(t["state"] == "busy" for t in tasks(plat)) == 3, 60, "three busy tasks")
        assert plat.process is not None

        started = time.monotonic()
        down = subprocess.Popen(
            [FNCTL, "down", "--data-dir", str(plat.data_dir)],
            env=plat.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: refuses_connections(plat.port), 5, "the gateway to stop accepting")
        for future in short:
            response = future.result(timeout=60)
            assert response.status_code == 200, response.text
            assert "X-Amz-Function-Error" not in response.headers
        cut = long.result(timeout=60)
        assert cut.status_code == 503, cut.text  # answered, not dropped, and not after 100 s
        assert cut.json()["message"] == "the platform is shutting down; retry shortly"
        assert int(cut.headers["Retry-After"]) > 0

        stdout, stderr = down.communicate(timeout=down_wait_s(SHUTDOWN_TIMEOUT) + 10)
        assert down.returncode == 0, stderr
        assert f"stopped fnplat (pid {plat.process.pid})" in stdout
        # `fnctl down` returned once the process was gone, within its wait.
        assert plat.process.wait(timeout=1) == 0
        assert time.monotonic() - started < down_wait_s(SHUTDOWN_TIMEOUT)
        assert budget.drain_s < SHUTDOWN_TIMEOUT
        assert not instance_containers(plat)  # every task was stopped and removed
        assert not (plat.data_dir / "fnplat.pid").exists()
        pool.shutdown()


def test_a_platform_killed_with_sigkill_starts_again_cleanly(docker_images: None, tmp_path: Path) -> None:
    with running_platform(tmp_path) as plat:
        deployed(plat, "survivor")
        assert plat.invoke("survivor", {"n": 1}).status_code == 200
        [orphan] = instance_containers(plat)

        # A second server on the same data dir refuses, and leaves the running one's tasks alone.
        second = subprocess.run(
            [FNCTL, "up", "--port", str(free_port()), "--data-dir", str(plat.data_dir)],
            env=plat.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        assert "another fnplat server" in second.stderr + second.stdout
        assert instance_containers(plat) == [orphan]
        served = plat.invoke("survivor", {"n": 2})
        assert served.status_code == 200 and [t["container_id"] for t in tasks(plat)] == [orphan]

        plat.stop(signal.SIGKILL)
        assert (plat.data_dir / "fnplat.pid").exists()  # stale now
        assert instance_containers(plat) == [orphan]  # its task outlived it

        # The stale pid may be another process's by now: `fnctl down` must not signal it.
        bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            (plat.data_dir / "fnplat.pid").write_text(f"{bystander.pid}\n")
            down = plat.fnctl("down", "--data-dir", str(plat.data_dir), check=False)
            assert down.returncode == 1 and "stale" in down.stderr
            assert bystander.poll() is None
        finally:
            bystander.kill()
            bystander.wait(timeout=10)

        plat.start()
        assert orphan not in instance_containers(plat)  # reaped by label at start
        assert plat.process is not None
        assert (plat.data_dir / "fnplat.pid").read_text() == f"{plat.process.pid}\n"
        with sqlite3.connect(plat.data_dir / "fnplat.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        response = plat.invoke("survivor", {"n": 3})
        assert response.status_code == 200, response.text
        [task] = tasks(plat)
        network = json.loads(
            subprocess.run(
                ["docker", "network", "inspect", plat.env["FNPLAT_TASK_NETWORK"]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0]
        # No endpoint leaked: the network holds exactly the one live task.
        assert list(network["Containers"]) == [task["container_id"]]
