"""The Lambda Invoke REST API: `POST /2015-03-31/functions/{name}/invocations`."""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from fnplat import ids, json_codec
from fnplat.catalog import Catalog
from fnplat.domain import LATEST, SYNC_PAYLOAD_LIMIT, FunctionVersion
from fnplat.errors import BadRequest, InvalidParameter, NotFound
from fnplat.gateway.auth import authenticate
from fnplat.gateway.bodies import read_body
from fnplat.gateway.deps import DEPS
from fnplat.gateway.function_names import parse_function_name
from fnplat.gateway.public_errors import ERRORS
from fnplat.gateway.webresponse import to_web_response
from fnplat.invocation import InvocationRequest

CLIENT_CONTEXT_LIMIT = 3583  # bytes of base64, as Lambda


async def invoke(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    request_id = ids.request_id()
    try:
        authenticate(request, deps.catalog.keyring, "invoke")
        name, qualifier = parse_function_name(request.match_info["name"], request.query.get("Qualifier"))
        _check_invocation_type(request.headers.get("X-Amz-Invocation-Type", "RequestResponse"))
        version = resolve_version(deps.catalog, name, qualifier)
        payload = await read_payload(request, SYNC_PAYLOAD_LIMIT)
        client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
        result = await deps.invoker.invoke(
            InvocationRequest(
                function=version,
                payload=payload,
                request_id=request_id,
                invoked_function_arn=deps.settings.function_arn(
                    name, qualifier if qualifier != LATEST else None
                ),
                executed_version=LATEST,
                client_context=client_context,
                trace_id=ids.forwarded_trace_id(request.headers.get("X-Amzn-Trace-Id")),
            )
        )
    except Exception as exc:
        doing = f"invoke of {request.match_info['name']!r}"
        return to_web_response(request.app[ERRORS].aws(exc, request_id, doing))
    headers = {
        "Content-Type": result.content_type,
        "X-Amz-Executed-Version": result.executed_version,
        "x-amzn-RequestId": request_id,
    }
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    return web.Response(body=result.payload, headers=headers)


def resolve_version(catalog: Catalog, name: str, qualifier: str) -> FunctionVersion:
    version = catalog.latest(name)
    if version is None:
        raise NotFound(f"Function not found: {name}")
    if qualifier != LATEST:
        # Published versions and aliases arrive with the versions issue; until then only $LATEST exists.
        raise NotFound(f"Function not found: {name}:{qualifier}")
    return version


async def read_payload(request: web.Request, limit: int) -> bytes:
    """The request body as a JSON document: 413 over `limit`, 400 when it is not JSON."""
    body = await read_body(request, limit, "the request payload")
    if not body.strip():
        return b"{}"
    try:
        json_codec.check(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Could not parse request body into json: {exc}") from None
    return body


def _check_invocation_type(value: str) -> None:
    if value == "RequestResponse":
        return
    if value in ("Event", "DryRun"):
        raise BadRequest(f"X-Amz-Invocation-Type {value} is not supported yet; use RequestResponse")
    raise InvalidParameter(
        f"invalid X-Amz-Invocation-Type {value!r}: expected RequestResponse, Event or DryRun"
    )


def _client_context(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > CLIENT_CONTEXT_LIMIT:
        raise InvalidParameter(f"X-Amz-Client-Context must be at most {CLIENT_CONTEXT_LIMIT} bytes")
    try:
        parsed = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidParameter("X-Amz-Client-Context must be base64-encoded JSON") from None
    # It travels to the runtime as a header value: compact JSON has no line breaks.
    return json.dumps(parsed, separators=(",", ":"))
