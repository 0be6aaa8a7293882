"""A cluster on this one machine for tests: gateways and controllers as separate processes on one
Postgres database of their own, sharing the Docker engine (each controller its own data dir, task
network, subnet, Runtime API port, node port and instance label).

`Cluster` starts and stops `fnctl server ...` processes; everything it starts is stopped and its
networks removed on close.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from docker_subnets import E2E_SUBNETS, free_subnets, release_subnets

from fnplat.security import generate_api_key

FNCTL = str(Path(sys.executable).parent / "fnctl")
START_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Role:
    name: str
    process: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)
    network: str | None = None
    subnet: str | None = None

    def text(self) -> str:
        return "".join(self.output)

    def signal(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def cluster_database(postgres_url: str) -> Iterator[str]:
    """A database of the test's own in the session's Postgres, dropped afterwards."""
    name = f"cluster_{uuid.uuid4().hex[:10]}"
    postgres_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    def __init__(self, tmp: Path, database_url: str, **env: str) -> None:
        self.tmp = tmp
        self.admin_key, _ = generate_api_key("admin", "admin", datetime.now(UTC))
        self.secret = "cluster-secret-" + uuid.uuid4().hex
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FNPLAT_", "FNCTL_"))} | {
            "FNPLAT_DATABASE_URL": database_url,
            "FNPLAT_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "FNPLAT_CLUSTER_SECRET": self.secret,
            "FNPLAT_HEARTBEAT_INTERVAL": "0.5",
            "FNPLAT_SCHEMA_WAIT": "60",
            **env,
        }
        self.roles: list[Role] = []

    # ---- roles ---------------------------------------------------------------------------------
    def migrate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FNCTL, "server", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def controller(self, node_id: str, **env: str) -> Role:
        try:
            (subnet,) = free_subnets(E2E_SUBNETS)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        port = free_port()
        network = f"fnplat-cl-{uuid.uuid4().hex[:8]}"
        role_env = {
            "FNPLAT_DATA_DIR": str(self.tmp / node_id),
            "FNPLAT_NODE_ID": node_id,
            "FNPLAT_NODE_ADDRESS": "127.0.0.1",
            "FNPLAT_NODE_HOST": "127.0.0.1",
            "FNPLAT_NODE_PORT": str(port),
            "FNPLAT_TASK_NETWORK": network,
            "FNPLAT_TASK_SUBNET": subnet,
            "FNPLAT_RUNTIME_API_PORT": "0",
            **env,
        }
        role = self._start(node_id, "controller", role_env, f"http://127.0.0.1:{port}")
        role.network, role.subnet = network, subnet
        return role

    def gateway(self, name: str, **env: str) -> Role:
        port = free_port()
        role_env = {
            "FNPLAT_DATA_DIR": str(self.tmp / name),
            "FNPLAT_PORT": str(port),
            "FNPLAT_ADMIN_KEY": self.admin_key,
            **env,
        }
        return self._start(name, "gateway", role_env, f"http://127.0.0.1:{port}")

    def _start(self, name: str, role: str, env: dict[str, str], url: str) -> Role:
        process = subprocess.Popen(
            [FNCTL, "server", role],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started = Role(name, process, url)
        self.roles.append(started)
        ready = threading.Event()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                started.output.append(line)
                if f"fnplat {role} is up at" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(START_S)
        if process.poll() is not None or f"fnplat {role} is up at" not in started.text():
            raise AssertionError(f"fnctl server {role} ({name}) did not start:\n{started.text()}")
        return started

    # ---- clients --------------------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    def fnctl(self, gateway: Role, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "FNCTL_ENDPOINT": gateway.url, "FNCTL_API_KEY": self.admin_key}
        done = subprocess.run(
            [FNCTL, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"fnctl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def invoke(self, gateway: Role, name: str, payload: object, **kwargs: object) -> requests.Response:
        return requests.post(
            f"{gateway.url}/2015-03-31/functions/{name}/invocations",
            json=payload,
            headers=self.headers(),
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )

    def wait_until(self, condition: object, within_s: float = 30.0, what: str = "condition") -> None:
        """Poll another process's state (there is no event to wait on) with a deadline."""
        deadline = time.monotonic() + within_s
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    # ---- the end ------------------------------------------------------------------------------
    def close(self) -> None:
        for role in reversed(self.roles):
            role.signal(signal.SIGTERM)
        for role in reversed(self.roles):
            try:
                role.wait(90)
            except subprocess.TimeoutExpired:
                role.process.kill()
                role.wait(30)
            if role.network:
                subprocess.run(["docker", "network", "rm", role.network], capture_output=True, check=False)
            if role.subnet:
                release_subnets(role.subnet)


@contextlib.contextmanager
def running_cluster(tmp: Path, database_url: str, **env: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp, database_url, **env)
    try:
        migrated = cluster.migrate()
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        yield cluster
    finally:
        cluster.close()
