"""CORS as API Gateway's HTTP APIs do it: preflights answered by the gateway, headers added to
function responses, and the function's own CORS headers ignored (docs: http-api-cors).

- A **preflight** is `OPTIONS` with `Origin` and `Access-Control-Request-Method`. The gateway
  answers it itself, 204 with no body, without authorization and without calling the function.
  It is allowed when the origin, the requested method and every requested header are allowed;
  then the response carries `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers`,
  `-Max-Age` and `-Allow-Credentials` as configured. Otherwise the 204 has no CORS headers and
  the browser stops there.
- Any other request with an allowed `Origin` gets `Access-Control-Allow-Origin`,
  `-Allow-Credentials` and `-Expose-Headers` added to the function's response; CORS headers the
  function set are removed either way (the configuration is the one source of truth).
- Origins: `*` (any), `https://*` / `http://*` (any origin of that scheme), exact
  `scheme://host[:port]`, and beyond API Gateway `scheme://*.example.com` (any subdomain).
  Compared case-insensitively.
- Wildcards and credentials: `Access-Control-Allow-Origin: *` is sent only without credentials;
  otherwise the request's origin is echoed with `Vary: Origin`. With credentials a browser
  takes `*` in the other headers literally, so `*` methods/headers echo what was requested and
  `*` expose-headers lists the response's header names. (The configuration parser already
  refuses credentials with an any-host origin wildcard.)

Wiring: a preflight is about the route of the *requested* method (`preflight_method`), so look
the route up with that method and answer with its policy. A route without CORS, or a path
without a route, gets the OPTIONS request as an ordinary request. Unlike API Gateway, an `ANY`
or `$default` route with an authorizer does not swallow preflights: only an explicit `OPTIONS`
route does (API Gateway sends preflights to such routes and makes users add an unauthorized
`OPTIONS /{proxy+}` route to get around it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from fnplat.gateway.responses import HttpResponse
from fnplat.http_config import CorsConfig

_PREFIX = "access-control-"


def preflight_method(method: str, headers: Mapping[str, str]) -> str | None:
    """The method a preflight asks about, or None when the request is not a preflight.
    `headers` must look names up case-insensitively (aiohttp's CIMultiDictProxy)."""
    if method != "OPTIONS" or not headers.get("origin"):
        return None
    requested = headers.get("access-control-request-method", "").strip()
    return requested.upper() or None


def _origin_matches(pattern: str, origin: str) -> bool:
    if pattern == "*":
        return True
    scheme, sep, host = pattern.partition("://")
    if host == "*":
        return origin.startswith(scheme + sep) and len(origin) > len(scheme + sep)
    if host.startswith("*."):
        prefix = scheme + sep
        if not origin.startswith(prefix):
            return False
        rest = origin[len(prefix) :]
        suffix = host[1:]  # ".example.com[:port]"
        return rest.endswith(suffix) and len(rest) > len(suffix) and "/" not in rest
    return origin == pattern


class CorsPolicy:
    """One CORS configuration, with its header values built once."""

    __slots__ = ("_any_header", "_any_method", "_config", "_credentials", "_headers", "_max_age", "_methods")

    def __init__(self, config: CorsConfig) -> None:
        self._config = config
        self._credentials = config.allow_credentials
        self._any_method = "*" in config.allow_methods
        self._any_header = "*" in config.allow_headers
        self._methods = frozenset(config.allow_methods)
        self._headers = frozenset(config.allow_headers)
        age = config.max_age
        self._max_age = None if age is None else str(max(age, 0))  # -1 (API Gateway's "no caching") is 0

    @property
    def config(self) -> CorsConfig:
        return self._config

    def allowed_origin(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for `origin`, or None if it is not allowed."""
        if not origin:
            return None
        lowered = origin.strip().lower()
        for pattern in self._config.allow_origins:
            if _origin_matches(pattern, lowered):
                return "*" if pattern == "*" and not self._credentials else origin.strip()
        return None

    def preflight(self, headers: Mapping[str, str]) -> HttpResponse:
        """The gateway's answer to a preflight (`preflight_method` returned a method)."""
        allow_origin = self.allowed_origin(headers.get("origin"))
        method = headers.get("access-control-request-method", "").strip().upper()
        requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")]
        requested = [h for h in requested if h]
        if (
            allow_origin is None
            or not method
            or not (self._any_method or method in self._methods)
            or not (self._any_header or all(h in self._headers for h in requested))
        ):
            return HttpResponse(204, (), b"")
        out: list[tuple[str, str]] = [("Access-Control-Allow-Origin", allow_origin)]
        if self._credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        if self._any_method:
            out.append(("Access-Control-Allow-Methods", method if self._credentials else "*"))
        else:
            out.append(("Access-Control-Allow-Methods", ",".join(self._config.allow_methods)))
        if self._any_header:
            if requested:
                out.append(
                    ("Access-Control-Allow-Headers", ",".join(requested) if self._credentials else "*")
                )
        elif self._config.allow_headers:
            out.append(("Access-Control-Allow-Headers", ",".join(self._config.allow_headers)))
        if self._max_age is not None:
            out.append(("Access-Control-Max-Age", self._max_age))
        if allow_origin != "*":
            out.append(("Vary", "Origin"))
        return HttpResponse(204, tuple(out), b"")

    def actual_headers(
        self, request_headers: Mapping[str, str], response_header_names: Iterable[str] = ()
    ) -> tuple[tuple[str, str], ...]:
        """The CORS headers for the response to any other request (none when the origin is not allowed)."""
        allow_origin = self.allowed_origin(request_headers.get("origin"))
        if allow_origin is None:
            return ()
        out: list[tuple[str, str]] = [("Access-Control-Allow-Origin", allow_origin)]
        if self._credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        expose = self._config.expose_headers
        if "*" in expose and self._credentials:
            names = dict.fromkeys(n for n in response_header_names if not n.lower().startswith(_PREFIX))
            if names:
                out.append(("Access-Control-Expose-Headers", ",".join(names)))
        elif expose:
            out.append(("Access-Control-Expose-Headers", ",".join(expose)))
        if allow_origin != "*":
            out.append(("Vary", "Origin"))
        return tuple(out)

    def apply(self, request_headers: Mapping[str, str], response: HttpResponse) -> HttpResponse:
        """The function's response with its own CORS headers replaced by the configured ones."""
        kept = tuple((n, v) for n, v in response.headers if not n.lower().startswith(_PREFIX))
        added = self.actual_headers(request_headers, (n for n, _ in kept))
        if not added and len(kept) == len(response.headers):
            return response
        return HttpResponse(response.status, kept + added, response.body)


@lru_cache(maxsize=1024)
def policy_for(config: CorsConfig) -> CorsPolicy:
    """The (shared) policy of a configuration; configurations are frozen, hence cacheable."""
    return CorsPolicy(config)
