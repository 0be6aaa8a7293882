"""How a function's routes behave over HTTP: who may call them (`auth`), CORS and the event format.

These are function.yaml's `auth`, `cors` and `payload` keys, set for the whole function and
optionally overridden per route. Plain frozen values with no I/O: `fnplat.http_spec` builds them
from YAML, the gateway evaluates them (`fnplat.gateway.cors`, `jwt_auth`, `lambda_authorizer`,
`proxy_event_v1`). `fnplat.domain` imports this module, so it imports nothing of fnplat.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

PayloadVersion = Literal["1.0", "2.0"]
PAYLOAD_VERSIONS: tuple[PayloadVersion, ...] = ("1.0", "2.0")
DEFAULT_PAYLOAD: PayloadVersion = "2.0"

AUTHORIZER_TTL_MAX_S = 3600  # API Gateway's maximum for HTTP API Lambda authorizers
AUTHORIZER_TTL_DEFAULT_S = 300
CORS_MAX_AGE_MAX_S = 86400  # API Gateway's maximum

# RFC 9110 token: a header name.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """An fnplat API key (x-api-key or Bearer), as before: the default."""

    kind: ClassVar[str] = "api_key"


@dataclass(frozen=True, slots=True)
class NoAuth:
    """Anyone may call."""

    kind: ClassVar[str] = "none"


@dataclass(frozen=True, slots=True)
class JwtAuth:
    """A JWT authorizer as HTTP APIs have it: issuer, audiences, the JWKS and required scopes."""

    issuer: str
    audience: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: str | None = None  # an absolute path on the gateway's host
    scopes: tuple[str, ...] = ()  # at least one of them must be granted; empty: none required
    kind: ClassVar[str] = "jwt"

    def __post_init__(self) -> None:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("JwtAuth needs exactly one of jwks_url and jwks_file")
        if not self.audience:
            raise ValueError("JwtAuth needs at least one audience")


@dataclass(frozen=True, slots=True)
class IdentitySource:
    """Where a Lambda authorizer's identity is read: `$request.header.NAME` or `$request.querystring.NAME`."""

    location: Literal["header", "querystring"]
    name: str

    @property
    def expression(self) -> str:
        return f"$request.{self.location}.{self.name}"


AUTHORIZATION_HEADER = IdentitySource("header", "Authorization")

_IDENTITY_RE = re.compile(r"^\$request\.(header|querystring)\.(.+)$")


def parse_identity_source(text: str) -> IdentitySource:
    """`$request.header.Authorization` → IdentitySource; ValueError (with the reason) otherwise."""
    match = _IDENTITY_RE.match(text)
    if match is None:
        raise ValueError(
            f"identity source {text!r} must be $request.header.NAME or $request.querystring.NAME"
        )
    location, name = match.group(1), match.group(2)
    if location == "header" and not HEADER_NAME_RE.match(name):
        raise ValueError(f"identity source {text!r}: {name!r} is not a valid header name")
    if location == "querystring" and (not name or any(c in name for c in "&=# ")):
        raise ValueError(f"identity source {text!r}: {name!r} is not a valid query parameter name")
    return IdentitySource("header" if location == "header" else "querystring", name)


@dataclass(frozen=True, slots=True)
class LambdaAuthorizerAuth:
    """A Lambda authorizer returning the simple response, cached per identity for `ttl` seconds."""

    function: str
    identity: tuple[IdentitySource, ...] = (AUTHORIZATION_HEADER,)
    ttl: int = AUTHORIZER_TTL_DEFAULT_S  # 0 disables caching
    kind: ClassVar[str] = "authorizer"

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("LambdaAuthorizerAuth needs at least one identity source")
        if not 0 <= self.ttl <= AUTHORIZER_TTL_MAX_S:
            raise ValueError(f"ttl must be 0-{AUTHORIZER_TTL_MAX_S} seconds")


AuthConfig = ApiKeyAuth | NoAuth | JwtAuth | LambdaAuthorizerAuth
API_KEY_AUTH = ApiKeyAuth()
NO_AUTH = NoAuth()


@dataclass(frozen=True, slots=True)
class CorsConfig:
    """API Gateway HTTP API's CORS configuration (same names, snake_cased).

    Origins are normalised to lower case. `*` in a list means "any". Validation (done by the
    parser) forbids credentials together with an origin wildcard that matches every host.
    """

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()  # upper case, or "*"
    allow_headers: tuple[str, ...] = ()  # lower case, or "*"
    expose_headers: tuple[str, ...] = ()  # as written, or "*"
    max_age: int | None = None  # seconds; None: no Access-Control-Max-Age header
    allow_credentials: bool = False

    def __post_init__(self) -> None:
        # Credentialed requests from any host would let every site act as the user: the Fetch
        # spec forbids `*` with credentials, and echoing every origin instead is the same hole.
        if self.allow_credentials and any(o == "*" or o.endswith("://*") for o in self.allow_origins):
            raise ValueError("allowCredentials cannot be true with an origin wildcard matching every host")


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The effective HTTP behaviour of one route."""

    auth: AuthConfig = API_KEY_AUTH
    cors: CorsConfig | None = None
    payload: PayloadVersion = DEFAULT_PAYLOAD


DEFAULT_HTTP_CONFIG = HttpConfig()


@dataclass(frozen=True, slots=True)
class RouteOverrides:
    """What a route's mapping form sets; None inherits the function's value, `cors=False` turns CORS off."""

    auth: AuthConfig | None = None
    cors: CorsConfig | Literal[False] | None = None
    payload: PayloadVersion | None = None

    def apply(self, base: HttpConfig) -> HttpConfig:
        """The route's effective configuration on top of the function's."""
        if self.auth is None and self.cors is None and self.payload is None:
            return base
        if self.cors is None:
            cors = base.cors
        elif self.cors is False:
            cors = None
        else:
            cors = self.cors
        return HttpConfig(
            auth=base.auth if self.auth is None else self.auth,
            cors=cors,
            payload=base.payload if self.payload is None else self.payload,
        )


NO_OVERRIDES = RouteOverrides()


def stored_auth_mode(effective: Iterable[AuthConfig]) -> Literal["api_key", "none"]:
    """The one auth mode today's route table can store for a function whose routes have these auths.

    Fails closed until the gateway enforces JWT and Lambda authorizers: only a function whose
    routes are all `none` is stored as open; anything else (a key, a JWT, an authorizer, or a mix)
    is stored as `api_key`, so no route is ever more open than its function.yaml says.
    """
    auths = list(effective)
    if auths and all(isinstance(auth, NoAuth) for auth in auths):
        return "none"
    return "api_key"
