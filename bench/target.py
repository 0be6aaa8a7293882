"""The platform under test: a fresh `fnctl up` in a temporary data dir, and the calls the bench makes.

Its own task network, subnet and ports (like tests/e2e); stopped, its tasks and network removed
at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.baselines import free_port
from bench.docker_cli import docker, free_subnet, remove_labelled

FNCTL = str(Path(sys.executable).parent / "fnctl")
FUNCTIONS_DIR = Path(__file__).parent / "functions"
# The bench's task network takes the first of these that no Docker network overlaps.
TASK_SUBNETS = tuple(str(n) for n in ipaddress.ip_network("172.31.192.0/19").subnets(new_prefix=22))
START_TIMEOUT_S = 120.0


class PlatformError(RuntimeError):
    pass


@dataclass
class Platform:
    data_dir: Path
    port: int
    network: str
    subnet: str
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise PlatformError("the platform is not running")
        return self.process.pid

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("FNCTL_ENDPOINT", "FNCTL_API_KEY")}
        return env | {
            "FNPLAT_DATA_DIR": str(self.data_dir),
            "FNPLAT_TASK_NETWORK": self.network,
            "FNPLAT_TASK_SUBNET": self.subnet,
            "FNPLAT_RUNTIME_API_PORT": "0",
            "FNPLAT_CONCURRENCY": "256",
            "FNPLAT_QUEUE_TIMEOUT": "10",
            "FNPLAT_TASK_MEMORY_CAPACITY": "65536",  # room for 200+ idle 128 MB tasks
        }

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin-key").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    @property
    def instance_id(self) -> str:
        """The label value the controller gives its tasks (fnplat.config: hash of the data dir)."""
        return hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [FNCTL, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
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
        ready.wait(timeout=START_TIMEOUT_S)
        if self.process.poll() is not None or not any("fnplat is up at" in x for x in self.output):
            raise PlatformError("fnctl up did not start:\n" + "".join(self.output[-40:]))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- calls ----------------------------------------------------------------------------------------
    def deploy(self, function_dir: str, name: str | None = None) -> dict[str, Any]:
        """Deploy bench/functions/<function_dir> (optionally under another name) over the API."""
        response = self.http.post(
            f"{self.url}/v1/functions",
            data=function_zip(FUNCTIONS_DIR / function_dir, name),
            headers={**self.headers, "Content-Type": "application/zip"},
            timeout=120,
        )
        if response.status_code != 201:
            raise PlatformError(f"deploy of {function_dir} failed: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def delete(self, name: str) -> None:
        self.http.delete(f"{self.url}/v1/functions/{name}", headers=self.headers, timeout=60)

    def tasks(self, function: str | None = None) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/v1/tasks", headers=self.headers, timeout=30)
        response.raise_for_status()
        tasks: list[dict[str, Any]] = response.json()["tasks"]
        return [t for t in tasks if function is None or t["function"] == function]

    def wait_tasks(self, function: str | None, at_most: int, timeout_s: float = 180.0) -> None:
        """Poll until the function (None = all) has at most `at_most` live tasks."""
        deadline = time.monotonic() + timeout_s
        while len(self.tasks(function)) > at_most:
            if time.monotonic() > deadline:
                raise PlatformError(f"tasks of {function or 'all functions'} did not drain to {at_most}")
            time.sleep(0.2)  # polling the platform's task list; there is no event to wait on

    def logs(self, name: str, request_id: str) -> list[str]:
        response = self.http.get(
            f"{self.url}/v1/functions/{name}/logs",
            params={"request_id": request_id},
            headers=self.headers,
            timeout=30,
        )
        response.raise_for_status()
        return [str(e["message"]) for e in response.json()["events"]]

    def rss_mb(self) -> float:
        """Resident memory of the platform process (gateway + controller), from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise PlatformError("no VmRSS in /proc status")

    def fnctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [FNCTL, "--data-dir", str(self.data_dir), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise PlatformError(f"fnctl {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
        return done


def function_zip(directory: Path, name: str | None = None) -> bytes:
    """The function's files zipped at the root; `name` replaces the name in function.yaml."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            data = path.read_bytes()
            if path.name == "function.yaml" and name is not None:
                data = renamed_spec(data.decode(), name).encode()
            archive.writestr(path.name, data)
    return buffer.getvalue()


def renamed_spec(spec: str, name: str) -> str:
    """function.yaml with every mention of its name (the name and its routes) replaced by `name`."""
    for line in spec.splitlines():
        if line.startswith("name:"):
            return spec.replace(line.split(":", 1)[1].strip(), name)
    raise PlatformError("function.yaml has no name line")


@contextlib.contextmanager
def running_platform(run_id: str) -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="fnplat-bench-") as tmp:
        platform = Platform(
            data_dir=Path(tmp).resolve() / "data",
            port=free_port(),
            network=f"fnplat-bench-{run_id}",
            subnet=free_subnet(TASK_SUBNETS),
        )
        try:
            platform.start()
            yield platform
        finally:
            platform.stop()
            remove_labelled("fnplat.instance", platform.instance_id)  # tasks a crashed platform left
            docker("network", "rm", platform.network, check=False)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]
