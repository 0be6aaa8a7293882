"""A function's output cannot exhaust the platform: a 200 MB line without a newline, a `\\r`
progress bar and a flood of short lines, against a real `fnctl up` and Docker.

Each test resets the platform process's peak RSS (/proc/<pid>/clear_refs) and checks how far it
rose while the function wrote; lines are cut with the marker, drops are counted in a notice
that `fnctl logs` shows and in /metrics, and another function keeps answering meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_platform import FNCTL, Platform, running_platform

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RSS_GROWTH_BOUND_KB = 64 * 1024  # the outbox (16 MiB at most), log rows, allocator slack
MARKER = "... [fnplat: line truncated at 262144 bytes]"

NOISY = """
import sys


def handler(event, context):
    out = sys.stdout
    mode = event["mode"]
    if mode == "long-line":  # 200 MB, no newline at all
        chunk = "x" * (1 << 20)
        for _ in range(200):
            out.write(chunk)
    elif mode == "progress":  # a bar redrawn with \\r, 4 MB of it, then one newline
        out.write("".join(f"\\rprogress {i:06d}/200000" for i in range(200_000)) + "\\n")
    elif mode == "flood":  # short lines, as fast as the container can write them
        block = "".join(f"flood line {i}\\n" for i in range(10_000))
        for _ in range(event["blocks"]):
            out.write(block)
    return {"done": mode}
"""


def write_function(root: Path, name: str, code: str, timeout: int) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "app.py").write_text(textwrap.dedent(code))
    (directory / "function.yaml").write_text(
        f"name: {name}\nruntime: python3.11\nhandler: app.handler\ntimeout: {timeout}\nmemory: 256\n"
    )
    return directory


# One function per abuse: Docker keeps a line that never got its newline open in the container's
# log (later output continues it), so each gets a container of its own.
NOISY_FUNCTIONS = ("long-line", "progress", "flood")


@pytest.fixture(scope="module")
def output_platform(docker_images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    functions = tmp_path_factory.mktemp("functions")
    # A small line budget: Docker's log follow delivers only part of a flood (its 1 MB log file
    # rotates under a fast writer), so the default budget might never be exceeded by what arrives.
    with running_platform(
        tmp_path_factory.mktemp("fnplat-data"),
        FNPLAT_LOG_LINES_PER_SECOND="200",
        FNPLAT_LOG_BURST_SECONDS="1",
    ) as plat:
        for name in NOISY_FUNCTIONS:
            plat.fnctl("deploy", str(write_function(functions, name, NOISY, timeout=120)))
        hello = "def handler(event, context):\n    return {'hello': event.get('n')}\n"
        plat.fnctl("deploy", str(write_function(functions, "calm", hello, timeout=10)))
        for name in (*NOISY_FUNCTIONS, "calm"):  # warm: the tasks exist before RSS is measured
            assert plat.invoke(name, {"mode": "none", "n": 0}).status_code == 200
        yield plat


def rss_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1))


def run_noisy(plat: Platform, event: dict[str, str | int]) -> tuple[str, int, list[int]]:
    """Invoke the function named like the event's mode while `calm` is invoked again and again;
    (request id, its status, calm's statuses); the platform's peak RSS is reset first."""
    assert plat.process is not None
    pid = plat.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        noisy = pool.submit(
            requests.post,
            f"{plat.url}/2015-03-31/functions/{event['mode']}/invocations",
            json=event,
            headers=plat.headers(),
            timeout=180,
        )
        calm: list[int] = []
        while not noisy.done() or len(calm) < 5:
            calm.append(plat.invoke("calm", {"n": len(calm)}).status_code)
        response = noisy.result()
    return response.headers["x-amzn-RequestId"], response.status_code, calm


def assert_rss_flat(plat: Platform, before_kb: int) -> None:
    assert plat.process is not None
    grown = rss_kb(plat.process.pid, "VmHWM") - before_kb
    print(f"platform peak RSS grew by {grown / 1024:.1f} MiB")  # shown with -s, for the record
    assert grown < RSS_GROWTH_BOUND_KB, f"the platform's RSS grew by {grown // 1024} MiB"


def logs_of(plat: Platform, name: str, request_id: str, wanted: str) -> str:
    """`fnctl logs` of one invocation once `wanted` is in it (output trails the response: Docker
    passes megabytes on after the function returned), or what it shows at the deadline."""
    deadline = time.monotonic() + 60
    command = [FNCTL, "logs", name, "--request-id", request_id, "--limit", "1000"]
    while True:
        # Bytes, not text mode: universal newlines would turn each \r into a line break.
        done = subprocess.run(command, env=plat.env, capture_output=True, timeout=120, check=True)
        logs = done.stdout.decode()
        if wanted in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)  # polling another process (the platform), with a deadline


def test_a_200_mb_line_without_a_newline_is_cut_and_not_held(output_platform: Platform) -> None:
    plat = output_platform
    assert plat.process is not None
    before = rss_kb(plat.process.pid, "VmRSS")
    request_id, status, calm = run_noisy(plat, {"mode": "long-line"})
    assert status == 200
    assert set(calm) == {200}
    assert_rss_flat(plat, before)
    logs = logs_of(plat, "long-line", request_id, MARKER)
    cut = [line for line in logs.splitlines() if MARKER in line]
    assert len(cut) == 1, logs[:2000]
    assert "x" * 262144 + MARKER in cut[0]


def test_a_carriage_return_progress_bar_is_one_cut_line(output_platform: Platform) -> None:
    plat = output_platform
    assert plat.process is not None
    before = rss_kb(plat.process.pid, "VmRSS")
    request_id, status, calm = run_noisy(plat, {"mode": "progress"})
    assert status == 200
    assert set(calm) == {200}
    assert_rss_flat(plat, before)
    logs = logs_of(plat, "progress", request_id, MARKER)
    lines = logs.split("\n")  # \r is inside lines: it does not end one
    cut = [line for line in lines if MARKER in line]
    assert cut, logs[:2000]
    assert "\rprogress 000000/200000\rprogress 000001/200000" in cut[0]
    # Docker's follow stream can deliver parts of a fast writer's line twice (json-file rotation
    # at 1 MB): a repeat that arrives after the line ended is a line of its own, cut the same way.
    longest = max(len(line.encode()) for line in lines)
    assert longest <= len("2026-01-01T00:00:00.000000+00:00  ") + 262144 + len(MARKER)


def test_a_flood_of_lines_is_rate_limited_with_a_notice_and_a_metric(output_platform: Platform) -> None:
    plat = output_platform
    assert plat.process is not None
    before = rss_kb(plat.process.pid, "VmRSS")
    request_id, status, calm = run_noisy(plat, {"mode": "flood", "blocks": 100})  # 1,000,000 lines
    assert status == 200
    assert set(calm) == {200}
    assert_rss_flat(plat, before)
    logs = logs_of(plat, "flood", request_id, "lines dropped")
    notices = re.findall(r"\[fnplat: (\d+) lines dropped \(\d+ bytes\): this function's output", logs)
    assert notices, logs[-3000:]
    metrics = requests.get(f"{plat.url}/metrics", headers=plat.headers(), timeout=30).text
    series = r'fnplat_log_lines_dropped_total\{function="flood",reason="rate_limit"\} (\S+)'
    counted = re.search(series, metrics)
    assert counted is not None, metrics[-3000:]
    assert float(counted.group(1)) >= sum(int(n) for n in notices)
    print(f"{len(notices)} notices, {sum(int(n) for n in notices)} lines dropped in them")
    assert "  flood line " in logs  # the burst got through (the newest of it is shown)
