"""A controller's node API: what gateways call (invocations, task listings) and what probes and
Prometheus read (health, readiness, metrics), on FNPLAT_NODE_PORT.

Everything under /internal/ needs `Authorization: Bearer $FNPLAT_CLUSTER_SECRET`: nothing else
on the network may invoke through a controller. A wrong or missing secret is refused (401) and
logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fnplat.cluster import wire
from fnplat.controller.service import Controller
from fnplat.domain import RESPONSE_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT, FunctionVersion
from fnplat.errors import FnplatError, ServiceUnavailable, TooManyRequests
from fnplat.invocation import InvocationRequest
from fnplat.metrics import Metrics
from fnplat.shutdown import stop_gateway

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]
VersionResolver = Callable[[str, int], Awaitable[FunctionVersion]]
TaskLister = Callable[[], list[Mapping[str, object]]]


class NodeApi:
    def __init__(
        self,
        *,
        node_id: str,
        controller: Controller,
        versions: VersionResolver,
        secret: str,
        metrics: Metrics,
        readiness: Readiness,
        tasks: TaskLister,
    ) -> None:
        self.node_id = node_id
        self._controller = controller
        self._versions = versions
        self._secret = secret.encode()
        self._metrics = metrics
        self._readiness = readiness
        self._tasks = tasks

    def app(self) -> web.Application:
        app = web.Application(client_max_size=max(SYNC_PAYLOAD_LIMIT, RESPONSE_PAYLOAD_LIMIT) + 1024)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post(wire.INVOKE_PATH, self.invoke)
        app.router.add_get(wire.TASKS_PATH, self.list_tasks)
        return app

    # ---- probes ------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "node": self.node_id})

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        ready, why = self._readiness()
        return web.json_response(
            {"status": "ready" if ready else "not ready", "node": self.node_id, "reason": why},
            status=200 if ready else 503,
        )

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized(request)
        return web.Response(
            body=generate_latest(self._metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # ---- what gateways call ------------------------------------------------------------------
    async def invoke(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized(request)
        try:
            name, number, fields = wire.parse_request_headers(request.headers)
            version = await self._versions(name, number)
            payload = await request.read()
            result = await self._controller.invoke(
                InvocationRequest(
                    function=version,
                    payload=payload,
                    request_id=str(fields["request_id"]),
                    invoked_function_arn=str(fields["invoked_function_arn"]),
                    executed_version=str(fields["executed_version"]),
                    client_context=fields["client_context"],
                    trace_id=fields["trace_id"],
                )
            )
        except TooManyRequests as exc:
            return _refusal(exc, {wire.H_THROTTLE: "node"})
        except FnplatError as exc:
            return _refusal(exc, {})
        return web.Response(body=result.payload, headers=wire.result_headers(result))

    async def list_tasks(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized(request)
        return web.json_response({"node": self.node_id, "tasks": self._tasks()})

    # ---- the cluster secret --------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._secret)

    def _unauthorized(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or "?"
        log.warning(
            "node API: refused %s %s from %s: wrong or missing cluster secret",
            request.method,
            request.path,
            peer,
        )
        return web.json_response(
            {"errorType": "UnauthorizedException", "message": "a valid cluster secret is required"},
            status=401,
        )


def _refusal(exc: FnplatError, headers: dict[str, str]) -> web.StreamResponse:
    headers = {**headers, wire.H_ERROR_KIND: type(exc).__name__, "x-amzn-ErrorType": exc.error_type}
    if isinstance(exc, TooManyRequests):
        headers["fnplat-reason"] = exc.reason
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    return web.json_response(
        {"errorType": exc.error_type, "message": exc.message}, status=exc.status, headers=headers
    )


@asynccontextmanager
async def serving_node_api(
    api: NodeApi, host: str, port: int, controller: Controller, drain_s: float
) -> AsyncIterator[int]:
    """Serve `api`; on the way out refuse new invocations, let those in flight finish within
    `drain_s`, then stop. Yields the port bound."""
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=drain_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    try:
        yield bound
    finally:
        await stop_gateway(runner, controller, drain_s)
