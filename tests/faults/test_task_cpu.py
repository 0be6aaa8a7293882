"""A task's CPU is limited in proportion to its memory (ARCHITECTURE.md, Sandboxes): busy-loop
tasks carry their CFS quota in their cgroup and use no more than their share of the CPU, while
another function keeps answering.

The bound is the kernel's accounting (CPU time used against wall time at the quota), not a
latency: with a quota of q per period p, a cgroup runs at most q/p of the time, plus one period's
quota at the edges of the measurement."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform, running_platform

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CGROUP = Path("/sys/fs/cgroup")
BUSY_TASKS = 4
SPIN_S = 4.0
CPUS = 0.25  # a 128 MB function: the default floor (FNPLAT_TASK_MIN_CPUS)
PERIOD_US = 20_000

BUSY = """\
import time

def handler(event, context):
    end, loops = time.monotonic() + event["seconds"], 0
    while time.monotonic() < end:
        loops += 1
    return loops
"""
NOOP = "def handler(event, context):\n    return 'ok'\n"


@dataclass(frozen=True)
class CpuStat:
    quota_us: int
    period_us: int
    usage_ns: int
    throttled: int


def cpu_stat(container_id: str) -> CpuStat:
    """The container's CFS quota and CPU accounting (cgroup v1, as this machine; v2 otherwise)."""
    cpu, cpuacct = CGROUP / "cpu" / "docker" / container_id, CGROUP / "cpuacct" / "docker" / container_id
    if cpu.is_dir():
        stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        usage = cpu / "cpuacct.usage" if (cpu / "cpuacct.usage").exists() else cpuacct / "cpuacct.usage"
        return CpuStat(
            int((cpu / "cpu.cfs_quota_us").read_text()),
            int((cpu / "cpu.cfs_period_us").read_text()),
            int(usage.read_text()),
            int(stat["nr_throttled"]),
        )
    v2 = CGROUP / "docker" / container_id
    stat = dict(line.split() for line in (v2 / "cpu.stat").read_text().splitlines())
    quota, period = (v2 / "cpu.max").read_text().split()
    usage_ns = int(stat["usage_usec"]) * 1000
    return CpuStat(-1 if quota == "max" else int(quota), int(period), usage_ns, int(stat["nr_throttled"]))


def deploy(platform: Platform, root: Path, name: str, code: str) -> None:
    directory = root / name
    directory.mkdir()
    (directory / "function.yaml").write_text(
        f"name: {name}\nruntime: python3.11\nhandler: app.handler\nmemory: 128\ntimeout: 60\n"
    )
    (directory / "app.py").write_text(code)
    platform.fnctl("deploy", str(directory))


def busy_containers(platform: Platform) -> list[str]:
    tasks = requests.get(f"{platform.url}/v1/tasks", headers=platform.headers(), timeout=30).json()["tasks"]
    return [t["container_id"] for t in tasks if t["function"] == "cpu-busy" and t["state"] == "busy"]


def poll(condition: str, check: Callable[[], bool], within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, f"{condition} did not happen within {within_s} s"
        time.sleep(0.05)  # polling the platform and the kernel: nothing signals these to the test


def test_busy_tasks_stay_within_their_cpu_share_while_others_answer(
    docker_images: None, tmp_path: Path
) -> None:
    with running_platform(tmp_path / "data") as platform:
        deploy(platform, tmp_path, "cpu-busy", BUSY)
        deploy(platform, tmp_path, "cpu-noop", NOOP)
        assert platform.invoke("cpu-noop", {}).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(BUSY_TASKS) as pool:
            spins = [pool.submit(platform.invoke, "cpu-busy", {"seconds": SPIN_S}) for _ in range(BUSY_TASKS)]
            poll("every busy task running", lambda: len(busy_containers(platform)) == BUSY_TASKS)
            containers = busy_containers(platform)
            poll("the CPU limits applied", lambda: all(cpu_stat(c).quota_us > 0 for c in containers))
            started = time.monotonic()
            before = {c: cpu_stat(c) for c in containers}

            answers = [platform.invoke("cpu-noop", {}) for _ in range(10)]

            for spin in spins:
                assert spin.result().status_code == 200
            after = {c: cpu_stat(c) for c in containers}
            elapsed_ns = (time.monotonic() - started) * 1e9

    assert [answer.status_code for answer in answers] == [200] * 10  # the platform kept answering
    for container in containers:
        assert (after[container].quota_us, after[container].period_us) == (int(CPUS * PERIOD_US), PERIOD_US)
        used_ns = after[container].usage_ns - before[container].usage_ns
        # At most its share of the wall time, plus one period's quota at each edge.
        assert used_ns <= CPUS * elapsed_ns + 2 * CPUS * PERIOD_US * 1000, (used_ns, elapsed_ns)
        assert after[container].throttled > before[container].throttled  # it wanted more
