"""The catalog never fails on stored routes: the platform always starts."""

from __future__ import annotations

from fnplat.catalog import Catalog
from fnplat.domain import Route


def test_the_catalog_serves_every_route_it_can_and_leaves_out_the_rest() -> None:
    catalog = Catalog()
    catalog.load(
        [],
        [
            Route("GET", "/a/{x}", "first"),
            Route("GET", "/a/{y}", "second"),  # one shape with the route before it
            Route("GET", "not-a-path", "second"),
            Route("GET", "/b", "second"),
        ],
        [],
    )
    assert [r.route_key for r in catalog.route_table.routes] == ["GET /a/{x}", "GET /b"]
    match = catalog.route_table.match("GET", "/a/1")
    assert match is not None and match.route.function_name == "first"
