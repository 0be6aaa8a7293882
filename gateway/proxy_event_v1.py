"""API Gateway Lambda proxy integration, payload format 1.0: request → event, result → response.

The REST API shape that HTTP APIs also offer (`payload: "1.0"`), as observed in events HTTP APIs
send (lambda-compat §3; SAM CLI's `construct_v1_event` is the reference emulator):
- `headers` keeps each name as the client spelled it (first spelling) with its *last* value;
  `multiValueHeaders` has every value. Cookies stay in the `Cookie` header (1.0 has no `cookies`).
- `queryStringParameters` (last value) and `multiValueQueryStringParameters` (every value) are
  decoded; `pathParameters` and `stageVariables` likewise; an absent map is `null`, not omitted.
- `resource` and `requestContext.resourcePath` are the route's path template (`/items/{id}`) and
  `requestContext.resourceId` its route key (`GET /items/{id}`); for the `$default` route all
  three are `$default`. `path` is the path as requested (percent-encoded, stage prefix included).
- `body` is a string or `null`, with the same text/base64 rule as 2.0 (`proxy_event.encode_body`).
- `requestContext.identity` has the REST fields, `null` where there is nothing to say;
  `requestContext.authorizer` is present only when an authorizer ran (JWT: `{claims, scopes}`).

Response: a JSON object with `statusCode` (1.0 has no inference rule), optional `headers`,
`multiValueHeaders`, `body` (a string or null) and `isBase64Encoded`; other keys are ignored, as
HTTP APIs do. When a header is in both maps, the values of `multiValueHeaders` come first and the
`headers` value is added unless it is already among them (API Gateway merges the two; SAM CLI
does the same). Anything else is a MalformedProxyResponse → the same 502 as 2.0.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fnplat.gateway.proxy_event import (  # the 2.0 module's rules, shared so both formats agree
    DEFAULT_STAGE,
    MalformedProxyResponse,
    _append_header,
    _domain_prefix,
    encode_body,
    format_request_time,
)
from fnplat.gateway.responses import JSON_CONTENT_TYPE, HttpResponse

__all__ = ["MalformedProxyResponse", "build_payload_v1_event", "map_payload_v1_response", "resource_of"]

_IDENTITY_FIELDS = (
    "accessKey",
    "accountId",
    "caller",
    "cognitoAmr",
    "cognitoAuthenticationProvider",
    "cognitoAuthenticationType",
    "cognitoIdentityId",
    "cognitoIdentityPoolId",
    "principalOrgId",
    "sourceIp",
    "user",
    "userAgent",
    "userArn",
)


def resource_of(route_key: str) -> str:
    """`GET /items/{id}` → `/items/{id}`; `$default` → `$default`."""
    if route_key == "$default":
        return route_key
    return route_key.partition(" ")[2] or route_key


def _headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    spelling: dict[str, str] = {}  # lower-case name → the first spelling seen
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        key = spelling.setdefault(name.lower(), name)
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def _query(raw_query_string: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw_query_string, keep_blank_values=True):
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def build_payload_v1_event(
    *,
    method: str,
    raw_path: str,
    raw_query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    route_key: str,
    path_parameters: Mapping[str, str],
    source_ip: str,
    request_id: str,
    now_ms: int,
    domain_name: str,
    api_id: str = "fnplat",
    account_id: str = "000000000000",
    stage: str = DEFAULT_STAGE,
    protocol: str = "HTTP/1.1",
    stage_variables: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload 1.0 event for one request (arguments as for `build_http_api_v2_event`).

    `raw_query_string` must be the query as received (aiohttp: `request.raw_path.partition("?")[2]`,
    not `request.query_string`, which is already decoded).
    """
    single_headers, multi_headers = _headers(headers)
    single_query, multi_query = _query(raw_query_string) if raw_query_string else ({}, {})
    resource = resource_of(route_key)
    user_agent = next((v for k, v in single_headers.items() if k.lower() == "user-agent"), None)
    content_type = next((v for k, v in single_headers.items() if k.lower() == "content-type"), None)
    identity: dict[str, Any] = dict.fromkeys(_IDENTITY_FIELDS)
    identity["sourceIp"] = source_ip
    identity["userAgent"] = user_agent
    request_context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
    }
    if authorizer:
        request_context["authorizer"] = dict(authorizer)
    request_context.update(
        {
            "domainName": domain_name,
            "domainPrefix": _domain_prefix(domain_name),
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": identity,
            "path": raw_path,
            "protocol": protocol,
            "requestId": request_id,
            "requestTime": format_request_time(now_ms),
            "requestTimeEpoch": now_ms,
            "resourceId": route_key,
            "resourcePath": resource,
            "stage": stage,
        }
    )
    text: str | None = None
    is_base64 = False
    if body:
        text, is_base64 = encode_body(body, content_type)
    return {
        "version": "1.0",
        "resource": resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": request_context,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": dict(stage_variables) if stage_variables else None,
        "body": text,
        "isBase64Encoded": is_base64,
    }


def map_payload_v1_response(payload: bytes) -> HttpResponse:
    """Turn a function's result into the HTTP response API Gateway (payload 1.0) would send."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise MalformedProxyResponse(f"result is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedProxyResponse(
            f"result must be a JSON object with statusCode, got {type(value).__name__}"
        )
    if "statusCode" not in value:
        raise MalformedProxyResponse("result has no statusCode (payload 1.0 infers nothing)")
    status = value["statusCode"]
    if type(status) is not int or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode must be an integer from 100 to 599, got {status!r}")

    headers = _merged_headers(value.get("headers"), value.get("multiValueHeaders"))
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", JSON_CONTENT_TYPE))

    body = value.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise MalformedProxyResponse(f"body must be a string, got {type(body).__name__}")
    is_base64 = value.get("isBase64Encoded")
    if is_base64 is None:
        is_base64 = False
    if not isinstance(is_base64, bool):
        raise MalformedProxyResponse("isBase64Encoded must be a boolean")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedProxyResponse("isBase64Encoded is true but body is not valid base64") from None
    else:
        raw = body.encode()
    return HttpResponse(status, tuple(headers), raw)


def _merged_headers(single: object, multi: object) -> list[tuple[str, str]]:
    if single is not None and not isinstance(single, dict):
        raise MalformedProxyResponse("headers must be an object")
    if multi is not None and not isinstance(multi, dict):
        raise MalformedProxyResponse("multiValueHeaders must be an object")
    headers: list[tuple[str, str]] = []
    seen: dict[str, list[str]] = {}  # lower-case name → values already sent, to merge `headers` into
    for name, values in (multi or {}).items():
        if values is None:
            continue
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] must be a list")
        for item in values:
            count = len(headers)
            _append_header(headers, name, item)
            if len(headers) > count:
                seen.setdefault(name.lower(), []).append(headers[-1][1])
    for name, item in (single or {}).items():
        if item is None:
            continue
        count = len(headers)
        _append_header(headers, name, item)
        if len(headers) > count and headers[-1][1] in seen.get(name.lower(), ()):
            headers.pop()  # the same name and value in both maps is sent once
    return headers
