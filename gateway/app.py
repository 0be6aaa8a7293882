"""The gateway application factory: one aiohttp app serving management, invoke and function routes.

No middlewares (see observed.py): each handler is wrapped for its request metrics instead.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fnplat.domain import ARTIFACT_ZIPPED_LIMIT
from fnplat.errors import FnplatError
from fnplat.gateway import function_routes, invoke_api
from fnplat.gateway.auth import authenticate
from fnplat.gateway.deps import DEPS, GatewayDeps
from fnplat.gateway.management import setup_management_routes
from fnplat.gateway.observed import observed
from fnplat.gateway.public_errors import ERRORS, PublicErrors
from fnplat.gateway.responses import gateway_message
from fnplat.gateway.webresponse import to_web_response


def init_app(deps: GatewayDeps) -> web.Application:
    # The largest body we accept is a deploy upload; every handler enforces its own smaller limit.
    app = web.Application(client_max_size=ARTIFACT_ZIPPED_LIMIT + 1024 * 1024)
    app[DEPS] = deps
    app[ERRORS] = PublicErrors.for_data_dir(deps.settings.data_dir)
    app.router.add_get("/healthz", observed("other")(healthz))
    app.router.add_get("/readyz", observed("other")(readyz))
    app.router.add_get("/metrics", observed("other")(metrics))
    app.router.add_post("/2015-03-31/functions/{name}/invocations", observed("invoke")(invoke_api.invoke))
    setup_management_routes(app)
    # Everything else is a deployed function route (or 404).
    app.router.add_route("*", "/{tail:.*}", observed("route")(function_routes.handle))
    return app


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    ready, why = request.app[DEPS].readiness()
    return web.json_response(
        {"status": "ready" if ready else "not ready", "reason": why}, status=200 if ready else 503
    )


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
