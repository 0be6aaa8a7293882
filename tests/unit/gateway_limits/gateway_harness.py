"""The gateway against a real SQLite store and a scripted invoker (no Docker), plus raw sockets.

Raw sockets, because what these tests prove happens below HTTP clients: heads that never end,
bodies that stall, connections that are refused, bytes that are not UTF-8.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine
from store_support import sealed_sessions

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.config import GatewaySettings, Settings
from fnplat.deployments import DeployService
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.gateway.listener import Listener, start_listener
from fnplat.invocation import InvocationRequest, InvocationResult
from fnplat.journal import Journal
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder
from fnplat.security import generate_api_key
from fnplat.store import repository
from fnplat.store.db import make_engine, transaction, upgrade_to_head
from fnplat.store.telemetry_writers import writer_for

ImageBuilder = Callable[[str, str], Awaitable[str]]


@dataclass
class ScriptedInvoker:
    """Answers `result`, or raises `failure`; keeps every request."""

    result: InvocationResult = field(
        default_factory=lambda: InvocationResult(payload=b'{"statusCode": 200, "body": "ok"}')
    )
    failure: BaseException | None = None
    requests: list[InvocationRequest] = field(default_factory=list)

    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure
        return self.result

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        return None


class Client:
    """Requests to the listener by path, as aiohttp's TestClient makes them."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._session = aiohttp.ClientSession()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._session.get(self._base_url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._session.post(self._base_url + path, **kwargs)

    async def close(self) -> None:
        await self._session.close()


@dataclass
class Gateway:
    client: Client
    deps: GatewayDeps
    invoker: ScriptedInvoker
    admin_key: str
    port: int

    @property
    def admin(self) -> dict[str, str]:
        return {"x-api-key": self.admin_key}

    async def raw(self, data: bytes) -> bytes:
        """Send `data` on a fresh connection and read until the server closes it (10 s at most)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()


async def _no_build(context: str, tag: str) -> str:
    return "sha256:fake"


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    opened: list[tuple[Listener, Client, Recorder, Engine]] = []

    async def make(
        *, gateway: GatewaySettings | None = None, build_image: ImageBuilder = _no_build
    ) -> Gateway:
        settings = Settings(data_dir=tmp_path, port=8080)
        if gateway is not None:
            settings = dataclasses.replace(settings, gateway=gateway)
        db = make_engine(settings.db_url)
        upgrade_to_head(db)
        sessions = sealed_sessions(db)
        presented, key = generate_api_key("admin", "admin", datetime.now(UTC))
        with transaction(sessions) as session:
            repository.add_api_key(session, key)
        catalog = Catalog()
        catalog.load([], [], [key])
        invoker = ScriptedInvoker()
        recorder = Recorder(writer_for(db, sessions), Journal(settings.journal_dir))
        artifacts = ArtifactStore(settings.artifacts_dir, settings.code_dir)
        deployer = DeployService(sessions, artifacts, catalog, build_image, invoker.retire)
        deps = GatewayDeps(
            settings=settings,
            catalog=catalog,
            invoker=invoker,
            deployer=deployer,
            sessions=sessions,
            recorder=recorder,
            metrics=Metrics(),
            task_snapshot=lambda: [],
        )
        # The listener `fnctl up` uses, not aiohttp's test server: the bounds live there.
        listener = await start_listener(init_app(deps), "127.0.0.1", 0, settings.gateway, deps.metrics)
        client = Client(f"http://127.0.0.1:{listener.port}")
        opened.append((listener, client, recorder, db))
        return Gateway(client, deps, invoker, presented, listener.port)

    yield make
    for listener, client, recorder, db in opened:
        await client.close()
        await listener.close()
        await recorder.close()
        db.dispose()


def metric_value(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value
