"""What a task's CPU limit costs a cold start and a busy warm task: `python -m bench.cpu_limits`.

Wall-clock figures on a shared 2-core machine swing with everyone else's load, so next to them
this reports what the kernel counts in the task's cgroup, which the load does not change: CPU time
its init used, time it spent throttled by its quota during init, and under wrk at c=1 on its route
the CPU per request and the share of CFS periods in which it ran out of quota.

One fresh platform per configuration (settings through FNPLAT_* variables), a 128 MB no-op
Python function (Lambda would give it 0.072 vCPU). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.baselines import free_port
from bench.cold import init_duration_ms
from bench.docker_cli import docker, free_subnet, remove_labelled
from bench.target import TASK_SUBNETS, Platform, PlatformError
from bench.wrk import run_wrk

FUNCTION = "cpu-bench"
CGROUP = Path("/sys/fs/cgroup")
CONFIGS: dict[str, dict[str, str]] = {
    # 2 vCPUs is every core of this machine: no limit in effect.
    "unlimited": {"FNPLAT_TASK_MIN_CPUS": "2"},
    "lambda ratio (0.072) from start": {
        "FNPLAT_TASK_MIN_CPUS": "0",
        "FNPLAT_TASK_CPU_LIMIT_AFTER_INIT": "false",
    },
    "lambda ratio (0.072) after init": {"FNPLAT_TASK_MIN_CPUS": "0"},
    "floor 0.25 after init": {"FNPLAT_TASK_MIN_CPUS": "0.25"},
}


@dataclass(frozen=True, slots=True)
class CpuStat:
    usage_ms: float
    periods: int
    throttled: int
    throttled_ms: float
    quota: str  # "quota/period" in microseconds as the kernel has it, "max" when unlimited

    def minus(self, earlier: CpuStat) -> CpuStat:
        return CpuStat(
            self.usage_ms - earlier.usage_ms,
            self.periods - earlier.periods,
            self.throttled - earlier.throttled,
            self.throttled_ms - earlier.throttled_ms,
            self.quota,
        )


def cpu_stat(container_id: str) -> CpuStat:
    """The container's CPU accounting, cgroup v1 (cgroupfs or systemd) or v2."""
    for v1 in (
        CGROUP / "cpu" / "docker" / container_id,
        CGROUP / "cpu" / "system.slice" / f"docker-{container_id}.scope",
    ):
        if v1.is_dir():
            stat = _keyed(v1 / "cpu.stat")
            # cpuacct is its own hierarchy unless mounted together with cpu ("cpu,cpuacct").
            own = CGROUP / "cpuacct" / v1.relative_to(CGROUP / "cpu")
            accounting = [v1 / "cpuacct.usage", own / "cpuacct.usage"]
            usage = int(next(p for p in accounting if p.exists()).read_text())
            quota_us, period_us = (_text(v1 / name) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
            quota = f"{quota_us}/{period_us}"
            return CpuStat(
                usage / 1e6, stat["nr_periods"], stat["nr_throttled"], stat["throttled_time"] / 1e6, quota
            )
    for v2 in (CGROUP / "docker" / container_id, CGROUP / "system.slice" / f"docker-{container_id}.scope"):
        if v2.is_dir():
            stat = _keyed(v2 / "cpu.stat")
            quota = (v2 / "cpu.max").read_text().strip().replace(" ", "/")
            return CpuStat(
                stat["usage_usec"] / 1e3,
                stat["nr_periods"],
                stat["nr_throttled"],
                stat["throttled_usec"] / 1e3,
                quota,
            )
    raise PlatformError(f"no CPU cgroup found for container {container_id[:12]}")


def _text(path: Path) -> str:
    return path.read_text().strip()


def _keyed(path: Path) -> dict[str, int]:
    return {key: int(value) for key, value in (line.split() for line in path.read_text().splitlines())}


@contextlib.contextmanager
def platform_with(env: Mapping[str, str]) -> Iterator[Platform]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    data_dir = Path(tempfile.mkdtemp(prefix="fnplat-cpu-bench-"))
    network = f"fnplat-bench-{uuid.uuid4().hex[:8]}"
    platform = Platform(data_dir / "data", free_port(), network, free_subnet(TASK_SUBNETS))
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        remove_labelled("fnplat.instance", platform.instance_id)
        docker("network", "rm", network, check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure(name: str, env: Mapping[str, str], cold_starts: int, seconds: float) -> dict[str, str]:
    with platform_with(env) as platform:
        invoke_url = f"{platform.url}/2015-03-31/functions/{FUNCTION}/invocations"
        walls, inits, init_cpu, init_throttled = [], [], [], []
        container = ""
        for _ in range(cold_starts):
            platform.deploy("noop-python", FUNCTION)  # a new version: the old one's tasks go
            platform.wait_tasks(FUNCTION, 0)
            start = time.perf_counter()
            response = requests.post(invoke_url, data=b"{}", headers=platform.headers, timeout=120)
            walls.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise PlatformError(f"cold invoke failed: {response.status_code} {response.text}")
            (task,) = platform.tasks(FUNCTION)
            container = str(task["container_id"])
            stat = cpu_stat(container)
            init_cpu.append(stat.usage_ms)
            init_throttled.append(stat.throttled_ms)
            for _ in range(20):  # the REPORT line is written just after the response
                found = init_duration_ms(
                    platform.logs(FUNCTION, response.headers.get("x-amzn-RequestId", ""))
                )
                if found is not None:
                    inits.append(found)
                    break
                time.sleep(0.1)  # polling the platform's log API; there is no event to wait on
        before = cpu_stat(container)
        run = run_wrk(f"{platform.url}/{FUNCTION}", 1, seconds, platform.headers)
        warm = cpu_stat(container).minus(before)
    return {
        "configuration": name,
        "quota/period (us)": warm.quota,
        "cold wall p50": f"{statistics.median(walls):.0f} ms",
        "init duration p50": f"{statistics.median(inits):.0f} ms" if inits else "-",
        "init CPU p50": f"{statistics.median(init_cpu):.0f} ms",
        "throttled in init p50": f"{statistics.median(init_throttled):.0f} ms",
        "warm c=1 req/s": f"{run.rps:.0f}",
        "warm p50 / p99": f"{run.p50_ms:.2f} / {run.p99_ms:.1f} ms",
        "CPU per request": f"{warm.usage_ms * 1000 / max(1, run.requests):.0f} us",
        "periods throttled": f"{warm.throttled}/{warm.periods}",
        "throttled": f"{warm.throttled_ms:.0f} ms in {run.duration_s:.0f} s",
    }


def table(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row[h] for h in headers) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_limits", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    parser.add_argument("--cold", type=int, default=5, help="cold starts per configuration")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration of the warm load")
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] or list(CONFIGS)
    rows = [measure(name, CONFIGS[name], args.cold, args.seconds) for name in chosen]
    print(table(rows))
    print(f"\ncommand: python -m bench.cpu_limits {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
