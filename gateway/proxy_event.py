"""API Gateway HTTP API proxy integration, payload format 2.0: request → event, result → response.

See docs/lambda-compat §3. Both directions are pure functions over plain values so the handler
stays thin and this file is tested without a server.

Body encoding rule for events (AWS does not document one; this is ours, stated once): the body is
passed as text (`isBase64Encoded: false`) when its content type is textual (or absent) *and* the
bytes are valid UTF-8; otherwise it is base64 and `isBase64Encoded` is true. Textual means `text/*`,
`*+json`, `*+xml` and a short list of `application/*` types (json, xml, javascript, form-urlencoded,
graphql, yaml, ...). `multipart/form-data` is binary, as API Gateway treats it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fnplat.gateway.responses import JSON_CONTENT_TYPE, HttpResponse

__all__ = [
    "DEFAULT_STAGE",
    "HttpResponse",  # re-exported: the result type of map_http_api_v2_response
    "MalformedProxyResponse",
    "build_http_api_v2_event",
    "encode_body",
    "format_request_time",
    "is_text_content_type",
    "map_http_api_v2_response",
]

DEFAULT_STAGE = "$default"

_TEXT_APPLICATION_SUBTYPES = frozenset(
    {
        "json",
        "xml",
        "javascript",
        "x-javascript",
        "ecmascript",
        "x-www-form-urlencoded",
        "graphql",
        "yaml",
        "x-yaml",
        "x-ndjson",
        "ndjson",
        "csv",
    }
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# RFC 9110 token: what a header name may be. Anything else from a function could break the response.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# The server frames the response itself; a function's framing headers would contradict it.
_FRAMING_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "te",
        "trailer",
    }
)


class MalformedProxyResponse(ValueError):
    """The function's result is not a valid 2.0 proxy response (the gateway answers 502)."""


@lru_cache(maxsize=256)
def is_text_content_type(content_type: str | None) -> bool:
    """Whether a request body of this Content-Type is passed as text (if it is valid UTF-8)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    major, _, minor = media.partition("/")
    if major == "text":
        return True
    if minor.endswith(("+json", "+xml")):
        return True
    return major == "application" and minor in _TEXT_APPLICATION_SUBTYPES


@lru_cache(maxsize=4)  # every request of the same second asks for the same text
def _request_time_of_second(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def format_request_time(now_ms: int) -> str:
    """`12/Mar/2020:19:03:58 +0000` in UTC, independent of the process locale."""
    return _request_time_of_second(now_ms // 1000)


def _domain_prefix(domain_name: str) -> str:
    host = domain_name
    if host.startswith("["):  # [ipv6]:port
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.split(".", 1)[0]


def _headers_and_cookies(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c for c in (part.strip() for part in value.split(";")) if c)
        elif key in joined:
            joined[key] = f"{joined[key]},{value}"
        else:
            joined[key] = value
    return joined, cookies


def _query_parameters(raw_query_string: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query_string, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """The event's `body` and `isBase64Encoded` for a request body (rule in the module docstring)."""
    if is_text_content_type(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def build_http_api_v2_event(
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
    """The payload 2.0 event for one request.

    `raw_path` is the path as requested (percent-encoded, no query string); a named stage's prefix,
    if any, is already part of it. `headers` keep duplicates, as received. Optional keys
    (`cookies`, `queryStringParameters`, `pathParameters`, `stageVariables`, `body`) are omitted
    when empty, as API Gateway does.
    """
    header_map, cookies = _headers_and_cookies(headers)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = header_map
    if raw_query_string:
        query = _query_parameters(raw_query_string)
        if query:
            event["queryStringParameters"] = query
    request_context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": _domain_prefix(domain_name),
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": header_map.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": format_request_time(now_ms),
        "timeEpoch": now_ms,
    }
    if authorizer:
        request_context["authorizer"] = dict(authorizer)
    event["requestContext"] = request_context
    is_base64 = False
    if body:
        event["body"], is_base64 = encode_body(body, header_map.get("content-type"))
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = is_base64
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def map_http_api_v2_response(payload: bytes) -> HttpResponse:
    """Turn a function's result into the HTTP response API Gateway (HTTP API, 2.0) would send.

    A JSON object with `statusCode` is a structured response. Any other valid JSON is inferred:
    200, `content-type: application/json`, body = the value's JSON text (a JSON string: its text).
    Raises MalformedProxyResponse for anything else.
    """
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise MalformedProxyResponse(f"result is not JSON: {exc}") from None
    if not (isinstance(value, dict) and "statusCode" in value):
        text = value.encode() if isinstance(value, str) else payload
        return HttpResponse(200, (("content-type", JSON_CONTENT_TYPE),), text)
    return _structured_response(value)


def _structured_response(value: dict[str, Any]) -> HttpResponse:
    status = value["statusCode"]
    if type(status) is not int or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode must be an integer from 100 to 599, got {status!r}")

    headers = _response_headers(value.get("headers"), value.get("multiValueHeaders"))
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", JSON_CONTENT_TYPE))

    cookies = value.get("cookies")
    if cookies is not None:
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise MalformedProxyResponse("cookies must be a list of strings")
        for cookie in cookies:
            headers.append(("set-cookie", _checked_value("set-cookie", cookie)))

    body = value.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise MalformedProxyResponse(f"body must be a string, got {type(body).__name__}")
    is_base64 = value.get("isBase64Encoded", False)
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


def _response_headers(single: object, multi: object) -> list[tuple[str, str]]:
    if single is not None and not isinstance(single, dict):
        raise MalformedProxyResponse("headers must be an object")
    if multi is not None and not isinstance(multi, dict):
        raise MalformedProxyResponse("multiValueHeaders must be an object")
    headers: list[tuple[str, str]] = []
    # As in payload 1.0, multiValueHeaders wins over headers for the same name.
    multi_names = {str(name).lower() for name in multi} if multi else set()
    for name, value in (single or {}).items():
        if name.lower() in multi_names or value is None:
            continue
        _append_header(headers, name, value)
    for name, values in (multi or {}).items():
        if values is None:
            continue
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] must be a list")
        for value in values:
            _append_header(headers, name, value)
    return headers


def _append_header(headers: list[tuple[str, str]], name: str, value: object) -> None:
    if not _HEADER_NAME_RE.fullmatch(name):
        raise MalformedProxyResponse(f"invalid header name {name!r}")
    if name.lower() in _FRAMING_HEADERS:
        return
    headers.append((name, _checked_value(name, _header_text(name, value))))


def _header_text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise MalformedProxyResponse(
        f"header {name!r} must be a string, number or boolean, got {type(value).__name__}"
    )


def _checked_value(name: str, value: str) -> str:
    # CR/LF would split the response (header injection); NUL is never valid in a field value.
    if "\r" in value or "\n" in value or "\0" in value:
        raise MalformedProxyResponse(f"header {name!r} contains a control character")
    return value
