"""Routes: a function's set is replaced as a whole; another function's route is a Conflict."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from store_samples import sha, spec

from fnplat.domain import LATEST, Route, RouteSpec
from fnplat.errors import Conflict, InvalidParameter, NotFound
from fnplat.store import repository as repo
from fnplat.store.db import transaction
from fnplat.store.models import RouteRow


@pytest.fixture
def two_functions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(sessions) as s:
        repo.create_version(s, spec("alpha"), sha("a"), None)
        repo.create_version(s, spec("beta"), sha("b"), None)
    return sessions


def test_replace_routes_sets_and_replaces_the_whole_set(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        created = repo.replace_routes(
            s, "alpha", [RouteSpec("GET", "/a"), RouteSpec("POST", "/a/{id}")], "api_key"
        )
    assert created == [
        Route("GET", "/a", "alpha", LATEST, "api_key"),
        Route("POST", "/a/{id}", "alpha", LATEST, "api_key"),
    ]
    # Keeping one route, dropping one, adding one, and changing auth, in one call.
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/a"), RouteSpec("ANY", "$default")], "none")
    with transaction(two_functions) as s:
        routes = repo.list_routes(s)
    assert sorted((r.route_key, r.auth) for r in routes) == [("$default", "none"), ("GET /a", "none")]


def test_conflicting_route_names_the_owner_and_writes_nothing(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/shared")], "api_key")
        repo.replace_routes(s, "beta", [RouteSpec("GET", "/beta-old")], "api_key")

    with pytest.raises(Conflict, match="alpha") as raised, transaction(two_functions) as s:
        repo.replace_routes(s, "beta", [RouteSpec("GET", "/beta-new"), RouteSpec("GET", "/shared")], "none")
    assert "GET /shared" in raised.value.message

    with transaction(two_functions) as s:
        routes = {(r.route_key, r.function_name, r.auth) for r in repo.list_routes(s)}
    assert routes == {("GET /shared", "alpha", "api_key"), ("GET /beta-old", "beta", "api_key")}


def test_same_path_with_another_method_is_not_a_conflict(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/items")], "api_key")
        repo.replace_routes(s, "beta", [RouteSpec("POST", "/items")], "api_key")
        assert len(repo.list_routes(s)) == 2


def test_empty_route_set_removes_the_functions_routes(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/a")], "api_key")
        repo.replace_routes(s, "beta", [RouteSpec("GET", "/b")], "api_key")
    with transaction(two_functions) as s:
        assert repo.replace_routes(s, "alpha", [], "api_key") == []
        assert [r.function_name for r in repo.list_routes(s)] == ["beta"]


def test_bad_route_input_is_rejected(two_functions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidParameter, match="duplicate"), transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/a"), RouteSpec("GET", "/a")], "api_key")
    with pytest.raises(NotFound), transaction(two_functions) as s:
        repo.replace_routes(s, "ghost", [RouteSpec("GET", "/g")], "api_key")
    with pytest.raises(InvalidParameter, match="auth"), transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/a")], "open")  # type: ignore[arg-type]
    with transaction(two_functions) as s:
        assert repo.list_routes(s) == []


def test_database_enforces_unique_method_and_path(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/x")], "api_key")
    with pytest.raises(IntegrityError), transaction(two_functions) as s:
        s.add(RouteRow(method="GET", path="/x", function_name="beta", qualifier=LATEST, auth="api_key"))
