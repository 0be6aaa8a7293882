"""Postgres stops under the platform and comes back: warm invocations go on from the caches,
store-backed management calls answer 503 with Retry-After (not a 500 with a stack trace), and
once Postgres is back deploys work again and the records of the calls made meanwhile are stored,
without restarting anything."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from e2e_platform import free_port, running_platform
from fault_functions import deploy, deployed, package

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "fnplat/postgres:15"


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def wait_ready(url: str, within_s: float = 60) -> None:
    """Poll the server (another process) until it accepts a query."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    """A Postgres of this test's own on a fixed loopback port (kept across stop and start):
    (container name, database URL)."""
    build = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), "postgres"], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stderr
    name = f"fnplat-test-pg-outage-{uuid.uuid4().hex[:8]}"
    port = free_port()
    docker(
        "run", "-d", "--name", name, "--label", "fnplat.test=pg-outage", "-p", f"127.0.0.1:{port}:5432", IMAGE
    )
    url = f"postgresql://fnplat:fnplat@127.0.0.1:{port}/fnplat"
    try:
        wait_ready(url)
        yield name, url
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_warm_calls_go_on_and_management_answers_503_until_postgres_is_back(
    docker_images: None, postgres: tuple[str, str], tmp_path: Path
) -> None:
    container, url = postgres
    with running_platform(tmp_path, FNPLAT_DATABASE_URL=url) as plat:
        deployed(plat, "steady")
        assert plat.invoke("steady", {"n": 0}).status_code == 200  # warm

        docker("stop", container)
        during = []
        for n in range(1, 6):
            response = plat.invoke("steady", {"n": n})
            assert response.status_code == 200, response.text
            assert "X-Amz-Function-Error" not in response.headers
            during.append(response.headers["x-amzn-RequestId"])

        refused = deploy(plat, package("newcomer"))
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json() == {
            "Type": "Service",
            "message": "the metadata store is unavailable right now; retry shortly",
            "errorType": "ServiceException",
        }
        keys = requests.get(f"{plat.url}/v1/keys", headers=plat.headers(), timeout=30)
        assert keys.status_code == 503, keys.text
        # What the gateway serves from memory still answers.
        listed = requests.get(f"{plat.url}/v1/functions", headers=plat.headers(), timeout=30)
        assert listed.status_code == 200 and [f["name"] for f in listed.json()["functions"]] == ["steady"]

        docker("start", container)
        wait_ready(url)
        accepted = deploy(plat, package("newcomer"))
        assert accepted.status_code == 201, accepted.text
        assert plat.invoke("newcomer", {"n": "back"}).status_code == 200

        deadline = time.monotonic() + 30
        while True:  # the recorder writes what it held once the store answers again
            with psycopg.connect(url) as conn:
                stored = {
                    row[0]
                    for row in conn.execute(
                        "SELECT request_id FROM invocation_records WHERE request_id = ANY(%s)", (during,)
                    )
                }
            if stored == set(during):
                break
            assert time.monotonic() < deadline, f"records of the outage never reached the store: {stored}"
            time.sleep(0.5)
