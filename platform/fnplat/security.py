"""API keys: generation, the presented-key format, hashing and the in-memory key ring.

A presented key is `fnp_<key_id>_<secret>`: `key_id` (12 lower-case hex) is public and indexes the
record; `secret` (43 base62 characters, 256 bits from `secrets`) is shown once and only its
sha256 is stored. A plain, unsalted sha256 is enough here, unlike for passwords: the secret is
uniformly random with 256 bits of entropy, so there is nothing to guess or precompute, and the
check costs about a microsecond on the hot path.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

from fnplat.domain import ApiKey, KeyScope
from fnplat.errors import Forbidden, Unauthorized

KEY_PREFIX = "fnp"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 43  # 43 base62 characters ≥ 256 bits
PRESENTED_KEY_LENGTH = len(KEY_PREFIX) + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_SET = frozenset(_BASE62)
_HEX_LOWER_SET = frozenset("0123456789abcdef")
_BEARER = "bearer "


class Rejection(enum.Enum):
    """Why a presented key was not accepted (for logs and metrics; clients see only 401/403)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    WRONG_SECRET = "wrong_secret"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key(name: str, scope: KeyScope, now: datetime) -> tuple[str, ApiKey]:
    """A new key: the presented text (show it once) and the record to store (hash only)."""
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = "".join(secrets.choice(_BASE62) for _ in range(SECRET_LENGTH))
    record = ApiKey(key_id=key_id, name=name, scope=scope, secret_hash=hash_secret(secret), created_at=now)
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def parse_presented_key(text: str) -> tuple[str, str] | None:
    """`(key_id, secret)` if `text` has exactly the presented-key format, else None.

    The length is checked first, so oversized input is rejected without further work.
    """
    if len(text) != PRESENTED_KEY_LENGTH:
        return None
    prefix, sep1, rest = text.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not sep1 or not sep2:
        return None
    if len(key_id) != KEY_ID_LENGTH or not _HEX_LOWER_SET.issuperset(key_id):
        return None
    if len(secret) != SECRET_LENGTH or not _BASE62_SET.issuperset(secret):
        return None
    return key_id, secret


def verify_secret(secret: str, secret_hash: str) -> bool:
    """Constant-time comparison of the secret's hash with the stored one."""
    return hmac.compare_digest(hash_secret(secret).encode(), secret_hash.encode())


def extract_presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: `x-api-key`, else `Authorization: Bearer <key>`; None if neither.

    `headers` must look names up case-insensitively (aiohttp's CIMultiDictProxy) or have lower-case
    names. Another Authorization scheme (Basic, ...) is not a key.
    """
    value = headers.get("x-api-key")
    if value is not None and value.strip():
        return value.strip()
    authorization = headers.get("authorization")
    if authorization is not None and authorization[: len(_BEARER)].lower() == _BEARER:
        token = authorization[len(_BEARER) :].strip()
        return token or None
    return None


# Compared against when the key id is unknown, so that path costs the same as a wrong secret.
_DUMMY_HASH = hash_secret("fnplat-no-such-key")


class KeyRing:
    """The API keys, by key id, for checks on the hot path. Immutable: changes return a new ring."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys: Mapping[str, ApiKey] = MappingProxyType({key.key_id: key for key in keys})

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def with_key(self, key: ApiKey) -> KeyRing:
        """A ring with `key` added or replaced (e.g. the same record, now revoked)."""
        return KeyRing([*(k for k in self._keys.values() if k.key_id != key.key_id), key])

    def without(self, key_id: str) -> KeyRing:
        return KeyRing(k for k in self._keys.values() if k.key_id != key_id)

    def check(self, presented: str | None) -> ApiKey | Rejection:
        """The key a request is entitled to, or why it is rejected (pure; never raises)."""
        if not presented:
            return Rejection.MISSING
        parsed = parse_presented_key(presented)
        if parsed is None:
            return Rejection.MALFORMED
        key_id, secret = parsed
        key = self._keys.get(key_id)
        if key is None:
            verify_secret(secret, _DUMMY_HASH)
            return Rejection.UNKNOWN
        if not verify_secret(secret, key.secret_hash):
            return Rejection.WRONG_SECRET
        if key.revoked:
            return Rejection.REVOKED
        return key

    def authenticate(self, presented: str | None) -> ApiKey:
        """The caller's key; Unauthorized (401) when none is presented, Forbidden (403) otherwise.

        The messages are the gateway's generic ones: which check failed is not told to the caller.
        """
        result = self.check(presented)
        if isinstance(result, Rejection):
            if result is Rejection.MISSING:
                raise Unauthorized("Unauthorized")
            raise Forbidden("Forbidden")
        return result


def authorize(key: ApiKey, needed: KeyScope) -> None:
    """Raise Forbidden unless `key` may act with `needed` scope (admin keys may do everything)."""
    if needed == "admin" and key.scope != "admin":
        raise Forbidden("this API key may only invoke functions; the management API needs an admin key")
