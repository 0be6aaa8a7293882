"""A real one-host platform (`fnctl up` in a temporary data dir) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from docker_subnets import E2E_SUBNETS, free_subnets, release_subnets

FNCTL = str(Path(sys.executable).parent / "fnctl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Platform:
    data_dir: Path
    port: int
    env: dict[str, str]
    subnet: str  # of its task network
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    open_files: int | None = None  # soft RLIMIT_NOFILE the process starts with (None: ours)

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("FNPLAT_TLS_CERT") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _start_limits(self) -> None:
        """In the child before exec: the open-files soft limit many services start with."""
        if self.open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, hard))

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin-key").read_text().strip()

    def start(self) -> None:
        self.output = []
        self.process = subprocess.Popen(
            [FNCTL, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=self._start_limits if self.open_files is not None else None,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if "fnplat is up at" in line:
                    ready.set()
            ready.set()  # the process ended: let start() report it

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(timeout=120)
        if self.process.poll() is not None or not any("fnplat is up at" in line for line in self.output):
            raise AssertionError("fnctl up did not start:\n" + "".join(self.output))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)

    def fnctl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FNCTL, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"fnctl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    def invoke(self, name: str, payload: object, **kwargs: object) -> requests.Response:
        return requests.post(
            f"{self.url}/2015-03-31/functions/{name}/invocations",
            json=payload,
            headers=self.headers(),
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )


def _remove_test_resources(instance_network: str) -> None:
    subprocess.run(["docker", "network", "rm", instance_network], capture_output=True, check=False)


@contextlib.contextmanager
def running_platform(data_dir: Path, open_files: int | None = None, **extra_env: str) -> Iterator[Platform]:
    """`fnctl up` on its own data dir, task network and a free subnet; stopped and cleaned up
    afterwards. `open_files`: the soft open-files limit it starts with (default: inherited)."""
    network = f"fnplat-e2e-{uuid.uuid4().hex[:8]}"
    try:
        (subnet,) = free_subnets(E2E_SUBNETS)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FNCTL_ENDPOINT", "FNCTL_API_KEY", "FNPLAT_DATABASE_URL")
    }
    env.update(
        FNPLAT_DATA_DIR=str(data_dir),
        FNPLAT_TASK_NETWORK=network,
        FNPLAT_TASK_SUBNET=subnet,
        FNPLAT_RUNTIME_API_PORT="0",
        **extra_env,
    )
    plat = Platform(data_dir=data_dir, port=free_port(), env=env, subnet=subnet, open_files=open_files)
    try:
        plat.start()
        yield plat
    finally:
        plat.stop()
        _remove_test_resources(network)
        release_subnets(subnet)


@pytest.fixture(scope="session")
def platform(docker_images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("fnplat-data"), FNPLAT_CONCURRENCY="4", FNPLAT_QUEUE_TIMEOUT="0.5"
    ) as plat:
        yield plat
