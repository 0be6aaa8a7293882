"""CORS as API Gateway's HTTP APIs evaluate it: preflights, response headers, wildcards (cors)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from fnplat.gateway.cors import CorsPolicy, policy_for, preflight_method
from fnplat.gateway.responses import HttpResponse
from fnplat.http_config import CorsConfig

APP = "https://app.example.com"

BASIC = CorsConfig(
    allow_origins=(APP,),
    allow_methods=("GET", "POST"),
    allow_headers=("authorization", "content-type"),
    expose_headers=("X-Request-Id",),
    max_age=300,
)
OPEN = CorsConfig(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",), expose_headers=("*",))
CREDENTIALED = CorsConfig(
    allow_origins=("https://*.example.com", "http://localhost:3000"),
    allow_methods=("*",),
    allow_headers=("*",),
    expose_headers=("*",),
    allow_credentials=True,
)


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})


def as_dict(response: HttpResponse) -> dict[str, str]:
    return {name: value for name, value in response.headers}


@pytest.mark.parametrize(
    ("method", "request_headers", "asked"),
    [
        ("OPTIONS", headers(Origin=APP, Access_Control_Request_Method="post"), "POST"),
        ("OPTIONS", headers(Origin=APP), None),  # a plain OPTIONS request: the function's
        ("OPTIONS", headers(Access_Control_Request_Method="GET"), None),  # no Origin: not CORS
        ("GET", headers(Origin=APP, Access_Control_Request_Method="GET"), None),
        ("OPTIONS", headers(Origin="", Access_Control_Request_Method="GET"), None),
    ],
)
def test_preflight_method(method: str, request_headers: CIMultiDict[str], asked: str | None) -> None:
    assert preflight_method(method, request_headers) == asked


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        ("*", "https://anything.io", True),
        ("*", "null", True),
        ("https://*", "https://anything.io", True),
        ("https://*", "http://anything.io", False),
        ("https://*", "https://", False),
        ("http://*", "http://localhost:8080", True),
        (APP, APP, True),
        (APP, "https://APP.example.com", True),  # case-insensitive
        (APP, "https://app.example.com:8443", False),
        (APP, "http://app.example.com", False),
        (APP, "https://app.example.com.evil.net", False),
        ("https://*.example.com", "https://app.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://evilexample.com", False),
        ("https://*.example.com", "https://app.example.com:8443", False),
        ("https://*.example.com:8443", "https://app.example.com:8443", True),
        ("https://*.example.com", "http://app.example.com", False),
        ("http://localhost:3000", "http://localhost:3000", True),
        ("http://[::1]:3000", "http://[::1]:3000", True),
    ],
)
def test_origin_patterns(pattern: str, origin: str, allowed: bool) -> None:
    policy = CorsPolicy(CorsConfig(allow_origins=(pattern,)))
    assert (policy.allowed_origin(origin) is not None) is allowed


@pytest.mark.parametrize(
    ("config", "request_headers", "expected"),
    [
        (
            BASIC,
            headers(
                Origin=APP,
                Access_Control_Request_Method="POST",
                Access_Control_Request_Headers="Content-Type",
            ),
            {
                "Access-Control-Allow-Origin": APP,
                "Access-Control-Allow-Methods": "GET,POST",
                "Access-Control-Allow-Headers": "authorization,content-type",
                "Access-Control-Max-Age": "300",
                "Vary": "Origin",
            },
        ),
        (  # the requested header list may have spaces and any case
            BASIC,
            headers(
                Origin=APP,
                Access_Control_Request_Method="GET",
                Access_Control_Request_Headers=" Authorization , CONTENT-TYPE",
            ),
            {
                "Access-Control-Allow-Origin": APP,
                "Access-Control-Allow-Methods": "GET,POST",
                "Access-Control-Allow-Headers": "authorization,content-type",
                "Access-Control-Max-Age": "300",
                "Vary": "Origin",
            },
        ),
        (BASIC, headers(Origin="https://evil.example.net", Access_Control_Request_Method="GET"), {}),
        (BASIC, headers(Origin=APP, Access_Control_Request_Method="DELETE"), {}),
        (
            BASIC,
            headers(
                Origin=APP, Access_Control_Request_Method="GET", Access_Control_Request_Headers="x-other"
            ),
            {},
        ),
        (
            OPEN,
            headers(
                Origin="https://any.io",
                Access_Control_Request_Method="PATCH",
                Access_Control_Request_Headers="x-a,x-b",
            ),
            {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "*",
                "Access-Control-Allow-Headers": "*",
            },
        ),
        (  # credentials: wildcards are taken literally by browsers, so the request is echoed
            CREDENTIALED,
            headers(
                Origin="https://app.example.com",
                Access_Control_Request_Method="PATCH",
                Access_Control_Request_Headers="X-A, x-b",
            ),
            {
                "Access-Control-Allow-Origin": "https://app.example.com",
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "PATCH",
                "Access-Control-Allow-Headers": "x-a,x-b",
                "Vary": "Origin",
            },
        ),
        (
            CorsConfig(allow_origins=(APP,), allow_methods=("GET",), max_age=-1),
            headers(Origin=APP, Access_Control_Request_Method="GET"),
            {
                "Access-Control-Allow-Origin": APP,
                "Access-Control-Allow-Methods": "GET",
                "Access-Control-Max-Age": "0",
                "Vary": "Origin",
            },
        ),
        (CorsConfig(), headers(Origin=APP, Access_Control_Request_Method="GET"), {}),  # nothing allowed
    ],
)
def test_preflight_answers(
    config: CorsConfig, request_headers: CIMultiDict[str], expected: dict[str, str]
) -> None:
    response = CorsPolicy(config).preflight(request_headers)
    assert (response.status, response.body) == (204, b"")
    assert as_dict(response) == expected


FUNCTION_RESPONSE = HttpResponse(
    200,
    (
        ("content-type", "application/json"),
        ("Access-Control-Allow-Origin", "https://set-by-the-function.io"),
        ("access-control-allow-credentials", "true"),
        ("X-Request-Id", "r1"),
    ),
    b"{}",
)


@pytest.mark.parametrize(
    ("config", "origin", "added"),
    [
        (
            BASIC,
            APP,
            [
                ("Access-Control-Allow-Origin", APP),
                ("Access-Control-Expose-Headers", "X-Request-Id"),
                ("Vary", "Origin"),
            ],
        ),
        (BASIC, "https://evil.example.net", []),  # not allowed: the function's CORS headers still go
        (BASIC, None, []),  # not a cross-origin request
        (
            OPEN,
            "https://any.io",
            [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "*")],
        ),
        (
            CREDENTIALED,
            "https://app.example.com",
            [
                ("Access-Control-Allow-Origin", "https://app.example.com"),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Expose-Headers", "content-type,X-Request-Id"),  # "*" listed out
                ("Vary", "Origin"),
            ],
        ),
    ],
)
def test_responses_get_the_configured_headers_and_lose_the_functions(
    config: CorsConfig, origin: str | None, added: list[tuple[str, str]]
) -> None:
    request_headers = headers(Origin=origin) if origin else headers()
    response = CorsPolicy(config).apply(request_headers, FUNCTION_RESPONSE)
    assert response.status == 200 and response.body == b"{}"
    assert list(response.headers) == [("content-type", "application/json"), ("X-Request-Id", "r1"), *added]


def test_an_untouched_response_is_returned_as_is() -> None:
    plain = HttpResponse(200, (("content-type", "text/plain"),), b"hi")
    assert CorsPolicy(BASIC).apply(headers(), plain) is plain


def test_origin_is_echoed_as_sent() -> None:
    policy = CorsPolicy(BASIC)
    assert policy.allowed_origin("https://App.Example.com") == "https://App.Example.com"
    assert policy.allowed_origin(None) is None
    assert policy.allowed_origin("") is None


def test_policies_are_shared_per_configuration() -> None:
    assert policy_for(BASIC) is policy_for(CorsConfig(**{f: getattr(BASIC, f) for f in BASIC.__slots__}))
    assert policy_for(BASIC).config == BASIC
