"""The platform's own image (Dockerfile at the root), built by scripts/build-platform-image.sh.

Needs a running Docker engine; fails (never skips) without one, because the build script fails.
"""

from __future__ import annotations

import hashlib
import json
import queue
import socket
import stat
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_subnets import E2E_SUBNETS, free_subnets

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "scripts" / "build-platform-image.sh"
IMAGE = "fnplat/platform:latest"
DOCKER_SOCKET = Path("/var/run/docker.sock")
# The platform started by the last test gets its own task network, so it never meets the one of a
# platform that is running on this host for real (fnplat-tasks on 172.31.252.0/22).
TEST_TASK_NETWORK = f"fnplat-test-platform-image-{uuid.uuid4().hex[:8]}"
TEST_CONTAINER = "fnplat-test-platform-image"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        command = " ".join(args)
        pytest.fail(f"docker {command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_in_image(*args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` of the image as built: its default user, its entrypoint unless given."""
    options = ["--entrypoint", entrypoint] if entrypoint else []
    return docker("run", "--rm", *options, IMAGE, *args, check=False)


def build_image() -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def platform_image() -> dict[str, Any]:
    """Build the image (or confirm it is up to date) and return its `docker image inspect` record."""
    result = build_image()
    if result.returncode != 0:
        pytest.fail(f"{BUILD_SCRIPT.name} failed:\n{result.stdout}\n{result.stderr}")
    record: dict[str, Any] = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    return record


# ------------------------------------------------------------------------------- the build


def test_build_is_skipped_when_inputs_are_unchanged(platform_image: dict[str, Any]) -> None:
    again = build_image()

    assert again.returncode == 0, again.stderr
    assert f"{IMAGE} up to date" in again.stderr
    assert json.loads(docker("image", "inspect", IMAGE).stdout)[0]["Id"] == platform_image["Id"]


def test_image_declares_how_it_runs(platform_image: dict[str, Any]) -> None:
    config = platform_image["Config"]

    assert config["Entrypoint"] == ["fnctl"]
    assert config["Cmd"] == ["up"]  # loopback (FNPLAT_HOST's default) unless told otherwise
    assert not any(env.startswith("FNPLAT_HOST=") for env in config["Env"])
    assert "8080/tcp" in config["ExposedPorts"]
    assert "/var/lib/fnplat" in config["Volumes"]
    assert "FNPLAT_DATA_DIR=/var/lib/fnplat" in config["Env"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Labels"]["org.opencontainers.image.title"] == "fnplat"
    assert len(config["Labels"]["fnplat.inputs-sha256"]) == 64


# ------------------------------------------------------------------------------- the contents


def test_runs_as_a_non_root_user_by_default(platform_image: dict[str, Any]) -> None:
    assert platform_image["Config"]["User"] not in ("", "root", "0")

    uid = run_in_image("-u", entrypoint="id")

    assert uid.returncode == 0, uid.stderr
    assert uid.stdout.strip() not in ("", "0")


def test_fnctl_help_and_up_help_run(platform_image: dict[str, Any]) -> None:
    top = run_in_image("--help")
    up = run_in_image("up", "--help")

    assert top.returncode == 0, top.stderr
    assert "deploy" in top.stdout and "up" in top.stdout
    assert up.returncode == 0, up.stderr
    assert "--host" in up.stdout and "--port" in up.stdout


def test_platform_name_is_the_stdlib_module_and_fnplat_is_installed(platform_image: dict[str, Any]) -> None:
    script = (
        "import json, platform, fnplat, fnplat.server;"
        "print(json.dumps([platform.__file__, platform.system(), fnplat.__file__]))"
    )
    result = run_in_image("-c", script, entrypoint="python")

    assert result.returncode == 0, result.stderr
    platform_file, system, fnplat_file = json.loads(result.stdout)
    assert platform_file.startswith("/usr/lib/python3.11/")
    assert system == "Linux"
    assert fnplat_file.startswith("/opt/fnplat/lib/python3.11/site-packages/fnplat/")


def test_image_has_no_build_leftovers(platform_image: dict[str, Any]) -> None:
    # Walks the image's own filesystem (not /proc, /sys, /dev) for what must never be shipped:
    # virtualenvs of the repo, wheels, tests, repository metadata, pip itself.
    script = r"""
import json, os
found = []
for root, dirs, files in os.walk("/"):
    if root in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in dirs:
        if name in (".venv", ".git", "wheels", "platform-wheels", "fnplat.egg-info", ".pytest_cache"):
            found.append(os.path.join(root, name))
    for name in files:
        if name.endswith(".whl") or name in ("pyproject.toml", "conftest.py", "admin-key"):
            found.append(os.path.join(root, name))
site = "/opt/fnplat/lib/python3.11/site-packages"
found += [os.path.join(site, n) for n in os.listdir(site) if n in ("tests", "pip", "setuptools")]
print(json.dumps(found))
"""
    result = run_in_image("-c", script, entrypoint="python")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# ------------------------------------------------------------------------------- it runs


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def remove_test_platform() -> None:
    """Our container, tasks the platform may have left on our task network, then the network."""
    docker("rm", "-f", TEST_CONTAINER, check=False)
    leftover = docker("ps", "-aq", "--filter", f"network={TEST_TASK_NETWORK}", check=False).stdout.split()
    if leftover:
        docker("rm", "-f", *leftover, check=False)
    docker("network", "rm", TEST_TASK_NETWORK, check=False)


class OutputLines:
    """The attached container's output, line by line, so a test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._ended = False
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self._lines.put(line)
            self._lines.put(None)  # end of output: the container exited

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {needle!r} within {timeout} s; output:\n{self.text()}") from None
            if line is None:
                self._ended = True
                raise AssertionError(f"the container exited before {needle!r}; output:\n{self.text()}")
            self.seen.append(line)
            if needle in line:
                return line

    def drain(self) -> str:
        """All output up to the container's exit (call it once the process has exited)."""
        while not self._ended:
            line = self._lines.get(timeout=30)
            if line is None:
                self._ended = True
            else:
                self.seen.append(line)
        return self.text()

    def text(self) -> str:
        return "".join(self.seen)


def firewall_rules(data_dir: Path) -> list[str]:
    """The iptables lines of the platform's own chains (named after its instance id)."""
    instance_id = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    saved = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True)
    return [line for line in saved.stdout.splitlines() if "FNPLAT-" in line and instance_id in line]


@pytest.fixture
def test_platform() -> Iterator[None]:
    remove_test_platform()  # what a crashed earlier run may have left
    yield
    remove_test_platform()


def test_platform_starts_with_the_docker_socket_and_host_network(
    platform_image: dict[str, Any], test_platform: None, tmp_path: Path
) -> None:
    assert stat.S_ISSOCK(DOCKER_SOCKET.stat().st_mode), f"{DOCKER_SOCKET} is not a socket"
    # The data dir has the same path on the host and in the container (tasks bind-mount code from
    # it); the image's non-root user must be able to write it.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    port = free_loopback_port()
    (subnet,) = free_subnets(E2E_SUBNETS)
    # NET_ADMIN: the controller installs its task firewall in the host's network namespace.
    command = ["docker", "run", "--name", TEST_CONTAINER, "--network", "host", "--cap-add", "NET_ADMIN"]
    command += ["-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}", "--group-add", str(DOCKER_SOCKET.stat().st_gid)]
    command += ["-v", f"{data_dir}:{data_dir}", "-e", f"FNPLAT_DATA_DIR={data_dir}"]
    command += ["-e", f"FNPLAT_TASK_NETWORK={TEST_TASK_NETWORK}"]
    command += ["-e", f"FNPLAT_TASK_SUBNET={subnet}", "-e", "FNPLAT_RUNTIME_API_PORT=0"]
    command += ["-e", f"FNPLAT_PORT={port}", IMAGE]  # the image's own command: no --host
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = OutputLines(process)
    try:
        output.wait_for("fnplat is up at", timeout=90)
        # Its task firewall, installed by the non-root process through iptables' file capability.
        assert firewall_rules(data_dir), output.text()

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {"status": "ok"}
        # The image's own HEALTHCHECK command finds the gateway through the endpoint file.
        healthcheck = platform_image["Config"]["Healthcheck"]["Test"]
        assert healthcheck[0] == "CMD"
        assert docker("exec", TEST_CONTAINER, *healthcheck[1:], check=False).returncode == 0
        network = json.loads(docker("network", "inspect", TEST_TASK_NETWORK).stdout)[0]
        assert network["IPAM"]["Config"][0]["Subnet"] == subnet
        # By default it listens on loopback only, and nowhere else on the host.
        assert (data_dir / "endpoint").read_text().strip() == f"http://127.0.0.1:{port}"
        listening = docker("exec", TEST_CONTAINER, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        bound = {line.split()[1] for line in listening.splitlines()[1:] if line.split()[3:4] == ["0A"]}
        ours = {address for address in bound if address.endswith(f":{port:04X}")}
        assert ours == {f"0100007F:{port:04X}"}, ours

        # As PID 1 it still handles SIGTERM: it shuts down cleanly instead of being killed.
        docker("stop", "--time", "30", TEST_CONTAINER, timeout=60)
        assert process.wait(timeout=30) == 0, output.drain()
        assert "fnplat stopped" in output.drain()
        assert firewall_rules(data_dir) == []  # removed at shutdown
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
