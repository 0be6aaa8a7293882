"""Image functions are confined like tasks (ARCHITECTURE.md, Sandboxes): their build steps reach
no address of the host (its Docker bridge, a link-local stand-in on `lo`) and have a memory limit;
a Dockerfile cannot build on another function's image, even by its id; a declared VOLUME is a
tmpfs, not a host-backed volume, and no volume is left once the function's tasks are gone."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_platform import running_platform
from net_stand_ins import host_addresses, listeners

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKER0 = "172.17.0.1"  # where builds on Docker's default bridge reach the host
HOST_LINK_LOCAL = "169.254.171.252"
BUILD_MEMORY_MB = 2048  # FNPLAT_BUILD_MEMORY's default

PROBE = """\
import errno, json, socket, sys
found = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            found[target] = "connected"
    except OSError as exc:
        found[target] = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
for path in ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"):
    try:
        found["memory"] = open(path).read().strip()
        break
    except OSError:
        pass
print(json.dumps(found))
"""

APP = """\
import json

def handler(event, context):
    mounts = [line.split() for line in open("/proc/mounts")]
    return {
        "build": json.load(open("/var/task/build.json")),
        "data": next((fields[2] for fields in mounts if fields[1] == "/data"), None),
    }
"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def function_dir(root: Path, name: str, dockerfile: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "function.yaml").write_text(f"name: {name}\nruntime: image\nmemory: 128\ntimeout: 30\n")
    (directory / "Dockerfile").write_text(dockerfile)
    (directory / "probe.py").write_text(PROBE)
    (directory / "app.py").write_text(APP)
    return directory


def containers_of(function: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label=fnplat.function={function}").split()


@pytest.fixture
def function_images() -> Iterator[None]:
    yield
    for name in ("img-sandbox", "img-copycat"):
        ids = docker("images", "-q", "--filter", f"reference=fnplat-fn/{name}").split()
        if ids:
            subprocess.run(["docker", "rmi", "-f", *set(ids)], capture_output=True, check=False)


def test_image_builds_and_volumes_are_confined(
    docker_images: None, function_images: None, tmp_path: Path
) -> None:
    with (
        host_addresses([HOST_LINK_LOCAL]),
        listeners([DOCKER0, HOST_LINK_LOCAL]) as ports,
        running_platform(tmp_path / "data") as platform,
    ):
        targets = [f"{address}:{port}" for address, port in ports.items()]
        dockerfile = (
            "FROM fnplat/runtime-python3.11:latest\n"
            "COPY app.py probe.py /var/task/\n"
            f"RUN python3 /var/task/probe.py {' '.join(targets)} > /var/task/build.json\n"
            "VOLUME /data\n"
            'CMD ["app.handler"]\n'
        )
        platform.fnctl("deploy", str(function_dir(tmp_path, "img-sandbox", dockerfile)))
        response = platform.invoke("img-sandbox", {})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["build"] == {
            **{target: "EHOSTUNREACH" for target in targets},  # no address of the host
            "memory": str(BUILD_MEMORY_MB * 1024 * 1024),
        }
        assert result["data"] == "tmpfs"  # not a host-backed volume

        (container,) = containers_of("img-sandbox")
        (inspected,) = json.loads(docker("inspect", container))
        assert [m for m in inspected["Mounts"] if m["Type"] == "volume"] == []

        # Another function cannot build on it, by its id (its name is refused by name).
        copycat = function_dir(tmp_path, "img-copycat", f"FROM {inspected['Image']}\n")
        refused = platform.fnctl("deploy", str(copycat), check=False)
        assert refused.returncode != 0
        assert "Dockerfile line 1: FROM sha256:" in refused.stdout + refused.stderr

        platform.fnctl("rm", "img-sandbox")
        wait_until_gone("img-sandbox")


def wait_until_gone(function: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while containers_of(function):
        assert time.monotonic() < deadline, f"the tasks of {function} were not removed"
        time.sleep(0.2)  # polling Docker: nothing signals a removed container to the test
