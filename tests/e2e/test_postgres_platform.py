"""The one-host platform on Postgres instead of SQLite: same code, same behaviour, and what was
deployed survives a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from e2e_platform import running_platform

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of its own on the shared Postgres server, so no other test touches it."""
    name = f"e2e_{uuid.uuid4().hex[:8]}"
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield conninfo.rsplit("/", 1)[0] + f"/{name}"


def test_deploy_invoke_logs_and_restart_on_postgres(
    docker_images: None, database_url: str, tmp_path: Path
) -> None:
    with running_platform(tmp_path, FNPLAT_DATABASE_URL=database_url) as plat:
        plat.fnctl("deploy", str(REPO / "examples" / "hello-python"))
        response = requests.get(f"{plat.url}/hello/postgres", headers=plat.headers(), timeout=60)
        assert response.status_code == 200, response.text
        assert "postgres" in response.text
        invoked = plat.invoke("hello", {"pathParameters": {"name": "pg"}})
        request_id = invoked.headers["x-amzn-RequestId"]
        logs = plat.fnctl("logs", "hello", "--request-id", request_id).stdout
        assert f"REPORT RequestId: {request_id}" in logs

        plat.stop()
        plat.start()
        listed = plat.fnctl("ls").stdout
        assert "hello" in listed
        again = requests.get(f"{plat.url}/hello/again", headers=plat.headers(), timeout=60)
        assert again.status_code == 200 and "again" in again.text

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM invocation_records WHERE function_name = 'hello'"
        ).fetchone()
    assert rows is not None and rows[0] >= 3
