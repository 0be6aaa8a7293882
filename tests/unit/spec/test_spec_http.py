"""function.yaml's `auth`, `cors`, `payload` and the route mapping form (fnplat.http_spec)."""

from __future__ import annotations

import textwrap

import pytest

from fnplat.domain import FunctionSpec
from fnplat.errors import SpecError
from fnplat.http_config import (
    API_KEY_AUTH,
    AUTHORIZATION_HEADER,
    NO_AUTH,
    AuthConfig,
    CorsConfig,
    HttpConfig,
    IdentitySource,
    JwtAuth,
    LambdaAuthorizerAuth,
    RouteOverrides,
    parse_identity_source,
    stored_auth_mode,
)
from fnplat.spec import parse_spec

BASE = "name: hello\nruntime: python3.11\nhandler: app.handler\n"


def spec(extra: str) -> FunctionSpec:
    return parse_spec(BASE + textwrap.dedent(extra), "function.yaml")


def spec_error(extra: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(BASE + textwrap.dedent(extra), "function.yaml")
    return str(caught.value.message)


def test_defaults_are_api_key_no_cors_and_payload_2() -> None:
    parsed = parse_spec(BASE, "f")
    assert parsed.http == HttpConfig(auth=API_KEY_AUTH, cors=None, payload="2.0")
    assert parsed.auth == "api_key"


# --- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("auth: api_key\n", API_KEY_AUTH),
        ("auth: none\n", NO_AUTH),
        (
            """\
            auth:
              jwt:
                issuer: https://idp.example.com/
                audience: my-api
                jwks_url: https://idp.example.com/.well-known/jwks.json
            """,
            JwtAuth(
                issuer="https://idp.example.com/",
                audience=("my-api",),
                jwks_url="https://idp.example.com/.well-known/jwks.json",
            ),
        ),
        (
            """\
            auth:
              jwt: {issuer: iss, audience: [a, b], jwks_file: /etc/fnplat/jwks.json, scopes: [read, write]}
            """,
            JwtAuth(
                issuer="iss", audience=("a", "b"), jwks_file="/etc/fnplat/jwks.json", scopes=("read", "write")
            ),
        ),
        ("auth: {authorizer: my-auth}\n", LambdaAuthorizerAuth(function="my-auth")),
        (
            """\
            auth:
              authorizer: gatekeeper
              identity: [$request.header.X-Token, $request.querystring.tenant]
              ttl: 0
            """,
            LambdaAuthorizerAuth(
                function="gatekeeper",
                identity=(IdentitySource("header", "X-Token"), IdentitySource("querystring", "tenant")),
                ttl=0,
            ),
        ),
        (
            "auth: {authorizer: a, identity: $request.header.Authorization, ttl: 3600}\n",
            LambdaAuthorizerAuth(function="a", identity=(AUTHORIZATION_HEADER,), ttl=3600),
        ),
    ],
)
def test_auth_forms(yaml_text: str, expected: AuthConfig) -> None:
    assert spec(yaml_text).http.auth == expected


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("auth: iam\n", "function.yaml: auth must be api_key, none, {jwt: {...}} or {authorizer: FUNCTION"),
        ("auth: true\n", "got true (a boolean)"),
        ("auth: {jwt: x}\n", "auth.jwt must be a mapping"),
        ("auth: {oidc: {}}\n", "auth must be api_key, none"),
        ("auth: {jwt: {}, other: 1}\n", "auth: unknown key 'other' (allowed: jwt)"),
        ("auth: {jwt: {audience: a, jwks_url: 'https://x'}}\n", "auth.jwt: issuer must be the token issuer"),
        ("auth: {jwt: {issuer: i, jwks_url: 'https://x'}}\n", "auth.jwt: missing required key 'audience'"),
        ("auth: {jwt: {issuer: i, audience: [], jwks_url: 'https://x'}}\n", "needs at least one audience"),
        ("auth: {jwt: {issuer: i, audience: [1], jwks_url: 'https://x'}}\n", "auth.jwt.audience[0] must be"),
        ("auth: {jwt: {issuer: i, audience: a}}\n", "exactly one of jwks_url and jwks_file"),
        (
            "auth: {jwt: {issuer: i, audience: a, jwks_url: 'https://x', jwks_file: /f}}\n",
            "exactly one of jwks_url and jwks_file",
        ),
        ("auth: {jwt: {issuer: i, audience: a, jwks_url: 'ftp://x/k'}}\n", "jwks_url must be an http(s) URL"),
        ("auth: {jwt: {issuer: i, audience: a, jwks_file: k.json}}\n", "jwks_file must be an absolute path"),
        ("auth: {jwt: {issuer: i, audience: a, jwks_file: /k, scopes: read}}\n", "scopes must be a list"),
        ("auth: {jwt: {issuer: i, audience: a, jwks_file: /k, scopes: ['a b']}}\n", "not contain spaces"),
        ("auth: {jwt: {issuer: i, audience: a, jwks_file: /k, iss: x}}\n", "auth.jwt: unknown key 'iss'"),
        ("auth: {authorizer: 'bad name'}\n", "auth.authorizer must be a function name"),
        ("auth: {authorizer: a, ttl: 3601}\n", "auth.ttl must be an integer between 0 and 3600"),
        ("auth: {authorizer: a, ttl: -1}\n", "auth.ttl must be an integer between 0 and 3600"),
        ("auth: {authorizer: a, ttl: yes}\n", "got true (a boolean)"),
        ("auth: {authorizer: a, identity: []}\n", "auth.identity needs at least one identity source"),
        (
            "auth: {authorizer: a, identity: [$request.body.x]}\n",
            "auth.identity[0]: identity source '$request.body.x' must be $request.header.NAME",
        ),
        ("auth: {authorizer: a, identity: ['$request.header.Bad Name']}\n", "is not a valid header name"),
        ("auth: {authorizer: a, extra: 1}\n", "unknown key 'extra' (allowed: authorizer, identity, ttl)"),
    ],
)
def test_auth_errors_name_the_key(yaml_text: str, expected: str) -> None:
    assert expected in spec_error(yaml_text)


def test_repeated_identity_sources_collapse() -> None:
    parsed = spec("auth: {authorizer: a, identity: [$request.header.A, $request.header.A]}\n")
    assert isinstance(parsed.http.auth, LambdaAuthorizerAuth)
    assert parsed.http.auth.identity == (IdentitySource("header", "A"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$request.header.Authorization", IdentitySource("header", "Authorization")),
        ("$request.querystring.token", IdentitySource("querystring", "token")),
    ],
)
def test_identity_source_expressions_round_trip(text: str, expected: IdentitySource) -> None:
    assert parse_identity_source(text) == expected
    assert expected.expression == text


@pytest.mark.parametrize(
    "text", ["$request.header.", "$request.querystring.a=b", "$context.authorizer.x", "Authorization"]
)
def test_identity_source_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="identity source"):
        parse_identity_source(text)


# --- cors -------------------------------------------------------------------------------------


def test_cors_is_normalised() -> None:
    parsed = spec(
        """\
        cors:
          allowOrigins: [https://App.Example.com/, "https://*.example.org"]
          allowMethods: [get, POST, get]
          allowHeaders: [Authorization, X-Custom]
          exposeHeaders: [X-Request-Id]
          maxAge: 300
          allowCredentials: true
        """
    )
    assert parsed.http.cors == CorsConfig(
        allow_origins=("https://app.example.com", "https://*.example.org"),
        allow_methods=("GET", "POST"),
        allow_headers=("authorization", "x-custom"),
        expose_headers=("X-Request-Id",),
        max_age=300,
        allow_credentials=True,
    )


def test_cors_lists_accept_one_string_and_wildcards() -> None:
    parsed = spec("cors: {allowOrigins: '*', allowMethods: '*', allowHeaders: '*', exposeHeaders: '*'}\n")
    assert parsed.http.cors == CorsConfig(("*",), ("*",), ("*",), ("*",))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("cors: true\n", "cors must be a mapping"),
        ("cors: {allow_origins: ['*']}\n", "cors: unknown key 'allow_origins' (allowed: allowOrigins"),
        ("cors: {allowOrigins: [example.com]}\n", "cors.allowOrigins[0]: 'example.com' must be *"),
        ("cors: {allowOrigins: ['https://a.com/path']}\n", "cors.allowOrigins[0]"),
        ("cors: {allowOrigins: ['https://a.*.com']}\n", "cors.allowOrigins[0]"),
        ("cors: {allowOrigins: ['']}\n", "cors.allowOrigins[0] must be a non-empty string"),
        ("cors: {allowMethods: ['GET POST']}\n", "cors.allowMethods[0]: 'GET POST' is not an HTTP method"),
        ("cors: {allowHeaders: ['x y']}\n", "cors.allowHeaders[0]: 'x y' is not a header name"),
        ("cors: {exposeHeaders: ['a:b']}\n", "cors.exposeHeaders[0]: 'a:b' is not a header name"),
        ("cors: {maxAge: 86401}\n", "cors.maxAge must be an integer between -1 and 86400"),
        ("cors: {maxAge: '300'}\n", "cors.maxAge must be an integer"),
        ("cors: {allowCredentials: 'yes'}\n", "cors.allowCredentials must be true or false"),
        ("cors: {allowOrigins: ['*'], allowCredentials: true}\n", "allowCredentials cannot be true when"),
        ("cors: {allowOrigins: ['https://*'], allowCredentials: true}\n", "allowCredentials cannot be true"),
    ],
)
def test_cors_errors_name_the_key(yaml_text: str, expected: str) -> None:
    assert expected in spec_error(yaml_text)


def test_credentials_with_a_subdomain_wildcard_are_allowed() -> None:
    parsed = spec("cors: {allowOrigins: ['https://*.example.com'], allowCredentials: true}\n")
    assert parsed.http.cors is not None and parsed.http.cors.allow_credentials is True


# --- payload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("payload: '1.0'\n", "1.0"),
        ("payload: 1.0\n", "1.0"),
        ("payload: '2.0'\n", "2.0"),
        ("payload: 2.0\n", "2.0"),
    ],
)
def test_payload_versions(yaml_text: str, expected: str) -> None:
    assert spec(yaml_text).http.payload == expected


@pytest.mark.parametrize("value", ["'1'", "1", "3.0", "'v2'", "true"])
def test_payload_errors(value: str) -> None:
    assert 'function.yaml: payload must be "1.0" or "2.0"' in spec_error(f"payload: {value}\n")


# --- routes with overrides ---------------------------------------------------------------------


FULL = """\
auth: {jwt: {issuer: iss, audience: aud, jwks_file: /k.json}}
cors: {allowOrigins: ['https://app.example.com']}
routes:
  - GET /items
  - {route: POST /items, auth: api_key, payload: "1.0"}
  - {route: GET /health, auth: none, cors: false}
  - route: GET /public
    cors: {allowOrigins: ['*']}
"""


def test_route_mappings_override_the_function_level() -> None:
    parsed = parse_spec(BASE + FULL, "f")
    jwt = JwtAuth(issuer="iss", audience=("aud",), jwks_file="/k.json")
    function_cors = CorsConfig(allow_origins=("https://app.example.com",))
    assert [r.route_key for r in parsed.routes] == ["GET /items", "POST /items", "GET /health", "GET /public"]
    effective = [parsed.route_http(route) for route in parsed.routes]
    assert effective == [
        HttpConfig(auth=jwt, cors=function_cors, payload="2.0"),
        HttpConfig(auth=API_KEY_AUTH, cors=function_cors, payload="1.0"),
        HttpConfig(auth=NO_AUTH, cors=None, payload="2.0"),
        HttpConfig(auth=jwt, cors=CorsConfig(allow_origins=("*",)), payload="2.0"),
    ]
    assert parsed.routes[0].http == RouteOverrides()


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ("  - {auth: none}\n", "routes[0]: 'route' must be a string"),
        ("  - {route: 5}\n", "routes[0]: 'route' must be a string like 'GET /items/{id}', got 5"),
        ("  - {route: GET /a, auth: open}\n", "function.yaml: routes[0].auth must be api_key, none"),
        ("  - GET /ok\n  - {route: GET /b, cors: true}\n", "function.yaml: routes[1].cors must be a mapping"),
        ("  - {route: GET /a, payload: 3}\n", 'routes[0].payload must be "1.0" or "2.0"'),
        ("  - {route: GET /a, method: GET}\n", "routes[0]: unknown key 'method'"),
        ("  - {route: GET /v1/a}\n", "routes[0]: route 'GET /v1/a': path prefix /v1 is reserved"),
        ("  - GET /a\n  - {route: get /a}\n", "routes[1]: 'GET /a' duplicates 'GET /a'"),
    ],
)
def test_route_mapping_errors(routes: str, expected: str) -> None:
    assert expected in spec_error("routes:\n" + routes)


# --- what today's route table stores (fail closed) -------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "stored"),
    [
        ("auth: none\nroutes: [GET /a, GET /b]\n", "none"),
        ("auth: api_key\nroutes: [GET /a]\n", "api_key"),
        ("auth: {authorizer: x}\nroutes: [GET /a]\n", "api_key"),
        ("auth: {jwt: {issuer: i, audience: a, jwks_file: /k}}\nroutes: [GET /a]\n", "api_key"),
        ("auth: none\nroutes: [GET /a, {route: GET /b, auth: api_key}]\n", "api_key"),
        ("auth: none\nroutes: [GET /a, {route: GET /b, auth: {authorizer: x}}]\n", "api_key"),
        ("auth: api_key\nroutes: [{route: GET /a, auth: none}]\n", "none"),
        ("auth: none\n", "none"),
        ("auth: {authorizer: x}\n", "api_key"),
    ],
)
def test_stored_auth_mode_is_none_only_when_every_route_is_open(yaml_text: str, stored: str) -> None:
    assert spec(yaml_text).auth == stored


def test_stored_auth_mode_of_nothing_is_closed() -> None:
    assert stored_auth_mode([]) == "api_key"


def test_config_invariants_hold_without_the_parser() -> None:
    with pytest.raises(ValueError, match="exactly one of jwks_url and jwks_file"):
        JwtAuth(issuer="i", audience=("a",))
    with pytest.raises(ValueError, match="at least one audience"):
        JwtAuth(issuer="i", audience=(), jwks_file="/k")
    with pytest.raises(ValueError, match="ttl"):
        LambdaAuthorizerAuth(function="f", ttl=4000)
    with pytest.raises(ValueError, match="identity source"):
        LambdaAuthorizerAuth(function="f", identity=())
    for origin in ("*", "https://*", "http://*"):
        with pytest.raises(ValueError, match="allowCredentials"):
            CorsConfig(allow_origins=(origin,), allow_credentials=True)
    assert CorsConfig(allow_origins=("https://*.example.com",), allow_credentials=True).allow_credentials
