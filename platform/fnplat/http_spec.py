"""function.yaml's `auth`, `cors` and `payload` keys, and the mapping form of a route.

Parses YAML values into `fnplat.http_config` values. Every problem raises SpecError with the key
path (`routes[1].auth.jwt.audience: ...`), because that line is all a user sees; `fnplat.spec`
prefixes the file name.

    auth: api_key | none
        | {jwt: {issuer: URL, audience: ID | [IDs], jwks_url: URL | jwks_file: /abs/path, scopes: [..]}}
        | {authorizer: FUNCTION, identity: [$request.header.Authorization], ttl: 300}
    cors: {allowOrigins: [..], allowMethods: [..], allowHeaders: [..], exposeHeaders: [..],
           maxAge: 300, allowCredentials: false}
    payload: "2.0" | "1.0"
    routes: ["GET /x", {route: "POST /y", auth: none, cors: false, payload: "1.0"}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from fnplat.errors import SpecError
from fnplat.http_config import (
    API_KEY_AUTH,
    AUTHORIZATION_HEADER,
    AUTHORIZER_TTL_DEFAULT_S,
    AUTHORIZER_TTL_MAX_S,
    CORS_MAX_AGE_MAX_S,
    DEFAULT_PAYLOAD,
    HEADER_NAME_RE,
    NO_AUTH,
    AuthConfig,
    CorsConfig,
    HttpConfig,
    IdentitySource,
    JwtAuth,
    LambdaAuthorizerAuth,
    PayloadVersion,
    RouteOverrides,
    parse_identity_source,
)

AUTH_MODES: tuple[str, ...] = ("api_key", "none")
JWT_KEYS: tuple[str, ...] = ("issuer", "audience", "jwks_url", "jwks_file", "scopes")
AUTHORIZER_KEYS: tuple[str, ...] = ("authorizer", "identity", "ttl")
CORS_KEYS: tuple[str, ...] = (
    "allowOrigins",
    "allowMethods",
    "allowHeaders",
    "exposeHeaders",
    "maxAge",
    "allowCredentials",
)
ROUTE_KEYS: tuple[str, ...] = ("route", "auth", "cors", "payload")

# Same rule as a function name (fnplat.domain.FUNCTION_NAME_RE); repeated so this module stays
# importable by fnplat.domain's dependencies.
_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$")
# `*`, `scheme://*`, `scheme://host[:port]` and (beyond API Gateway) `scheme://*.domain[:port]`.
_ORIGIN_RE = re.compile(
    r"^(\*|[a-z][a-z0-9+.-]*://(\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:[0-9]{1,5})?|\[[0-9a-f:.]+\](:[0-9]{1,5})?))$"
)
_MAX_LIST = 100  # entries of one CORS list or identity sources; a guard against pasted nonsense


def show_value(value: object) -> str:
    """A value as the user wrote it, with its YAML type when that is the surprise (used by fnplat.spec)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _check_keys(value: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise SpecError(f"{where}: unknown key {show_value(key)} (allowed: {', '.join(allowed)})")


def _strings(value: object, where: str, *, allow_single: bool) -> tuple[str, ...]:
    """A list of non-empty strings (or one string when `allow_single`)."""
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list of strings, got {show_value(value)}")
    if len(value) > _MAX_LIST:
        raise SpecError(f"{where} has {len(value)} entries, more than {_MAX_LIST}")
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise SpecError(f"{where}[{index}] must be a non-empty string, got {show_value(item)}")
        items.append(item.strip())
    return tuple(items)


# --- auth -------------------------------------------------------------------------------------


def parse_auth(value: object, where: str = "auth") -> AuthConfig:
    if value is None or value == "api_key":
        return API_KEY_AUTH
    if value == "none":
        return NO_AUTH
    if isinstance(value, Mapping):
        if "jwt" in value:
            _check_keys(value, ("jwt",), where)
            return _parse_jwt(value["jwt"], f"{where}.jwt")
        if "authorizer" in value:
            _check_keys(value, AUTHORIZER_KEYS, where)
            return _parse_authorizer(value, where)
    raise SpecError(
        f"{where} must be api_key, none, {{jwt: {{...}}}} or {{authorizer: FUNCTION, ...}}, "
        f"got {show_value(value)}"
    )


def _parse_jwt(value: object, where: str) -> JwtAuth:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a mapping (issuer, audience, jwks_url or jwks_file, scopes)")
    _check_keys(value, JWT_KEYS, where)
    issuer = value.get("issuer")
    if not isinstance(issuer, str) or not issuer.strip():
        raise SpecError(f"{where}: issuer must be the token issuer (its `iss`), got {show_value(issuer)}")
    if "audience" not in value:
        raise SpecError(f"{where}: missing required key 'audience'")
    audience = _strings(value["audience"], f"{where}.audience", allow_single=True)
    if not audience:
        raise SpecError(f"{where}.audience needs at least one audience")
    jwks_url, jwks_file = value.get("jwks_url"), value.get("jwks_file")
    if (jwks_url is None) == (jwks_file is None):
        raise SpecError(f"{where}: exactly one of jwks_url and jwks_file is needed")
    if jwks_url is not None and (not isinstance(jwks_url, str) or not _URL_RE.match(jwks_url)):
        raise SpecError(f"{where}.jwks_url must be an http(s) URL, got {show_value(jwks_url)}")
    if jwks_file is not None and (not isinstance(jwks_file, str) or not jwks_file.startswith("/")):
        raise SpecError(
            f"{where}.jwks_file must be an absolute path on the gateway's host, got {show_value(jwks_file)}"
        )
    scopes: tuple[str, ...] = ()
    if value.get("scopes") is not None:
        scopes = _strings(value["scopes"], f"{where}.scopes", allow_single=False)
        for scope in scopes:
            if any(c.isspace() for c in scope):
                raise SpecError(f"{where}.scopes: {scope!r} must not contain spaces")
    return JwtAuth(
        issuer=issuer.strip(), audience=audience, jwks_url=jwks_url, jwks_file=jwks_file, scopes=scopes
    )


def _parse_authorizer(value: Mapping[Any, Any], where: str) -> LambdaAuthorizerAuth:
    function = value["authorizer"]
    if not isinstance(function, str) or not _FUNCTION_NAME_RE.match(function):
        raise SpecError(f"{where}.authorizer must be a function name, got {show_value(function)}")
    identity: tuple[IdentitySource, ...] = (AUTHORIZATION_HEADER,)
    if value.get("identity") is not None:
        expressions = _strings(value["identity"], f"{where}.identity", allow_single=True)
        if not expressions:
            raise SpecError(f"{where}.identity needs at least one identity source")
        sources: list[IdentitySource] = []
        for index, expression in enumerate(expressions):
            try:
                sources.append(parse_identity_source(expression))
            except ValueError as exc:
                raise SpecError(f"{where}.identity[{index}]: {exc}") from None
        identity = tuple(dict.fromkeys(sources))  # a repeated source adds nothing
    ttl = value.get("ttl", AUTHORIZER_TTL_DEFAULT_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= AUTHORIZER_TTL_MAX_S:
        raise SpecError(
            f"{where}.ttl must be an integer between 0 and {AUTHORIZER_TTL_MAX_S} seconds, "
            f"got {show_value(ttl)}"
        )
    return LambdaAuthorizerAuth(function=function, identity=identity, ttl=ttl)


# --- cors -------------------------------------------------------------------------------------


def parse_cors(value: object, where: str = "cors") -> CorsConfig:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a mapping ({', '.join(CORS_KEYS)}), got {show_value(value)}")
    _check_keys(value, CORS_KEYS, where)

    def listed(key: str) -> tuple[str, ...]:
        raw = value.get(key)
        return () if raw is None else _strings(raw, f"{where}.{key}", allow_single=True)

    origins = tuple(origin.lower().rstrip("/") for origin in listed("allowOrigins"))
    for index, origin in enumerate(origins):
        if not _ORIGIN_RE.match(origin):
            raise SpecError(
                f"{where}.allowOrigins[{index}]: {origin!r} must be *, scheme://host[:port], "
                "scheme://* or scheme://*.domain"
            )
    methods = tuple(method.upper() for method in listed("allowMethods"))
    for index, method in enumerate(methods):
        if method != "*" and not (HEADER_NAME_RE.match(method) and len(method) <= 64):
            raise SpecError(f"{where}.allowMethods[{index}]: {method!r} is not an HTTP method")
    allow_headers = tuple(header.lower() for header in listed("allowHeaders"))
    expose_headers = listed("exposeHeaders")
    for key, headers in (("allowHeaders", allow_headers), ("exposeHeaders", expose_headers)):
        for index, header in enumerate(headers):
            if header != "*" and not HEADER_NAME_RE.match(header):
                raise SpecError(f"{where}.{key}[{index}]: {header!r} is not a header name")
    max_age = value.get("maxAge")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int) or not -1 <= max_age <= CORS_MAX_AGE_MAX_S
    ):
        raise SpecError(
            f"{where}.maxAge must be an integer between -1 and {CORS_MAX_AGE_MAX_S} seconds, "
            f"got {show_value(max_age)}"
        )
    credentials = value.get("allowCredentials", False)
    if not isinstance(credentials, bool):
        raise SpecError(f"{where}.allowCredentials must be true or false, got {show_value(credentials)}")
    if credentials:
        # Credentialed requests from any host would let every site act as the user (the Fetch spec
        # forbids `*` with credentials; reflecting every origin instead would be the same hole).
        for origin in origins:
            if origin == "*" or origin.endswith("://*"):
                raise SpecError(
                    f"{where}: allowCredentials cannot be true when allowOrigins has {origin!r}: "
                    "list the origins (scheme://*.domain is allowed)"
                )
    return CorsConfig(
        allow_origins=tuple(dict.fromkeys(origins)),
        allow_methods=tuple(dict.fromkeys(methods)),
        allow_headers=tuple(dict.fromkeys(allow_headers)),
        expose_headers=tuple(dict.fromkeys(expose_headers)),
        max_age=max_age,
        allow_credentials=credentials,
    )


def parse_route_cors(value: object, where: str) -> CorsConfig | Literal[False]:
    """A route's `cors`: a mapping, or `false` to turn the function's CORS off for this route."""
    if value is False:
        return False
    return parse_cors(value, where)


# --- payload ----------------------------------------------------------------------------------


def parse_payload(value: object, where: str = "payload") -> PayloadVersion:
    if value is None:
        return DEFAULT_PAYLOAD
    if value == "1.0" or (type(value) is float and value == 1.0):  # YAML reads an unquoted 1.0 as a float
        return "1.0"
    if value == "2.0" or (type(value) is float and value == 2.0):
        return "2.0"
    raise SpecError(f'{where} must be "1.0" or "2.0", got {show_value(value)}')


# --- function level and routes ----------------------------------------------------------------


def parse_http_config(document: Mapping[Any, Any]) -> HttpConfig:
    """The function-level `auth`, `cors` and `payload` of a function.yaml document."""
    cors = document.get("cors")
    return HttpConfig(
        auth=parse_auth(document.get("auth")),
        cors=None if cors is None else parse_cors(cors),
        payload=parse_payload(document.get("payload")),
    )


def parse_route_item(item: object, where: str) -> tuple[object, RouteOverrides]:
    """A routes entry: `"GET /x"`, or `{route: "GET /x", auth: .., cors: .., payload: ..}`.

    Returns the route text (for fnplat.spec.parse_route, which also names a non-string) and the
    route's overrides.
    """
    if not isinstance(item, Mapping):
        return item, RouteOverrides()
    _check_keys(item, ROUTE_KEYS, where)
    text = item.get("route")
    if not isinstance(text, str):
        raise SpecError(f"{where}: 'route' must be a string like 'GET /items/{{id}}', got {show_value(text)}")
    cors_value = item.get("cors")
    return text, RouteOverrides(
        auth=None if item.get("auth") is None else parse_auth(item["auth"], f"{where}.auth"),
        cors=None if cors_value is None else parse_route_cors(cors_value, f"{where}.cors"),
        payload=None if item.get("payload") is None else parse_payload(item["payload"], f"{where}.payload"),
    )
