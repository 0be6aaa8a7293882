"""The baselines measured in the same run: the floor (a minimal responder in a container, called on
its bridge address), one bare aiohttp hop in front of it, and the container start floor."""

from __future__ import annotations

import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from bench.docker_cli import BENCH_LABEL, build_if_changed, container_ip, docker

RUNTIME_IMAGE = "fnplat/runtime-python3.11:latest"
RESPONDER_IMAGE = "fnplat-bench/responder:latest"
RESPONDER_CONTEXT = Path(__file__).parent / "images" / "responder"
RESPONDER_PORT = 8080


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Poll until `url` answers at all (any status)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.05)  # polling a server we started; nothing to wait on instead


@contextlib.contextmanager
def responder(run_id: str) -> Iterator[str]:
    """The floor responder on the default bridge; yields its URL on the bridge address."""
    build_if_changed(RESPONDER_CONTEXT, RESPONDER_IMAGE, RUNTIME_IMAGE)
    name = f"fnplat-bench-responder-{run_id}"
    docker("run", "-d", "--rm", "--name", name, "--label", f"{BENCH_LABEL}={run_id}", RESPONDER_IMAGE)
    try:
        url = f"http://{container_ip(name)}:{RESPONDER_PORT}"
        wait_http(url + "/")
        yield url
    finally:
        docker("rm", "-f", name, check=False)


@contextlib.contextmanager
def aiohttp_hop(upstream: str) -> Iterator[str]:
    """The bare aiohttp hop as a child process on 127.0.0.1; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.hop", str(port), upstream],
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def container_start_floor_ms(samples: int) -> list[float]:
    """Wall times of `docker run --rm <runtime image> true`, in ms.

    The entrypoint is overridden with `true`: the image's entrypoint is the Lambda bootstrap, which
    would wait for a Runtime API; the floor is creating, starting and removing the container.
    """
    docker("run", "--rm", "--entrypoint", "true", RUNTIME_IMAGE)  # warm the image's layers once
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        docker("run", "--rm", "--entrypoint", "true", RUNTIME_IMAGE)
        times.append((time.perf_counter() - start) * 1000)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
