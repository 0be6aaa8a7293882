"""Fault: one bad row never blocks the rows behind it (ARCHITECTURE.md, "Bounds and recovery").

A function whose output or error the store would refuse (a NUL byte, which Postgres text cannot
hold; an error type longer than its column) must not stop the logs and records of every
invocation after it. Before the recorder cleaned and isolated such rows, the refused transaction
went back in front of the queue and failed again forever. (Both backends with a bad row the
store layer cannot clean: tests/integration/store/test_store_bad_rows.py.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from e2e_platform import Platform, running_platform

pytestmark = [pytest.mark.docker, pytest.mark.slow]

APP = """
def handler(event, context):
    action = event.get("action")
    if action == "nul":
        print("before\\x00after", flush=True)
        return "nul"
    if action == "long":
        raise type("E" * 300, (Exception,), {})("an error type over 256 characters")
    print(f"good {event['n']}", flush=True)
    return "ok"
"""


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of its own on the shared Postgres server."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield conninfo.rsplit("/", 1)[0] + f"/{name}"


def function_dir(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "function.yaml").write_text(f"name: {name}\nruntime: python3.11\nhandler: app.handler\n")
    (directory / "app.py").write_text(APP)
    return directory


def logs_until(plat: Platform, name: str, wanted: list[str], within_s: float = 30.0) -> str:
    """The function's logs once every `wanted` text is in them (polled: the recorder writes
    every half second); fails with what was there after `within_s`."""
    deadline = time.monotonic() + within_s
    text = ""
    while True:
        response = requests.get(
            f"{plat.url}/v1/functions/{name}/logs", params={"limit": 1000}, headers=plat.headers(), timeout=30
        )
        if response.status_code == 200:
            text = "\n".join(e["message"] for e in response.json()["events"])
            if all(w in text for w in wanted):
                return text
        if time.monotonic() > deadline:
            raise AssertionError(f"not in the logs after {within_s} s: {wanted}\n--- logs ---\n{text}")
        time.sleep(0.5)  # polling another process, with a deadline


def invoke_all(plat: Platform, name: str, actions: list[dict[str, object]]) -> list[str]:
    request_ids = []
    for payload in actions:
        response = plat.invoke(name, payload)
        assert response.status_code == 200, response.text
        request_ids.append(response.headers["x-amzn-RequestId"])
    return request_ids


def test_a_nul_byte_and_an_overlong_error_type_do_not_block_later_rows_on_postgres(
    docker_images: None, database_url: str, tmp_path: Path
) -> None:
    with running_platform(tmp_path / "data", FNPLAT_DATABASE_URL=database_url) as plat:
        plat.fnctl("deploy", str(function_dir(tmp_path, "badrows")))
        ids = invoke_all(
            plat, "badrows", [{"action": "nul"}, {"action": "long"}, *({"n": n} for n in range(3))]
        )
        text = logs_until(plat, "badrows", ["good 2", f"REPORT RequestId: {ids[-1]}"])
        assert "before\ufffdafter" in text  # the NUL byte replaced, the line kept
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT request_id, error_type FROM invocation_records WHERE function_name = 'badrows'"
        ).fetchall()
    stored = dict(rows)
    assert set(stored) == set(ids)
    long_type = stored[ids[1]]
    assert long_type is not None and len(long_type) == 256 and long_type.startswith("EEEE")
