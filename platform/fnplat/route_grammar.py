"""The grammar of function routes, in one place: what a route is, which paths are the platform's
own, and when two routes are the same route (their conflict shape).

A route is `METHOD /path` or `$default`. A path is `/` or segments separated by `/`, each a literal
(RFC 3986 path characters, percent-encoding allowed), a parameter `{name}`, or a final greedy
parameter `{name+}`. function.yaml (spec.py), the gateway's route table (gateway/routing.py) and
the store (the `shape` column of `routes`, unique) all use this module, so a route accepted at
deploy time is one the gateway can serve, and two routes the gateway could not tell apart can
never both be stored.

Pure: no I/O, no framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from fnplat.domain import RouteSpec

DEFAULT_ROUTE = "$default"
ANY_METHOD = "ANY"
ROUTE_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
# Paths the platform serves itself; a function route there would shadow or be shadowed.
RESERVED_PREFIXES: tuple[str, ...] = ("/v1", "/2015-03-31", "/metrics", "/healthz", "/readyz")

_PARAM_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PARAM_RE = re.compile(r"^\{(" + _PARAM_NAME + r")(\+?)\}$")
# RFC 3986 pchar, minus `{` `}` which only appear in parameters; `%` only as a percent-escape.
_LITERAL_SEGMENT_RE = re.compile(r"^(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+$")
MAX_PATH_LENGTH = 1024  # characters; with valid escapes a shape is never longer than its path
# Characters a shape keeps as they are; everything else in a literal is percent-encoded.
_SHAPE_SAFE = "!$&'()*+,;=:@-._~"


class InvalidRoute(ValueError):
    """A route or route path that is not valid; the message says what is wrong."""


# Kept for the gateway's vocabulary: a path problem is an invalid route.
InvalidRoutePath = InvalidRoute


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed route path: per segment either a literal (str) or a parameter name (None literal)."""

    literals: tuple[str | None, ...]  # decoded literal text of each segment, None where a parameter
    names: tuple[str | None, ...]  # parameter name of each segment, None where a literal
    greedy: str | None  # name of the trailing `{name+}`, which is not part of literals/names

    @property
    def shape(self) -> tuple[tuple[str | None, ...], bool]:
        """Identity for conflicts: parameter names do not matter, positions do."""
        return self.literals, self.greedy is not None

    @property
    def priority(self) -> tuple[int, tuple[bool, ...]]:
        """Higher sorts first: more literal segments, then literals further left."""
        flags = tuple(lit is not None for lit in self.literals)
        return sum(flags), flags


def is_reserved_path(path: str) -> bool:
    """True when `path` is (under) one of the platform's own prefixes."""
    return any(path == p or path.startswith(p + "/") for p in RESERVED_PREFIXES)


def path_problem(path: str) -> str | None:
    """What is wrong with a route path, or None when it is valid (`$default` is not a path)."""
    if not path.startswith("/"):
        return "path must start with '/'"
    if len(path) > MAX_PATH_LENGTH:
        return f"path is longer than {MAX_PATH_LENGTH} characters"
    for prefix in RESERVED_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return f"path prefix {prefix} is reserved by fnplat"
    if path == "/":
        return None
    segments = path[1:].split("/")
    seen_params: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment:
            return "path has an empty segment ('//' or a trailing '/')"
        param = _PARAM_RE.match(segment)
        if param:
            name, greedy = param.group(1), param.group(2)
            if greedy and index != len(segments) - 1:
                return f"greedy parameter {segment} must be the last segment"
            if name in seen_params:
                return f"parameter {{{name}}} appears twice"
            seen_params.add(name)
        elif "{" in segment or "}" in segment:
            return f"segment {segment!r} must be a literal, {{name}} or a final {{name+}}"
        elif not _LITERAL_SEGMENT_RE.match(segment):
            return (
                f"segment {segment!r} has characters not allowed in a URL path"
                " ('%' only as a percent-escape like %20)"
            )
        elif "%" in segment and not _is_utf8_escaped(segment):
            return f"segment {segment!r}: percent-escapes must encode UTF-8 text"
    return None


def _is_utf8_escaped(segment: str) -> bool:
    try:
        unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def parse_route_path(path: str) -> PathTemplate:
    """Parse `/a/{b}/{c+}`; raise InvalidRoute naming the problem. `$default` is not a template."""
    problem = path_problem(path)
    if problem is not None:
        raise InvalidRoute(f"route path {path!r}: {problem}")
    literals: list[str | None] = []
    names: list[str | None] = []
    greedy: str | None = None
    # `/` is one empty segment, as a request for `/` splits.
    for segment in path[1:].split("/"):
        param = _PARAM_RE.match(segment)
        if param is None:
            # Requests are matched on decoded segments, so a percent-encoded literal is decoded too.
            literals.append(unquote(segment) if "%" in segment else segment)
            names.append(None)
        elif param.group(2):
            greedy = param.group(1)
        else:
            literals.append(None)
            names.append(param.group(1))
    return PathTemplate(tuple(literals), tuple(names), greedy)


def parse_route(text: str) -> RouteSpec:
    """Parse `"METHOD /path"` or `"$default"`. Raises InvalidRoute naming the route."""
    if not isinstance(text, str):
        raise InvalidRoute(f"route must be a string like 'GET /items/{{id}}', got {type(text).__name__}")
    stripped = text.strip()
    if stripped == DEFAULT_ROUTE:
        return RouteSpec(method=ANY_METHOD, path=DEFAULT_ROUTE)
    parts = stripped.split()
    if len(parts) != 2:
        raise InvalidRoute(f"route {text!r} must be 'METHOD /path' or '$default'")
    method, path = parts[0].upper(), parts[1]
    if method not in ROUTE_METHODS:
        raise InvalidRoute(
            f"route {text!r}: method must be one of {', '.join(ROUTE_METHODS)}, got {parts[0]!r}"
        )
    problem = path_problem(path)
    if problem:
        raise InvalidRoute(f"route {text!r}: {problem}")
    return RouteSpec(method=method, path=path)


def route_shape(method: str, path: str) -> str:
    """The route's conflict shape: routes with equal shapes match the same requests and cannot
    coexist. Parameter names do not count (`GET /a/{x}` and `GET /a/{y}` are both `GET /a/{}`),
    literals count as the gateway matches them (decoded: `/caf%C3%A9` and `/caf%c3%a9` are one
    literal), the method counts (`GET` and `ANY` on one path are two routes).

    Literals are re-encoded canonically, so a decoded `/` or `{` cannot forge another shape.
    Raises InvalidRoute for an invalid path.
    """
    method = method.upper()
    if path == DEFAULT_ROUTE:
        return f"{method} {DEFAULT_ROUTE}"
    template = parse_route_path(path)
    parts = ["{}" if lit is None else quote(lit, safe=_SHAPE_SAFE) for lit in template.literals]
    if template.greedy is not None:
        parts.append("{+}")
    return f"{method} /" + "/".join(parts)
