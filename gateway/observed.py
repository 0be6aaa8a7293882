"""Request metrics for the gateway's handlers (`fnplat_http_requests`, request latency).

A wrapper per handler, not an aiohttp middleware: with any middleware installed aiohttp builds a
handler chain per request, which measured at ~30 us a request, a quarter of the route path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from fnplat import ids
from fnplat.gateway.deps import DEPS
from fnplat.gateway.public_errors import ERRORS
from fnplat.gateway.webresponse import to_web_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def observed(kind: str) -> Callable[[Handler], Handler]:
    """Count each answer of the handler by `kind` (route | invoke | management | other) and status."""

    def wrap(handler: Handler) -> Handler:
        async def observed_handler(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except Exception as exc:
                # The last resort (the handlers answer their own errors): without it aiohttp
                # would answer a text/plain 500 with no request id to find in the log.
                errors = request.app[ERRORS]
                doing = f"{request.method} {request.raw_path!r}"
                request_id = ids.request_id()
                if kind == "route":
                    response = to_web_response(errors.route(exc, request_id, doing))
                else:
                    response = to_web_response(errors.aws(exc, request_id, doing))
            request.app[DEPS].metrics.request_done(kind, response.status, time.perf_counter() - started)
            return response

        return observed_handler

    return wrap
