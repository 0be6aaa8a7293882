"""The gateway application factory: one aiohttp app serving management, invoke and function routes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fnplat.domain import ARTIFACT_ZIPPED_LIMIT
from fnplat.errors import FnplatError
from fnplat.gateway import function_routes, invoke_api
from fnplat.gateway.auth import authenticate
from fnplat.gateway.deps import DEPS, GatewayDeps
from fnplat.gateway.management import setup_management_routes
from fnplat.gateway.responses import gateway_message
from fnplat.gateway.webresponse import to_web_response


def init_app(deps: GatewayDeps) -> web.Application:
    # The largest body we accept is a deploy upload; every handler enforces its own smaller limit.
    app = web.Application(client_max_size=ARTIFACT_ZIPPED_LIMIT + 1024 * 1024, middlewares=[_observe])
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke_api.invoke)
    setup_management_routes(app)
    # Everything else is a deployed function route (or 404).
    app.router.add_route("*", "/{tail:.*}", function_routes.handle)
    return app


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    try:
        authenticate(request, deps.catalog.keyring, "invoke")
    except FnplatError as exc:
        return to_web_response(
            gateway_message(exc.status, "Unauthorized" if exc.status == 401 else "Forbidden")
        )
    body = generate_latest(deps.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _kind(path: str) -> str:
    if path.startswith("/2015-03-31/"):
        return "invoke"
    if path.startswith("/v1/"):
        return "management"
    if path in ("/metrics", "/healthz"):
        return "other"
    return "route"


@web.middleware
async def _observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    kind = _kind(request.path)
    metrics = request.app[DEPS].metrics
    metrics.http_requests.labels(kind, str(response.status)).inc()
    metrics.http_duration.labels(kind).observe(time.perf_counter() - started)
    return response
