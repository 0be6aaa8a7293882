"""Two deploys at the same moment claim routes of one shape (`GET /a/{x}` and `GET /a/{y}`) for
different functions: exactly one wins, the other gets a clear 409, the stored routes never
conflict, and the platform starts again on them. On SQLite and on Postgres."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from e2e_platform import Platform, running_platform
from fault_functions import deploy, package

from fnplat.route_grammar import route_shape

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROUNDS = 12


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the data dir; else a database of its own on the session's Postgres."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_url").replace("postgresql+psycopg://", "postgresql://")
    name = f"routes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + f"/{name}"


def stored_routes(platform: Platform, database_url: str | None) -> list[tuple[str, str, str]]:
    """(method, path, function) of every stored route, read from the database itself."""
    query = "SELECT method, path, function_name FROM routes"
    if database_url is None:
        with sqlite3.connect(platform.data_dir / "fnplat.db") as conn:
            return [tuple(row) for row in conn.execute(query)]
    with psycopg.connect(database_url) as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def race(platform: Platform, bodies: list[bytes]) -> list[requests.Response]:
    barrier = threading.Barrier(len(bodies))
    responses: list[requests.Response | None] = [None] * len(bodies)

    def send(index: int) -> None:
        barrier.wait()
        responses[index] = deploy(platform, bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


def test_concurrent_conflicting_deploys_one_wins_one_gets_409(
    docker_images: None, database_url: str | None, tmp_path: Path
) -> None:
    env = {"FNPLAT_DATABASE_URL": database_url} if database_url else {}
    with running_platform(tmp_path, **env) as plat:
        for n in range(ROUNDS):
            bodies = [
                package(f"left-{n}", [f"GET /race{n}/{{x}}"]),
                package(f"right-{n}", [f"GET /race{n}/{{y}}"]),
            ]
            responses = race(plat, bodies)
            assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
            lost = next(r for r in responses if r.status_code == 409).json()
            assert lost["errorType"] == "ResourceConflictException"
            assert (
                f"clashes with 'GET /race{n}/" in lost["message"]
                or "another deploy claimed" in lost["message"]
            )

        routes = stored_routes(plat, database_url)
        shapes = [route_shape(method, path) for method, path, _ in routes]
        assert len(shapes) == len(set(shapes)) == ROUNDS, routes
        served = requests.get(f"{plat.url}/v1/routes", headers=plat.headers(), timeout=30).json()["routes"]
        assert sorted((r["path"], r["function"]) for r in served) == sorted((p, f) for _, p, f in routes)

        plat.stop()
        plat.start()  # the platform always starts on what is stored
        again = requests.get(f"{plat.url}/v1/routes", headers=plat.headers(), timeout=30).json()["routes"]
        assert len(again) == ROUNDS
