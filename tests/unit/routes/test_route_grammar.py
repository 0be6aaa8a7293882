"""The one route grammar: valid paths, reserved prefixes, and the conflict shape that the spec,
the gateway's table and the store's unique constraint all agree on."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnplat.domain import Route, RouteSpec
from fnplat.gateway.routing import DuplicateRoute, RouteTable
from fnplat.route_grammar import (
    MAX_PATH_LENGTH,
    InvalidRoute,
    is_reserved_path,
    parse_route,
    parse_route_path,
    route_shape,
)


def test_shape_ignores_parameter_names_and_keeps_methods_and_positions() -> None:
    assert route_shape("get", "/pets/{id}") == route_shape("GET", "/pets/{name}") == "GET /pets/{}"
    assert route_shape("GET", "/files/{p+}") == "GET /files/{+}"
    assert route_shape("ANY", "$default") == "ANY $default"
    assert route_shape("GET", "/") == "GET /"
    assert route_shape("GET", "/pets/{id}") != route_shape("POST", "/pets/{id}")
    assert route_shape("GET", "/pets/{id}") != route_shape("ANY", "/pets/{id}")
    assert route_shape("GET", "/a/{x}") != route_shape("GET", "/a/{x+}")
    assert route_shape("GET", "/a/{x}/b") != route_shape("GET", "/a/b/{x}")
    with pytest.raises(InvalidRoute):
        route_shape("GET", "pets")


def test_shape_compares_literals_as_the_gateway_matches_them() -> None:
    # Decoded: the same request path matches both, so they are one route.
    assert route_shape("GET", "/caf%C3%A9") == route_shape("GET", "/caf%c3%a9")
    assert route_shape("GET", "/%41") == route_shape("GET", "/A")
    # An encoded slash or brace is a literal character, never a segment boundary or a parameter.
    assert route_shape("GET", "/a%2Fb") != route_shape("GET", "/a/b")
    assert route_shape("GET", "/%7B%7D") != route_shape("GET", "/{x}")


ROUTE_TEXTS = [
    "GET /a/{x}",
    "GET /a/{y}",
    "GET /a/b",
    "ANY /a/{x}",
    "GET /a/{x+}",
    "GET /A/{x}",
    "GET /%41/{x}",
    "POST /a/{x}",
    "GET /caf%C3%A9",
    "GET /caf%c3%a9",
    "$default",
    "GET /",
]


@pytest.mark.parametrize("first", ROUTE_TEXTS)
@pytest.mark.parametrize("second", ROUTE_TEXTS)
def test_equal_shapes_are_exactly_the_routes_the_table_cannot_hold_together(first: str, second: str) -> None:
    a, b = parse_route(first), parse_route(second)
    same_shape = route_shape(a.method, a.path) == route_shape(b.method, b.path)
    routes = [Route(a.method, a.path, "f"), Route(b.method, b.path, "g")]
    if same_shape:
        with pytest.raises(DuplicateRoute):
            RouteTable.build(routes)
    else:
        assert len(RouteTable.build(routes)) == 2


literal = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=8)


@given(segments=st.lists(literal, min_size=1, max_size=4))
def test_a_shape_is_never_longer_than_its_path(segments: list[str]) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    assert len(route_shape("OPTIONS", path)) <= len("OPTIONS ") + len(path)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("pets", "must start with '/'"),
        ("/pets/{proxy+}/more", "must be the last segment"),
        ("/pets/{}", "must be a literal, {name} or a final {name+}"),
        ("/pets/{+}", "must be a literal"),
        ("/pets/id{x}", "must be a literal"),
        ("/pets/{a b}", "must be a literal"),
        ("/pets/{id}/{id}", "appears twice"),
        ("/pets?x=1", "characters not allowed"),
        ("/pets/{na.me}", "must be a literal"),
        ("/a%zz", "'%' only as a percent-escape"),
        ("/a%C3", "percent-escapes must encode UTF-8"),
        ("/a//b", "empty segment"),
        ("/v1/x", "path prefix /v1 is reserved"),
        ("/" + "a" * MAX_PATH_LENGTH, f"longer than {MAX_PATH_LENGTH}"),
    ],
)
def test_invalid_route_paths_are_rejected_with_the_reason(path: str, problem: str) -> None:
    with pytest.raises(InvalidRoute, match=re.escape(problem)):
        parse_route_path(path)


def test_parse_route_path_template() -> None:
    template = parse_route_path("/a/{b}/{c+}")
    assert template.literals == ("a", None)
    assert template.names == (None, "b")
    assert template.greedy == "c"
    assert parse_route_path("/").literals == ("",)


def test_parse_route() -> None:
    assert parse_route(" get  /a/{id} ") == RouteSpec("GET", "/a/{id}")
    assert parse_route("$default") == RouteSpec("ANY", "$default")
    with pytest.raises(InvalidRoute, match="method must be one of"):
        parse_route("FETCH /a")


def test_reserved_prefixes() -> None:
    for path in ("/v1", "/v1/functions", "/2015-03-31/functions/x/invocations", "/metrics", "/healthz"):
        assert is_reserved_path(path)
    for path in ("/v10", "/v1x/a", "/metricsx", "/", "/api/v1"):
        assert not is_reserved_path(path)
