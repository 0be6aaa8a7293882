"""The management API when the platform's own resources fail: an unreachable metadata store
answers 503 with Retry-After, a full data dir 507; no stack trace, no driver text, and a failed
deploy leaves no artifact behind."""

from __future__ import annotations

import errno
import io
import socket
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import OperationalError
from store_support import sealed_sessions

from fnplat.artifacts import ArtifactStore, StoredArtifact
from fnplat.catalog import Catalog
from fnplat.config import Settings
from fnplat.deployments import DeployService
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.invocation import InvocationRequest, InvocationResult
from fnplat.journal import Journal
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder
from fnplat.security import generate_api_key
from fnplat.store.db import make_engine
from fnplat.store.telemetry_writers import writer_for

SPEC = "name: hello\nruntime: python3.11\nhandler: app.handler\nroutes: ['GET /hello/{name}']\n"


class Invoker:
    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        return InvocationResult(payload=b'{"warm": true}')

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        return None


class FullDisk(ArtifactStore):
    def put(self, data: bytes) -> StoredArtifact:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.root / "sha256" / "x.zip"))


@dataclass
class Gateway:
    client: TestClient
    admin: dict[str, str]
    artifacts: Path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


async def gateway(
    tmp_path: Path, db_url: str, artifacts_class: type[ArtifactStore]
) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=tmp_path, port=8080)
    db = make_engine(db_url)
    sessions = sealed_sessions(db)
    presented, key = generate_api_key("admin", "admin", datetime.now(UTC))
    catalog = Catalog()
    catalog.load([], [], [key])  # the key ring lives in memory: auth needs no store
    recorder = Recorder(writer_for(db, sessions), Journal(settings.journal_dir))

    async def build_image(context: str, tag: str) -> str:
        return "sha256:fake"

    invoker = Invoker()
    artifacts = artifacts_class(settings.artifacts_dir, settings.code_dir)
    deps = GatewayDeps(
        settings=settings,
        catalog=catalog,
        invoker=invoker,
        deployer=DeployService(sessions, artifacts, catalog, build_image, invoker.retire),
        sessions=sessions,
        recorder=recorder,
        metrics=Metrics(),
        task_snapshot=lambda: [],
    )
    client = TestClient(TestServer(init_app(deps)))
    await client.start_server()
    try:
        yield Gateway(client, {"x-api-key": presented}, settings.artifacts_dir)
    finally:
        await client.close()
        db.dispose()


@pytest.fixture
async def store_down(tmp_path: Path) -> AsyncIterator[Gateway]:
    url = f"postgresql://fnplat:fnplat@127.0.0.1:{closed_port()}/fnplat"
    async for g in gateway(tmp_path, url, ArtifactStore):
        yield g


@pytest.fixture
async def disk_full(tmp_path: Path) -> AsyncIterator[Gateway]:
    async for g in gateway(tmp_path, f"sqlite:///{tmp_path / 'fnplat.db'}", FullDisk):
        yield g


async def test_store_backed_calls_answer_503_with_retry_after(store_down: Gateway) -> None:
    client, admin = store_down.client, store_down.admin
    calls = [
        client.post(
            "/v1/functions",
            data=zipped({"function.yaml": SPEC, "app.py": ""}),
            headers={**admin, "Content-Type": "application/zip"},
        ),
        client.post("/v1/keys", json={"name": "ci"}, headers=admin),
        client.get("/v1/keys", headers=admin),
    ]
    for call in calls:
        response = await call
        body = await response.json()
        assert response.status == 503, body
        assert int(response.headers["Retry-After"]) > 0
        assert body == {
            "Type": "Service",
            "message": "the metadata store is unavailable right now; retry shortly",
            "errorType": "ServiceException",
        }
    # The deploy stored its zip before the store refused the version: it was removed again.
    assert not list(store_down.artifacts.rglob("*.zip"))


async def test_a_full_data_dir_fails_deploys_with_507_naming_it(disk_full: Gateway) -> None:
    response = await disk_full.client.post(
        "/v1/functions",
        data=zipped({"function.yaml": SPEC, "app.py": ""}),
        headers={**disk_full.admin, "Content-Type": "application/zip"},
    )
    body = await response.json()
    assert response.status == 507, body
    assert "data dir (FNPLAT_DATA_DIR)" in body["message"]
    assert str(disk_full.artifacts) not in body["message"]  # no host path
    listed = await (await disk_full.client.get("/v1/functions", headers=disk_full.admin)).json()
    assert listed == {"functions": []}


def sqlite_full_error() -> OperationalError:
    """A real SQLITE_FULL, as SQLAlchemy raises it."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.execute("PRAGMA max_page_count = 2")
    try:
        for _ in range(100):
            connection.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    except sqlite3.OperationalError as exc:
        return OperationalError("INSERT INTO t VALUES (?)", None, exc)
    finally:
        connection.close()
    raise AssertionError("the database never filled up")
