"""Routes: a function's set is replaced as a whole; another function's route is a Conflict."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from store_samples import sha, spec

from fnplat.domain import LATEST, Route, RouteSpec
from fnplat.errors import Conflict, InvalidParameter, NotFound
from fnplat.store import repository as repo
from fnplat.store.db import transaction
from fnplat.store.models import FunctionRow, RouteRow


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


def test_routes_of_one_shape_conflict_whatever_their_parameter_names(
    two_functions: sessionmaker[Session],
) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/a/{x}")], "api_key")
    with pytest.raises(Conflict) as raised, transaction(two_functions) as s:
        repo.replace_routes(s, "beta", [RouteSpec("GET", "/a/{y}")], "api_key")
    assert raised.value.message == "route 'GET /a/{y}' clashes with 'GET /a/{x}' of function 'alpha'"
    with pytest.raises(InvalidParameter, match="duplicate routes for alpha"), transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/b/{x}"), RouteSpec("GET", "/b/{y}")], "none")


def test_database_enforces_unique_shapes(two_functions: sessionmaker[Session]) -> None:
    with transaction(two_functions) as s:
        repo.replace_routes(s, "alpha", [RouteSpec("GET", "/x/{id}")], "api_key")
    # Past the repository's own check, the constraint still refuses a second route of the shape.
    with pytest.raises(IntegrityError), transaction(two_functions) as s:
        s.add(
            RouteRow(
                method="GET",
                path="/x/{name}",
                shape="GET /x/{}",
                function_name="beta",
                qualifier=LATEST,
                auth="api_key",
            )
        )


def test_concurrent_conflicting_writers_one_wins_the_other_gets_a_conflict(
    sessions: sessionmaker[Session],
) -> None:
    """Two transactions deploy routes of one shape for different functions at the same moment."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def deploy(name: str, path: str) -> None:
        barrier.wait()
        try:
            with transaction(sessions) as s:
                repo.create_version(s, spec(name), sha(name), None)
                repo.replace_routes(s, name, [RouteSpec("GET", path)], "api_key")
            outcomes[name] = "ok"
        except Conflict as exc:
            outcomes[name] = exc.message

    for _ in range(5):
        with transaction(sessions) as s:
            s.execute(delete(RouteRow))
            s.execute(delete(FunctionRow))
        outcomes.clear()
        threads = [
            threading.Thread(target=deploy, args=("alpha", "/c/{x}")),
            threading.Thread(target=deploy, args=("beta", "/c/{y}")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["alpha", "beta"]
        assert list(outcomes.values()).count("ok") == 1, outcomes
        loser = next(v for v in outcomes.values() if v != "ok")
        assert "clashes with 'GET /c/" in loser or "another deploy claimed" in loser
        with transaction(sessions) as s:
            assert len(repo.list_routes(s)) == 1
            # The loser's whole deploy rolled back: its version is not stored either.
            assert len(repo.list_functions(s)) == 1
