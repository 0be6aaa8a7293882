"""Everything the gateway's handlers need, as one typed object on the application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from fnplat.catalog import Catalog
from fnplat.config import Settings
from fnplat.deployments import DeployService
from fnplat.invocation import Invoker
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    settings: Settings
    catalog: Catalog
    invoker: Invoker
    deployer: DeployService
    sessions: sessionmaker[Session]
    recorder: Recorder | None  # None on a cluster gateway: its controllers record invocations
    metrics: Metrics
    # The tasks /v1/tasks shows: this process's (one host) or every node's (a cluster gateway).
    task_snapshot: Callable[[], list[Mapping[str, object]] | Awaitable[list[Mapping[str, object]]]]
    # /readyz: (ready, why); one host is ready once it serves.
    readiness: Callable[[], tuple[bool, str]] = lambda: (True, "serving")
    # /v1/nodes: the cluster's controllers; one host has none.
    nodes: Callable[[], Awaitable[list[Mapping[str, object]]]] | None = None

    @property
    def base_url(self) -> str:
        host = self.settings.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.settings.gateway.tls else "http"
        return f"{scheme}://{host}:{self.settings.port}"


DEPS = web.AppKey("deps", GatewayDeps)
