"""Clients cannot exhaust the gateway: idle connections, slow heads, more connections than allowed.

Against a real platform (`fnctl up`), over raw sockets.
"""

from __future__ import annotations

import io
import resource
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_platform import Platform, running_platform

pytestmark = pytest.mark.docker

IDLE_CONNECTIONS = 1100
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HEALTHZ_BODY = b'{"status": "ok"}'


def function_zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", f"name: {name}\nruntime: python3.11\nhandler: app.handler\n")
        archive.writestr("app.py", "def handler(event, context):\n    return {'pong': event.get('ping')}\n")
    return buffer.getvalue()


def metric(plat: Platform, line_start: str) -> float:
    text = requests.get(f"{plat.url}/metrics", headers=plat.headers(), timeout=30).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def healthz_answered(sock: socket.socket, deadline: float) -> bool:
    """True when the whole answer to a GET /healthz sent on `sock` arrives before `deadline`."""
    received = b""
    try:
        while not received.endswith(HEALTHZ_BODY):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                return False
            received += chunk
    except OSError:  # includes the timeout
        return False
    return received.startswith(b"HTTP/1.1 200 ")


def ask_healthz(sock: socket.socket, deadline: float) -> bool:
    """One keep-alive GET /healthz on `sock`, answered before `deadline`."""
    try:
        sock.sendall(HEALTHZ)
    except OSError:
        return False
    return healthz_answered(sock, deadline)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sends until it closes the connection; None if it is still open after
    `timeout` seconds."""
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return received


@pytest.fixture
def enough_open_files() -> Iterator[None]:
    """This test process holds 1,100 sockets itself: make room (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4 * IDLE_CONNECTIONS:
        pytest.fail(f"the hard open-files limit here is {hard}; this test needs {4 * IDLE_CONNECTIONS}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
def test_with_1100_idle_client_connections_open_a_new_function_still_deploys_and_cold_starts(
    docker_images: None, enough_open_files: None, tmp_path: Path
) -> None:
    # The platform starts with the soft limit of 1024 open files that many service managers
    # give; its hard limit allows far more.
    with running_platform(tmp_path / "data", open_files=1024) as plat:
        idle: list[socket.socket] = []
        try:
            deadline = time.monotonic() + 60
            for _ in range(IDLE_CONNECTIONS):
                sock = socket.create_connection(("127.0.0.1", plat.port), timeout=10)
                idle.append(sock)
                sock.sendall(HEALTHZ)
            # Every one of them is served, then stays open and idle (keep-alive).
            served = sum(1 for sock in idle if healthz_answered(sock, deadline))

            name = f"idle-{uuid.uuid4().hex[:8]}"
            deployed = requests.post(
                f"{plat.url}/v1/functions",
                data=function_zip(name),
                headers={**plat.headers(), "Content-Type": "application/zip"},
                timeout=60,
            )
            assert deployed.status_code == 201, deployed.text
            invoked = plat.invoke(name, {"ping": 42})
            assert invoked.status_code == 200, invoked.text
            assert invoked.json() == {"pong": 42}
            assert "X-Amz-Function-Error" not in invoked.headers
            assert metric(plat, f'fnplat_cold_starts_total{{function="{name}"}}') == 1

            assert served == IDLE_CONNECTIONS
            # The idle connections were kept, not dropped to make room: each still answers.
            later = time.monotonic() + 60
            assert all(ask_healthz(sock, later) for sock in idle[::50])
            assert metric(plat, "fnplat_gateway_refused_connections_total") == 0
            assert any("open files limit: " in line for line in plat.output), plat.output
        finally:
            for sock in idle:
                sock.close()


# ---- a platform with a small cap and a short head deadline ---------------------------------------

CAP = 16


@pytest.fixture(scope="module")
def limited(docker_images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("limited"),
        FNPLAT_MAX_CONNECTIONS=str(CAP),
        FNPLAT_HTTP_HEADER_TIMEOUT="1",
    ) as plat:
        yield plat


def test_connections_over_the_cap_are_refused_while_the_others_keep_working(limited: Platform) -> None:
    refused_before = metric(limited, "fnplat_gateway_refused_connections_total")
    held = [socket.create_connection(("127.0.0.1", limited.port), timeout=10) for _ in range(CAP)]
    try:
        deadline = time.monotonic() + 30
        assert all(ask_healthz(sock, deadline) for sock in held)

        extra = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
        try:
            extra.sendall(HEALTHZ)
            # Closed at once, unanswered (a refused connection is accepted, then closed).
            assert read_until_closed(extra, timeout=10) == b""
        finally:
            extra.close()

        deadline = time.monotonic() + 30
        assert all(ask_healthz(sock, deadline) for sock in held)  # untouched
        # Counted; read on one of the held connections, as no other would be let in.
        held[0].sendall(
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: "
            + limited.admin_key.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        metrics = read_until_closed(held[0], timeout=30) or b""
        refused = [
            float(line.split()[-1])
            for line in metrics.decode().splitlines()
            if line.startswith("fnplat_gateway_refused_connections_total")
        ]
        assert refused and refused[0] >= refused_before + 1
    finally:
        for sock in held:
            sock.close()


def test_a_slowloris_connection_is_answered_408_and_closed_after_the_head_timeout(
    limited: Platform,
) -> None:
    slow = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
    try:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and then nothing
        answer = read_until_closed(slow, timeout=15)  # the head timeout is 1 s
        assert answer is not None, "the connection was still open 15 s after a 1 s head timeout"
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    finally:
        slow.close()
    # Others were served meanwhile and after.
    assert requests.get(f"{limited.url}/healthz", timeout=10).status_code == 200
    assert metric(limited, 'fnplat_gateway_timeouts_total{phase="head"}') >= 1


def test_a_connection_that_never_sends_anything_does_not_keep_its_slot(limited: Platform) -> None:
    silent = [socket.create_connection(("127.0.0.1", limited.port), timeout=10) for _ in range(CAP)]
    try:
        for sock in silent:
            assert read_until_closed(sock, timeout=15) is not None  # closed by the server
        # The slots they held are free again.
        assert requests.get(f"{limited.url}/healthz", timeout=10).status_code == 200
    finally:
        for sock in silent:
            sock.close()
