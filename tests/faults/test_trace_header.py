"""A client header cannot break a task: a malformed X-Amzn-Trace-Id is answered 200, the task
stays warm and serves the next call (no second cold start)."""

from __future__ import annotations

import io
import json
import socket
import uuid
import zipfile

import pytest
import requests
from e2e_platform import Platform

pytestmark = pytest.mark.docker

ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
APP = """import os


def handler(event, context):
    return {"trace": os.environ.get("_X_AMZN_TRACE_ID")}
"""


def deploy_trace_echo(plat: Platform) -> str:
    name = f"trace-{uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", f"name: {name}\nruntime: python3.11\nhandler: app.handler\n")
        archive.writestr("app.py", APP)
    response = requests.post(
        f"{plat.url}/v1/functions",
        data=buffer.getvalue(),
        headers={**plat.headers(), "Content-Type": "application/zip"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return name


def invoke_raw(plat: Platform, name: str, trace_header: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """POST to the invoke API with a header value sent byte for byte (HTTP clients would refuse
    or re-encode it). Returns (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", plat.port), timeout=60) as sock:
        sock.sendall(
            f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + f"x-api-key: {plat.admin_key}\r\nContent-Length: 2\r\nConnection: close\r\n".encode()
            + b"X-Amzn-Trace-Id: "
            + trace_header
            + b"\r\n\r\n{}"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status.encode(), headers, body


def tasks_of(plat: Platform, name: str) -> list[dict[str, object]]:
    response = requests.get(f"{plat.url}/v1/tasks", headers=plat.headers(), timeout=30)
    return [t for t in response.json()["tasks"] if t["function"] == name]


def cold_starts(plat: Platform, name: str) -> float:
    text = requests.get(f"{plat.url}/metrics", headers=plat.headers(), timeout=30).text
    wanted = f'fnplat_cold_starts_total{{function="{name}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


@pytest.mark.parametrize(
    "malformed",
    [
        ROOT.encode() + b";Note=\xff\xfe",  # bytes that are not text
        ROOT.encode() + b";Pad=" + b"x" * 6000,  # far over the length bound
    ],
    ids=["not-utf8", "overlong"],
)
def test_a_malformed_trace_header_is_replaced_and_the_task_stays_warm(
    platform: Platform, malformed: bytes
) -> None:
    name = deploy_trace_echo(platform)
    first = requests.post(
        f"{platform.url}/2015-03-31/functions/{name}/invocations",
        json={},
        headers={**platform.headers(), "X-Amzn-Trace-Id": ROOT},
        timeout=60,
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"trace": ROOT}  # a well-formed header reaches the function as it is
    (task,) = tasks_of(platform, name)

    status, headers, body = invoke_raw(platform, name, malformed)

    assert status.startswith(b"HTTP/1.1 200"), (status, body)
    assert "x-amz-function-error" not in headers, body
    trace = json.loads(body)["trace"]
    assert trace.startswith("Root=1-") and trace.isascii() and len(trace) < 600  # a fresh one

    after = platform.invoke(name, {})
    assert after.status_code == 200 and "X-Amz-Function-Error" not in after.headers, after.text
    (same,) = tasks_of(platform, name)
    assert same["task_id"] == task["task_id"]
    assert same["invocations"] == 3
    assert cold_starts(platform, name) == 1
