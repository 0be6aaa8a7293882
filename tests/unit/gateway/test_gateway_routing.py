"""Route matching: HTTP API priorities, ANY, path parameters, and the edge cases we decided."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnplat.domain import Route
from fnplat.gateway.routing import DuplicateRoute, RouteTable
from fnplat.route_grammar import InvalidRoute


def route(method: str, path: str, function: str | None = None) -> Route:
    return Route(method=method, path=path, function_name=function or f"{method} {path}")


def matched(table: RouteTable, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = table.match(method, path)
    return None if found is None else (found.route.route_key, found.path_parameters)


def test_exact_route_matches_only_its_method_and_path() -> None:
    table = RouteTable.build([route("GET", "/pets")])
    assert matched(table, "GET", "/pets") == ("GET /pets", {})
    assert table.match("POST", "/pets") is None  # 404, not 405: HTTP APIs have no MethodNotAllowed
    assert table.match("GET", "/pets/1") is None
    assert table.match("GET", "/pet") is None


def test_method_is_case_insensitive() -> None:
    table = RouteTable.build([route("get", "/pets")])
    assert table.match("GET", "/pets") is not None
    assert table.match("get", "/pets") is not None


def test_any_takes_methods_not_defined_for_the_same_path() -> None:
    table = RouteTable.build([route("GET", "/pets"), route("ANY", "/pets")])
    assert matched(table, "GET", "/pets") == ("GET /pets", {})
    assert matched(table, "DELETE", "/pets") == ("ANY /pets", {})
    assert matched(table, "POST", "/pets") == ("ANY /pets", {})


def test_single_segment_parameter() -> None:
    table = RouteTable.build([route("GET", "/pets/{id}")])
    assert matched(table, "GET", "/pets/42") == ("GET /pets/{id}", {"id": "42"})
    assert table.match("GET", "/pets/42/toys") is None
    assert table.match("GET", "/pets") is None


def test_exact_beats_parameter_and_parameter_beats_greedy_beats_default() -> None:
    table = RouteTable.build(
        [
            route("GET", "/pets/{id}"),
            route("GET", "/pets/mine"),
            route("GET", "/pets/{proxy+}"),
            route("ANY", "$default"),
        ]
    )
    assert matched(table, "GET", "/pets/mine") == ("GET /pets/mine", {})
    assert matched(table, "GET", "/pets/7") == ("GET /pets/{id}", {"id": "7"})
    assert matched(table, "GET", "/pets/7/toys") == ("GET /pets/{proxy+}", {"proxy": "7/toys"})
    assert matched(table, "GET", "/cats") == ("$default", {})
    assert matched(table, "POST", "/pets/mine") == ("$default", {})


def test_more_literal_segments_win_then_leftmost_literal() -> None:
    table = RouteTable.build(
        [
            route("GET", "/{a}/{b}/{c}"),
            route("GET", "/x/{b}/{c}"),
            route("GET", "/{a}/y/z"),
            route("GET", "/{a}/y/{c}"),
            route("GET", "/x/{b}/z"),
        ]
    )
    # Two literals each: /x/{b}/z and /{a}/y/z; the one with the leftmost literal wins.
    assert matched(table, "GET", "/x/y/z") == ("GET /x/{b}/z", {"b": "y"})
    assert matched(table, "GET", "/q/y/z") == ("GET /{a}/y/z", {"a": "q"})
    assert matched(table, "GET", "/x/q/q") == ("GET /x/{b}/{c}", {"b": "q", "c": "q"})
    assert matched(table, "GET", "/q/y/q") == ("GET /{a}/y/{c}", {"a": "q", "c": "q"})
    assert matched(table, "GET", "/q/q/q") == ("GET /{a}/{b}/{c}", {"a": "q", "b": "q", "c": "q"})


def test_a_dead_end_literal_branch_backtracks_to_a_parameter_branch() -> None:
    table = RouteTable.build([route("GET", "/a/b/{x}/z"), route("GET", "/a/{y}/c/d")])
    assert matched(table, "GET", "/a/b/c/d") == ("GET /a/{y}/c/d", {"y": "b"})
    assert matched(table, "GET", "/a/b/c/z") == ("GET /a/b/{x}/z", {"x": "c"})
    assert table.match("GET", "/a/b/c/q") is None


def test_many_routes_each_match_their_own_function() -> None:
    routes = [route("GET", f"/svc{i}/items/{{id}}", f"items{i}") for i in range(300)]
    routes += [route("ANY", f"/svc{i}/{{proxy+}}", f"proxy{i}") for i in range(300)]
    table = RouteTable.build(routes)
    for i in (0, 151, 299):
        found = table.match("GET", f"/svc{i}/items/{i}")
        assert found is not None and found.route.function_name == f"items{i}"
        assert found.path_parameters == {"id": str(i)}
        found = table.match("POST", f"/svc{i}/items/{i}")
        assert found is not None and found.route.function_name == f"proxy{i}"
        assert found.path_parameters == {"proxy": f"items/{i}"}


def test_a_path_match_without_the_method_falls_through_to_less_specific_routes() -> None:
    table = RouteTable.build([route("GET", "/pets/{id}"), route("ANY", "/{proxy+}")])
    assert matched(table, "GET", "/pets/1") == ("GET /pets/{id}", {"id": "1"})
    assert matched(table, "POST", "/pets/1") == ("ANY /{proxy+}", {"proxy": "pets/1"})


def test_greedy_needs_at_least_one_character_and_the_longest_prefix_wins() -> None:
    table = RouteTable.build([route("ANY", "/{proxy+}"), route("GET", "/files/{path+}")])
    assert matched(table, "GET", "/files/a/b/c.txt") == ("GET /files/{path+}", {"path": "a/b/c.txt"})
    # "/files/" leaves nothing for {path+}: the shorter greedy route takes it.
    assert matched(table, "GET", "/files/") == ("ANY /{proxy+}", {"proxy": "files/"})
    assert matched(table, "GET", "/files") == ("ANY /{proxy+}", {"proxy": "files"})
    assert table.match("GET", "/") is None  # {proxy+} never matches the empty rest


def test_greedy_after_a_parameter() -> None:
    table = RouteTable.build([route("GET", "/users/{id}/{rest+}")])
    assert matched(table, "GET", "/users/7/a/b") == ("GET /users/{id}/{rest+}", {"id": "7", "rest": "a/b"})
    assert table.match("GET", "/users//a") is None  # {id} may not be empty


def test_default_route_respects_its_method() -> None:
    table = RouteTable.build([Route(method="ANY", path="$default", function_name="fallback")])
    found = table.match("PATCH", "/anything/at/all")
    assert found is not None
    assert found.route.function_name == "fallback"
    assert found.route.route_key == "$default"
    assert found.path_parameters == {}


def test_no_routes_match_nothing() -> None:
    table = RouteTable.build(())
    assert table.match("GET", "/") is None
    assert len(table) == 0


def test_root_path_is_an_exact_route() -> None:
    table = RouteTable.build([route("GET", "/")])
    assert matched(table, "GET", "/") == ("GET /", {})
    assert table.match("GET", "//") is None


def test_trailing_slash_and_empty_segments_are_significant() -> None:
    """Decided behaviour: segments compare exactly; a trailing slash is an extra empty segment."""
    table = RouteTable.build([route("GET", "/pets"), route("GET", "/pets/{id}")])
    assert table.match("GET", "/pets/") is None  # not /pets, and {id} never matches ""
    assert table.match("GET", "//pets") is None
    assert table.match("GET", "/pets//") is None


def test_path_parameters_are_url_decoded_and_an_encoded_slash_stays_inside_the_segment() -> None:
    table = RouteTable.build([route("GET", "/pets/{id}"), route("GET", "/files/{path+}")])
    assert matched(table, "GET", "/pets/a%20b") == ("GET /pets/{id}", {"id": "a b"})
    assert matched(table, "GET", "/pets/a%2Fb") == ("GET /pets/{id}", {"id": "a/b"})
    assert matched(table, "GET", "/pets/caf%C3%A9") == ("GET /pets/{id}", {"id": "café"})
    assert matched(table, "GET", "/files/a%2Fb/c%3Fd") == ("GET /files/{path+}", {"path": "a/b/c?d"})


def test_encoded_literals_match_their_decoded_route() -> None:
    encoded = RouteTable.build([route("GET", "/caf%C3%A9/a%20b")])
    assert matched(encoded, "GET", "/caf%C3%A9/a%20b") == ("GET /caf%C3%A9/a%20b", {})
    assert matched(encoded, "GET", "/caf%c3%a9/a%20b") == ("GET /caf%C3%A9/a%20b", {})


def test_paths_that_do_not_start_with_a_slash_match_nothing() -> None:
    table = RouteTable.build([route("ANY", "$default")])
    assert table.match("GET", "") is None
    assert table.match("GET", "pets") is None


def test_duplicate_routes_are_rejected_even_with_different_parameter_names() -> None:
    with pytest.raises(DuplicateRoute, match="GET /pets/"):
        RouteTable.build([route("GET", "/pets/{id}", "a"), route("get", "/pets/{name}", "b")])
    with pytest.raises(DuplicateRoute):
        RouteTable.build([route("ANY", "$default", "a"), route("ANY", "$default", "b")])
    # Same path, other method: fine.
    assert len(RouteTable.build([route("GET", "/pets/{id}"), route("PUT", "/pets/{name}")])) == 2


def test_invalid_route_paths_are_refused_by_the_table() -> None:
    # The grammar itself is tested in tests/unit/routes; the table uses it.
    for path in ("pets", "/pets/{proxy+}/more", "/pets/{}", "/pets?x=1"):
        with pytest.raises(InvalidRoute):
            RouteTable.build([route("GET", path)])


def test_build_skipping_serves_everything_but_the_bad_routes() -> None:
    good, clash, bad = route("GET", "/a/{x}", "f"), route("GET", "/a/{y}", "g"), route("GET", "no-slash", "h")
    table, rejected = RouteTable.build_skipping([good, clash, bad, route("GET", "/b", "f")])
    assert [r.route_key for r in table.routes] == ["GET /a/{x}", "GET /b"]
    assert [(r.function_name, "collides" in why or "must start" in why) for r, why in rejected] == [
        ("g", True),
        ("h", True),
    ]
    assert matched(table, "GET", "/a/1") == ("GET /a/{x}", {"x": "1"})


def test_match_returns_the_deployed_route_object() -> None:
    original = Route(method="GET", path="/x/{id}", function_name="fn", qualifier="3", auth="none")
    found = RouteTable.build([original]).match("GET", "/x/1")
    assert found is not None and found.route is original


segment_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"),
    min_size=1,
    max_size=12,
)


@given(first=segment_text, rest=st.lists(segment_text, min_size=1, max_size=4))
def test_any_value_round_trips_through_percent_encoding(first: str, rest: list[str]) -> None:
    from urllib.parse import quote

    table = RouteTable.build([route("GET", "/a/{first}/{rest+}")])
    path = "/a/" + quote(first, safe="") + "/" + "/".join(quote(s, safe="") for s in rest)
    found = table.match("GET", path)
    assert found is not None
    assert found.path_parameters == {"first": first, "rest": "/".join(rest)}
