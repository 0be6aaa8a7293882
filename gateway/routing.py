"""Route matching with the semantics of API Gateway HTTP APIs.

A route path is `/literal/{param}/{greedy+}` or the literal `$default`. For one request:

1. the request path selects a *path template*, most specific first:
   exact (all literal) → `{param}` templates (more literal segments win; on a tie, the one whose
   first literal comes earlier) → greedy `{name+}` templates (same ordering) → `$default`;
2. within a template, the request method selects the route, and `ANY` takes every method not
   defined for that template. A template whose path matches but which defines neither the
   method nor `ANY` does not stop the search: a less specific template may still take it.
   No match at all is `None` (the gateway answers 404, as HTTP APIs do; there is no 405).

The grammar itself (what a valid path is, the conflict shape) is `fnplat.route_grammar`.

Segments are compared exactly: `/pets/` (a trailing empty segment) is not `/pets`, `{param}`
never matches an empty segment and `{name+}` needs at least one character. Matching runs on the
raw (percent-encoded) path split at `/`, then each segment is decoded, so `%2F` stays inside a
path parameter. Everything is precompiled at `build` (all-literal paths in a dict, the rest in a
trie of segments); `match` costs a few dict lookups per segment whatever the number of routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote

from fnplat.domain import Route
from fnplat.route_grammar import ANY_METHOD, DEFAULT_ROUTE, InvalidRoute, PathTemplate, parse_route_path


class DuplicateRoute(ValueError):
    """Two routes with the same method on the same path shape (`/a/{x}` and `/a/{y}` are one shape)."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


def _decode_segments(raw_path: str) -> list[str]:
    segments = raw_path[1:].split("/")
    if "%" in raw_path:
        return [unquote(s) for s in segments]
    return segments


@dataclass(frozen=True, slots=True)
class _CompiledTemplate:
    template: PathTemplate
    methods: Mapping[str, Route]  # method (or ANY) → route
    priority: tuple[int, tuple[bool, ...]]
    greedy_name: str  # "" unless the template ends in {name+}

    def route_for(self, method: str) -> Route | None:
        return self.methods.get(method) or self.methods.get(ANY_METHOD)

    def bind(self, segments: list[str]) -> dict[str, str]:
        """Path parameters from segments already known to fit the template's prefix."""
        return {
            name: seg for name, seg in zip(self.template.names, segments, strict=False) if name is not None
        }


# A template that fits the request, with the route it gives for the request's method.
_Candidate = tuple[_CompiledTemplate, Route]


class _Node:
    """One segment position of the trie of `{param}` and greedy templates."""

    __slots__ = ("end", "greedy", "literal", "param")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None  # the child for a `{param}` segment (any non-empty text)
        self.end: _CompiledTemplate | None = None  # the template whose segments end here
        self.greedy: _CompiledTemplate | None = None  # the greedy template whose prefix ends here

    def insert(self, compiled: _CompiledTemplate) -> None:
        node = self
        for literal in compiled.template.literals:
            if literal is None:
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literal.setdefault(literal, _Node())
        if compiled.template.greedy is None:
            node.end = compiled
        else:
            node.greedy = compiled

    def collect(
        self,
        segments: list[str],
        index: int,
        method: str,
        ends: list[_Candidate],
        greedies: list[_Candidate],
    ) -> None:
        """Every template that fits the path and takes the method, by walking all fitting branches."""
        remaining = len(segments) - index
        # A greedy variable needs at least one character: two segments ("a/") or one non-empty.
        if self.greedy is not None and (remaining > 1 or (remaining == 1 and segments[index])):
            route = self.greedy.route_for(method)
            if route is not None:
                greedies.append((self.greedy, route))
        if remaining == 0:
            if self.end is not None:
                route = self.end.route_for(method)
                if route is not None:
                    ends.append((self.end, route))
            return
        segment = segments[index]
        child = self.literal.get(segment)
        if child is not None:
            child.collect(segments, index + 1, method, ends, greedies)
        if self.param is not None and segment:
            self.param.collect(segments, index + 1, method, ends, greedies)


def _best(candidates: list[_Candidate]) -> _Candidate:
    return candidates[0] if len(candidates) == 1 else max(candidates, key=lambda c: c[0].priority)


class RouteTable:
    """An immutable, precompiled set of routes. Rebuild it (cheaply) whenever routes change.

    All-literal paths sit in a dict keyed by their segments; the other templates in a trie walked
    once per request, so a match costs a few dict lookups whatever the number of routes.
    """

    __slots__ = ("_default", "_exact", "_has_trie", "_routes", "_trie")

    def __init__(
        self,
        routes: tuple[Route, ...],
        exact: dict[tuple[str, ...], Mapping[str, Route]],
        trie: _Node,
        default: Mapping[str, Route],
    ) -> None:
        self._routes = routes
        self._exact = exact
        self._trie = trie
        self._has_trie = bool(trie.literal or trie.param or trie.greedy)
        self._default = default

    @classmethod
    def build(cls, routes: Iterable[Route]) -> RouteTable:
        """Compile routes; raise InvalidRoute or DuplicateRoute (deploy-time errors)."""
        return cls._compile(routes, strict=True)[0]

    @classmethod
    def build_skipping(cls, routes: Iterable[Route]) -> tuple[RouteTable, list[tuple[Route, str]]]:
        """Compile what can be compiled: an invalid route, or one that conflicts with a route
        before it, is left out and returned with the reason. For routes loaded from the store,
        where one bad row must not stop the gateway (the store's unique shape rules out conflicts;
        this is the belt to those braces)."""
        return cls._compile(routes, strict=False)

    @classmethod
    def _compile(cls, routes: Iterable[Route], *, strict: bool) -> tuple[RouteTable, list[tuple[Route, str]]]:
        kept: list[Route] = []
        rejected: list[tuple[Route, str]] = []
        by_shape: dict[tuple[tuple[str | None, ...], bool], tuple[PathTemplate, dict[str, Route]]] = {}
        default: dict[str, Route] = {}
        for route in routes:
            method = route.method.upper()
            try:
                if route.path == DEFAULT_ROUTE:
                    _add(default, method, route)
                else:
                    template = parse_route_path(route.path)
                    _, methods = by_shape.setdefault(template.shape, (template, {}))
                    _add(methods, method, route)
            except (InvalidRoute, DuplicateRoute) as exc:
                if strict:
                    raise
                rejected.append((route, str(exc)))
                continue
            kept.append(route)

        exact: dict[tuple[str, ...], Mapping[str, Route]] = {}
        trie = _Node()
        for template, methods in by_shape.values():
            if template.greedy is None and all(lit is not None for lit in template.literals):
                exact[tuple(lit for lit in template.literals if lit is not None)] = MappingProxyType(methods)
            else:
                compiled = _CompiledTemplate(
                    template, MappingProxyType(methods), template.priority, template.greedy or ""
                )
                trie.insert(compiled)
        return cls(tuple(kept), exact, trie, MappingProxyType(default)), rejected

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """Match a request. `path` is the raw, percent-encoded path without the query string."""
        if not path.startswith("/"):
            return None
        method = method.upper()
        segments = _decode_segments(path)

        methods = self._exact.get(tuple(segments))
        if methods is not None:
            route = methods.get(method) or methods.get(ANY_METHOD)
            if route is not None:
                return RouteMatch(route, {})

        if self._has_trie:
            ends: list[_Candidate] = []
            greedies: list[_Candidate] = []
            self._trie.collect(segments, 0, method, ends, greedies)
            if ends:
                compiled, route = _best(ends)
                return RouteMatch(route, compiled.bind(segments))
            if greedies:
                compiled, route = _best(greedies)
                return RouteMatch(route, self._greedy_parameters(compiled, path, segments))

        route = self._default.get(method) or self._default.get(ANY_METHOD)
        return RouteMatch(route, {}) if route is not None else None

    @staticmethod
    def _greedy_parameters(compiled: _CompiledTemplate, path: str, segments: list[str]) -> dict[str, str]:
        prefix_len = len(compiled.template.literals)
        params = compiled.bind(segments[:prefix_len])
        # The greedy value is the rest of the raw path, decoded once (so `a%2Fb/c` is `a/b/c`).
        params[compiled.greedy_name] = unquote("/".join(path[1:].split("/")[prefix_len:]))
        return params


def _add(methods: dict[str, Route], method: str, route: Route) -> None:
    if method in methods:
        raise DuplicateRoute(
            f"route {route.route_key!r} of {route.function_name!r} collides with "
            f"{methods[method].route_key!r} of {methods[method].function_name!r}"
        )
    methods[method] = route
