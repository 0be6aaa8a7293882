"""Functions and versions: numbering, the $LATEST pointer, listing and cascading delete."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from store_samples import sha, spec

from fnplat.domain import RouteSpec
from fnplat.errors import InvalidParameter
from fnplat.store import repository as repo
from fnplat.store.db import transaction
from fnplat.store.models import FunctionVersionRow, RouteRow


def test_versions_are_numbered_per_function_and_latest_moves(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        first = repo.create_version(s, spec("hello"), sha("v1"), None)
        other = repo.create_version(s, spec("other"), sha("o1"), None)
    with transaction(sessions) as s:
        second = repo.create_version(s, spec("hello", memory=256), sha("v2"), "fnplat/fn-hello:2")

    assert (first.version, second.version, other.version) == (1, 2, 1)
    with transaction(sessions) as s:
        latest = repo.get_latest_version(s, "hello")
        old = repo.get_version(s, "hello", 1)
    assert latest == second
    assert latest is not None and latest.memory == 256 and latest.image == "fnplat/fn-hello:2"
    assert old is not None and old.code_sha256 == sha("v1") and old.memory == 128
    assert dict(old.environment) == {"GREETING": "hi"}
    assert old.created_at.tzinfo is not None and old.created_at.utcoffset() == UTC.utcoffset(None)


def test_unknown_function_or_version_is_none(session: Session) -> None:
    repo.create_version(session, spec("hello"), sha("v1"), None)
    assert repo.get_latest_version(session, "nope") is None
    assert repo.get_version(session, "hello", 2) is None
    assert repo.get_version(session, "nope", 1) is None


def test_list_functions_summarises_latest_versions(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.create_version(s, spec("b-fn", memory=512), sha("b1"), None)
        repo.create_version(s, spec("a-fn"), sha("a1"), None)
        repo.create_version(s, spec("a-fn", memory=1024), sha("a2"), None)
    with transaction(sessions) as s:
        summaries = repo.list_functions(s)
    assert [(f.name, f.latest_version, f.memory) for f in summaries] == [("a-fn", 2, 1024), ("b-fn", 1, 512)]
    assert all(f.runtime == "python3.11" and f.timeout == 3 for f in summaries)


def test_delete_function_removes_versions_and_routes(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.create_version(s, spec("gone"), sha("g1"), None)
        repo.create_version(s, spec("gone"), sha("g2"), None)
        repo.replace_routes(s, "gone", [RouteSpec("GET", "/gone")], "none")
        repo.create_version(s, spec("kept"), sha("k1"), None)
    with transaction(sessions) as s:
        assert repo.delete_function(s, "gone") is True
        assert repo.delete_function(s, "gone") is False
    with transaction(sessions) as s:
        assert repo.get_latest_version(s, "gone") is None
        assert [f.name for f in repo.list_functions(s)] == ["kept"]
        # The database cascaded: no orphan rows are left behind.
        versions = s.scalar(select(func.count()).where(FunctionVersionRow.function_name == "gone"))
        routes = s.scalar(select(func.count()).where(RouteRow.function_name == "gone"))
        assert (versions, routes) == (0, 0)


def test_redeploy_after_delete_starts_at_version_one(session: Session) -> None:
    repo.create_version(session, spec("again"), sha("1"), None)
    repo.create_version(session, spec("again"), sha("2"), None)
    repo.delete_function(session, "again")
    assert repo.create_version(session, spec("again"), sha("3"), None).version == 1


def test_database_rejects_a_duplicate_version(session: Session) -> None:
    repo.create_version(session, spec("dup"), sha("1"), None)
    row = FunctionVersionRow(
        function_name="dup",
        version=1,
        runtime="python3.11",
        handler="h",
        memory=128,
        timeout=3,
        environment={},
        code_sha256=sha("x"),
        image=None,
    )
    session.add(row)
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


@pytest.mark.parametrize(
    ("name", "code_sha256"),
    [
        ("bad name!", sha("x")),
        ("", sha("x")),
        ("x" * 65, sha("x")),
        ("ok", "not-a-sha"),
        ("ok", sha("x").upper()),
    ],
)
def test_create_version_rejects_bad_input_and_writes_nothing(
    sessions: sessionmaker[Session], name: str, code_sha256: str
) -> None:
    with pytest.raises(InvalidParameter), transaction(sessions) as s:
        repo.create_version(s, spec(name), code_sha256, None)
    with transaction(sessions) as s:
        assert repo.list_functions(s) == []


def test_concurrent_deploys_of_one_function_get_distinct_versions(sessions: sessionmaker[Session]) -> None:
    deploys = 6
    start = threading.Barrier(deploys, timeout=30)
    versions: list[int] = []
    errors: list[BaseException] = []

    def deploy(i: int) -> None:
        try:
            start.wait()
            with transaction(sessions) as s:
                versions.append(repo.create_version(s, spec("busy"), sha(str(i)), None).version)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(deploys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(versions) == list(range(1, deploys + 1))
    with transaction(sessions) as s:
        latest = repo.get_latest_version(s, "busy")
    assert latest is not None and latest.version == deploys
