"""Fault: a frozen metadata store (ARCHITECTURE.md, "Bounds and recovery").

The platform runs on a Postgres of the test's own, which the test freezes with `docker pause`
(the kernel still accepts TCP; the server answers nothing, not even its statement timeout).
Then: warm invocations go on; `GET /v1/functions/{name}/logs` answers 503 within the Postgres
timeouts instead of hanging; invocation records past the in-memory bound spill to the journal;
the platform shuts down within its timeouts; and once the database is back, the next start
replays the journal so every record is stored, once, and counted once in the usage rollup.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import requests
from e2e_platform import running_platform
from own_postgres import own_postgres

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CALLS = 60
TIMEOUTS = {
    "FNPLAT_PG_CONNECT_TIMEOUT": "2",
    "FNPLAT_PG_STATEMENT_TIMEOUT": "2",
    "FNPLAT_PG_POOL_TIMEOUT": "1",
    "FNPLAT_TELEMETRY_CLOSE_TIMEOUT": "3",
    "FNPLAT_RECORD_BACKLOG": "20",
}
DEADLINE_S = 1 + 2 + 2  # what a store call may take: pool + connect + statement timeouts


def stored_records(url: str) -> tuple[set[str], int]:
    with psycopg.connect(url) as conn:
        ids = {
            r[0]
            for r in conn.execute("SELECT request_id FROM invocation_records WHERE function_name = 'hello'")
        }
        row = conn.execute(
            "SELECT coalesce(sum(requests), 0) FROM usage_hourly WHERE function_name = 'hello'"
        ).fetchone()
    assert row is not None
    return ids, int(row[0])


def test_a_frozen_database_holds_neither_logs_nor_shutdown_and_loses_no_record(
    docker_images: None, tmp_path: Path
) -> None:
    built = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), "postgres"], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    data_dir = tmp_path / "data"
    with own_postgres() as pg, running_platform(data_dir, FNPLAT_DATABASE_URL=pg.url, **TIMEOUTS) as plat:
        plat.fnctl("deploy", str(REPO / "examples" / "hello-python"))
        ids = [plat.invoke("hello", {"pathParameters": {"name": "before"}}).headers["x-amzn-RequestId"]]

        pg.pause()
        try:
            for i in range(CALLS):
                response = plat.invoke("hello", {"pathParameters": {"name": f"n{i}"}})
                assert response.status_code == 200, response.text  # warm: no store on the path
                ids.append(response.headers["x-amzn-RequestId"])
            started = time.monotonic()
            logs = requests.get(f"{plat.url}/v1/functions/hello/logs", headers=plat.headers(), timeout=60)
            waited = time.monotonic() - started
            assert logs.status_code == 503, logs.text
            assert logs.json()["errorType"] == "ServiceException"
            assert waited < 4 * DEADLINE_S
            journal = data_dir / "journal"
            assert any(journal.glob("segment-*.jsonl")), "records past the bound were not journaled"
            started = time.monotonic()
            plat.stop()  # SIGTERM; fails after 60 s
            assert time.monotonic() - started < 30
            assert plat.process is not None and plat.process.returncode == 0, "".join(plat.output)
        finally:
            pg.unpause()

        plat.start()  # the database is back: the journal is replayed
        deadline = time.monotonic() + 60
        while True:
            stored, counted = stored_records(pg.url)
            if stored >= set(ids) and not any((data_dir / "journal").glob("segment-*.jsonl")):
                break
            assert time.monotonic() < deadline, f"{len(set(ids) - stored)} records missing"
            time.sleep(0.5)  # polling another process, with a deadline
        assert counted == len(stored) == len(ids)  # each record written and counted once
