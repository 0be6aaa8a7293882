"""API keys: format, hashing at rest, constant-time verification, every rejection path."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime
from unittest import mock

import pytest
from multidict import CIMultiDict

from fnplat.domain import ApiKey
from fnplat.errors import Forbidden, Unauthorized
from fnplat.security import (
    PRESENTED_KEY_LENGTH,
    KeyRing,
    Rejection,
    authorize,
    extract_presented_key,
    generate_api_key,
    parse_presented_key,
    verify_secret,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_generated_key_format_and_record() -> None:
    presented, record = generate_api_key("ci", "invoke", NOW)
    assert len(presented) == PRESENTED_KEY_LENGTH
    prefix, key_id, secret = presented.split("_")
    assert prefix == "fnp"
    assert len(key_id) == 12 and all(c in "0123456789abcdef" for c in key_id)
    assert len(secret) == 43 and secret.isalnum() and secret.isascii()
    assert record.key_id == key_id
    assert record.name == "ci" and record.scope == "invoke" and record.created_at == NOW
    assert record.revoked is False
    assert parse_presented_key(presented) == (key_id, secret)


def test_only_the_hash_of_the_secret_is_stored() -> None:
    presented, record = generate_api_key("ci", "admin", NOW)
    secret = presented.rsplit("_", 1)[1]
    assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored_text = repr(record)
    assert secret not in stored_text
    assert presented not in stored_text


def test_keys_are_unique() -> None:
    keys = {generate_api_key("k", "invoke", NOW)[0] for _ in range(200)}
    assert len(keys) == 200
    assert len({k.split("_")[1] for k in keys}) == 200


def test_verify_secret_uses_compare_digest() -> None:
    presented, record = generate_api_key("k", "invoke", NOW)
    secret = presented.rsplit("_", 1)[1]
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        assert verify_secret(secret, record.secret_hash) is True
        assert verify_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"), record.secret_hash) is False
    assert spy.call_count == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fnp",
        "fnp__",
        "xyz_0123456789ab_" + "a" * 43,  # wrong prefix
        "FNP_0123456789ab_" + "a" * 43,
        "fnp_0123456789AB_" + "a" * 43,  # key id must be lower hex
        "fnp_0123456789ag_" + "a" * 43,
        "fnp_0123456789a_" + "a" * 44,  # key id too short, same total length
        "fnp_0123456789abc_" + "a" * 42,
        "fnp_0123456789ab_" + "a" * 42,  # secret too short
        "fnp_0123456789ab_" + "a" * 44,  # too long
        "fnp_0123456789ab_" + "a" * 42 + "_",  # not base62
        "fnp_0123456789ab_" + "a" * 42 + "-",
        "fnp_0123456789ab_" + "a" * 42 + "é",
        "fnp-0123456789ab_" + "a" * 43,
        " fnp_0123456789ab_" + "a" * 42,
        "fnp_0123456789ab_" + "a" * 10_000,  # oversized
    ],
)
def test_parse_rejects_anything_but_the_exact_format(text: str) -> None:
    assert parse_presented_key(text) is None


def test_parse_accepts_the_exact_format() -> None:
    text = "fnp_0123456789ab_" + "Az09" * 10 + "xyz"
    assert parse_presented_key(text) == ("0123456789ab", "Az09" * 10 + "xyz")


@pytest.fixture
def ring_and_keys() -> tuple[KeyRing, str, ApiKey, str, ApiKey]:
    admin_text, admin = generate_api_key("admin", "admin", NOW)
    invoke_text, invoke = generate_api_key("ci", "invoke", NOW)
    return KeyRing([admin, invoke]), admin_text, admin, invoke_text, invoke


def test_authenticate_accepts_valid_keys(ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey]) -> None:
    ring, admin_text, admin, invoke_text, invoke = ring_and_keys
    assert ring.authenticate(admin_text) == admin
    assert ring.authenticate(invoke_text) == invoke


@pytest.mark.parametrize("presented", [None, ""])
def test_missing_key_is_unauthorized(
    ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey], presented: str | None
) -> None:
    ring = ring_and_keys[0]
    assert ring.check(presented) is Rejection.MISSING
    with pytest.raises(Unauthorized):
        ring.authenticate(presented)


def test_every_other_rejection_is_forbidden(ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey]) -> None:
    ring, admin_text, _, invoke_text, invoke = ring_and_keys
    unknown_text, _ = generate_api_key("other", "admin", NOW)
    prefix, key_id, secret = admin_text.split("_")
    wrong_secret = f"{prefix}_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    revoked_ring = ring.with_key(replace(invoke, revoked=True))
    cases = [
        (ring, "not-a-key", Rejection.MALFORMED),
        (ring, admin_text + "x", Rejection.MALFORMED),
        (ring, unknown_text, Rejection.UNKNOWN),
        (ring, wrong_secret, Rejection.WRONG_SECRET),
        (revoked_ring, invoke_text, Rejection.REVOKED),
        (ring.without(invoke.key_id), invoke_text, Rejection.UNKNOWN),
    ]
    for keyring, presented, reason in cases:
        assert keyring.check(presented) is reason, presented
        with pytest.raises(Forbidden) as caught:
            keyring.authenticate(presented)
        assert caught.value.message == "Forbidden"  # which check failed is not told to the caller


def test_unknown_key_id_still_does_a_constant_time_comparison(
    ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey],
) -> None:
    ring = ring_and_keys[0]
    unknown_text, _ = generate_api_key("other", "admin", NOW)
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as spy:
        assert ring.check(unknown_text) is Rejection.UNKNOWN
    assert spy.call_count == 1


def test_key_ring_is_immutable_and_updates_return_new_rings(
    ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey],
) -> None:
    ring, _, admin, _, invoke = ring_and_keys
    new_text, new_key = generate_api_key("new", "invoke", NOW)
    bigger = ring.with_key(new_key)
    assert len(ring) == 2 and len(bigger) == 3
    assert new_key.key_id not in ring and new_key.key_id in bigger
    assert bigger.authenticate(new_text) == new_key
    smaller = bigger.without(admin.key_id)
    assert admin.key_id not in smaller and admin.key_id in bigger
    assert smaller.without("no-such-id").get(invoke.key_id) == invoke


def test_authorize_scopes(ring_and_keys: tuple[KeyRing, str, ApiKey, str, ApiKey]) -> None:
    _, _, admin, _, invoke = ring_and_keys
    authorize(admin, "admin")
    authorize(admin, "invoke")
    authorize(invoke, "invoke")
    with pytest.raises(Forbidden):
        authorize(invoke, "admin")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"X-Api-Key": "fnp_abc"}, "fnp_abc"),
        ({"x-api-key": "  fnp_abc  "}, "fnp_abc"),
        ({"Authorization": "Bearer fnp_abc"}, "fnp_abc"),
        ({"authorization": "bearer   fnp_abc "}, "fnp_abc"),
        ({"Authorization": "BEARER fnp_abc"}, "fnp_abc"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": "Bearer"}, None),
        ({"X-Api-Key": ""}, None),
        ({"X-Api-Key": "   ", "Authorization": "Bearer fnp_b"}, "fnp_b"),
        ({"X-Api-Key": "fnp_a", "Authorization": "Bearer fnp_b"}, "fnp_a"),  # x-api-key first
    ],
)
def test_extract_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert extract_presented_key(CIMultiDict(headers)) == expected
