"""Deployed HTTP routes: request → API Gateway HTTP API 2.0 event → function → HTTP response."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from fnplat import ids, json_codec
from fnplat.domain import LATEST, SYNC_PAYLOAD_LIMIT
from fnplat.errors import FnplatError, RequestTimeout, RequestTooLarge, TooManyRequests, Unauthorized
from fnplat.gateway import responses
from fnplat.gateway.auth import authenticate
from fnplat.gateway.bodies import read_body
from fnplat.gateway.deps import DEPS
from fnplat.gateway.proxy_event import (
    MalformedProxyResponse,
    build_http_api_v2_event,
    map_http_api_v2_response,
)
from fnplat.gateway.public_errors import ERRORS
from fnplat.gateway.webresponse import to_web_response
from fnplat.invocation import InvocationRequest

log = logging.getLogger(__name__)


async def handle(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    catalog = deps.catalog
    raw_path = request.raw_path.split("?", 1)[0]
    match = catalog.route_table.match(request.method, raw_path)
    if match is None:
        return to_web_response(responses.not_found())
    route = match.route
    request_id = ids.request_id()
    try:
        if route.auth == "api_key":
            authenticate(request, catalog.keyring, "invoke")
        version = catalog.latest(route.function_name)
        if version is None:  # the route outlived its function for an instant during removal
            return to_web_response(responses.not_found())
        body = await read_body(request, SYNC_PAYLOAD_LIMIT, "the request body")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        event = build_http_api_v2_event(
            method=request.method,
            raw_path=raw_path,
            raw_query_string=request.query_string,
            headers=request.headers.items(),
            body=body,
            route_key=route.route_key,
            path_parameters=match.path_parameters,
            source_ip=peer[0] if peer else "",
            request_id=request_id,
            now_ms=int(time.time() * 1000),
            domain_name=request.host,
            account_id=deps.settings.account_id,
        )
        result = await deps.invoker.invoke(
            InvocationRequest(
                function=version,
                payload=json_codec.dumps(event),
                request_id=request_id,
                invoked_function_arn=deps.settings.function_arn(route.function_name),
                executed_version=LATEST,
                trace_id=ids.forwarded_trace_id(request.headers.get("X-Amzn-Trace-Id")),
            )
        )
    except Unauthorized:
        return to_web_response(responses.unauthorized())
    except TooManyRequests:
        return to_web_response(responses.too_many_requests())
    except RequestTooLarge:
        return to_web_response(responses.request_too_large())
    except RequestTimeout:
        return to_web_response(responses.request_timeout())
    except Exception as exc:
        if isinstance(exc, FnplatError) and exc.status == 403:
            return to_web_response(responses.forbidden())
        return to_web_response(request.app[ERRORS].route(exc, request_id, route.route_key))
    if result.function_error:
        return to_web_response(responses.internal_server_error())
    try:
        mapped = map_http_api_v2_response(result.payload)
    except MalformedProxyResponse as exc:
        log.warning(
            "request %s: route %s: malformed Lambda proxy response: %s", request_id, route.route_key, exc
        )
        return to_web_response(responses.internal_server_error())
    return to_web_response(mapped)
