"""API keys (add, list, revoke) and content-addressed artifacts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from store_samples import T0, api_key, sha

from fnplat.errors import Conflict, InvalidParameter
from fnplat.store import repository as repo
from fnplat.store.db import transaction


def test_keys_round_trip_and_revoke(sessions: sessionmaker[Session]) -> None:
    admin, ci = api_key("k-admin", "admin"), api_key("k-ci", created_at=T0 + timedelta(seconds=1))
    with transaction(sessions) as s:
        repo.add_api_key(s, ci)
        repo.add_api_key(s, admin)
    with transaction(sessions) as s:
        assert repo.list_api_keys(s) == [admin, ci]  # oldest first
        assert repo.get_api_key(s, "k-ci") == ci
        assert repo.get_api_key(s, "k-none") is None
        assert repo.revoke_api_key(s, "k-ci") is True
        assert repo.revoke_api_key(s, "k-ci") is True  # idempotent
        assert repo.revoke_api_key(s, "k-none") is False
    with transaction(sessions) as s:
        revoked = repo.get_api_key(s, "k-ci")
        assert revoked is not None and revoked.revoked
        assert revoked.secret_hash == ci.secret_hash
        assert not next(k for k in repo.list_api_keys(s) if k.key_id == "k-admin").revoked


def test_duplicate_key_id_is_a_conflict(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        repo.add_api_key(s, api_key("same"))
    with pytest.raises(Conflict), transaction(sessions) as s:
        repo.add_api_key(s, api_key("same", "admin"))
    with transaction(sessions) as s:
        assert [k.scope for k in repo.list_api_keys(s)] == ["invoke"]


def test_bad_keys_are_rejected(session: Session) -> None:
    with pytest.raises(InvalidParameter):
        repo.add_api_key(session, replace(api_key("k"), scope="root"))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        repo.add_api_key(session, replace(api_key("k"), secret_hash="plaintext-secret"))
    with pytest.raises(InvalidParameter):
        repo.add_api_key(session, replace(api_key("k"), created_at=datetime(2026, 1, 1)))
    assert repo.list_api_keys(session) == []


def test_artifacts_are_recorded_once(sessions: sessionmaker[Session]) -> None:
    digest = sha("zip bytes")
    with transaction(sessions) as s:
        assert repo.artifact_exists(s, digest) is False
        repo.record_artifact(s, digest, 100, 300)
    with transaction(sessions) as s:
        repo.record_artifact(s, digest, 100, 300)  # the same content deployed again
        assert repo.artifact_exists(s, digest) is True
        assert repo.artifact_exists(s, sha("other")) is False


def test_bad_artifacts_are_rejected(session: Session) -> None:
    with pytest.raises(InvalidParameter):
        repo.record_artifact(session, "../../etc/passwd", 1, 1)
    with pytest.raises(InvalidParameter):
        repo.record_artifact(session, sha("x"), -1, 1)
