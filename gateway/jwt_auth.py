"""JWT authorizers as API Gateway's HTTP APIs have them: RS256/ES256 tokens checked against a JWKS.

A request passes when (lambda-compat §6, HTTP API JWT authorizer):
1. its identity source (`Authorization`) holds the token, alone or as `Bearer <token>`;
2. the token's header names `alg` RS256 or ES256 and a `kid` found in the JWKS, with a key of the
   matching type (RSA ≥ 2048 bits; EC P-256): the header cannot pick a weaker algorithm;
3. the signature verifies (PyJWT with cryptography);
4. `iss` equals the issuer; `aud` (a string or a list) or `client_id` is one of the audiences;
   `exp` is present and in the future; `nbf` and `iat`, when present, are not in the future;
   each with `leeway` seconds of clock skew allowed;
5. when the route requires scopes, the token's `scope` (space-separated) or `scp` (a list or a
   string) grants at least one of them.
Failures of 1-4 are 401 with `www-authenticate: Bearer ... error="invalid_token"` (JwtUnauthorized);
a missing scope is 403 (JwtForbidden). The claims and scopes go to the function as
`requestContext.authorizer.jwt` (payload 2.0) or `requestContext.authorizer` (1.0).

The JWKS comes from an injected async fetcher (a URL or a file, `fnplat.gateway.jwks_sources`)
and is cached (`JwksCache`): refreshed when older than `max_age`, and when a token names an
unknown `kid` (keys rotate), at most once per `min_refresh_interval`, so a flood of tokens with
made-up kids costs at most one fetch per interval. A failed refresh keeps the keys it had.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fnplat.errors import Forbidden, ServiceError, Unauthorized
from fnplat.gateway import responses
from fnplat.gateway.responses import HttpResponse
from fnplat.http_config import JwtAuth

log = logging.getLogger(__name__)

JwksFetcher = Callable[[], Awaitable[bytes]]

ALGORITHMS: Mapping[str, str] = MappingProxyType({"RS256": "RSA", "ES256": "EC"})  # alg → key type
MIN_RSA_BITS = 2048
MAX_TOKEN_LENGTH = 16 * 1024  # bytes of a token we are willing to parse
MAX_JWKS_KEYS = 100
DEFAULT_LEEWAY_S = 30.0
DEFAULT_MAX_AGE_S = 3600.0
DEFAULT_MIN_REFRESH_INTERVAL_S = 60.0
DEFAULT_VERIFIED_TTL_S = 60.0
DEFAULT_MAX_VERIFIED = 10_000
_BEARER = "bearer"


class JwtUnauthorized(Unauthorized):
    """401: no token, or one that does not verify. `description` says why (for the client's
    `www-authenticate` and our logs); it never carries key material or the token."""

    def __init__(self, description: str) -> None:
        super().__init__("Unauthorized")
        self.description = description

    def response(self) -> HttpResponse:
        base = responses.unauthorized()
        challenge = f'Bearer scope="" error="invalid_token" error_description="{_quoted(self.description)}"'
        return HttpResponse(base.status, (*base.headers, ("www-authenticate", challenge)), base.body)


class JwtForbidden(Forbidden):
    """403: a valid token without any of the route's scopes."""

    def __init__(self, required: Sequence[str]) -> None:
        super().__init__("Forbidden")
        self.required = tuple(required)

    def response(self) -> HttpResponse:
        base = responses.forbidden()
        challenge = f'Bearer scope="{_quoted(" ".join(self.required))}" error="insufficient_scope"'
        return HttpResponse(base.status, (*base.headers, ("www-authenticate", challenge)), base.body)


class JwksUnavailable(ServiceError):
    """No signing keys could be loaded at all (the IdP or the file is unreachable): 503, not 401."""

    status = 503
    error_type = "ServiceUnavailableException"


def _quoted(text: str) -> str:
    # A quoted-string in a header: no quotes, backslashes or control characters from token data.
    return "".join(c for c in text if c not in '"\\' and c.isprintable())


# --- JWKS -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str  # RS256 | ES256
    key: Any  # a cryptography public key


def parse_jwks(document: bytes) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS by kid. Keys we would never accept are skipped:
    no kid, `use` other than sig, another algorithm or curve, RSA under 2048 bits, malformed.
    Raises ValueError when the document is not a JWKS."""
    try:
        data = json.loads(document)
    except (ValueError, RecursionError):
        raise ValueError("the JWKS is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('the JWKS must be an object with a "keys" list')
    keys: dict[str, SigningKey] = {}
    for entry in data["keys"][:MAX_JWKS_KEYS]:
        key = _signing_key(entry)
        if key is not None:
            keys.setdefault(key.kid, key)
    return keys


def _signing_key(entry: object) -> SigningKey | None:
    if not isinstance(entry, dict):
        return None
    kid, kty, use, alg = entry.get("kid"), entry.get("kty"), entry.get("use"), entry.get("alg")
    if not isinstance(kid, str) or not kid or (use is not None and use != "sig"):
        return None
    if kty == "RSA":
        algorithm = "RS256"
    elif kty == "EC" and entry.get("crv") == "P-256":
        algorithm = "ES256"
    else:
        return None
    if alg is not None and alg != algorithm:
        return None
    try:
        key = jwt.PyJWK(entry, algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return None
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        return None  # a private key, or anything else: not what a JWKS should publish
    return SigningKey(kid, algorithm, key)


class JwksCache:
    """One JWKS (per issuer configuration), fetched on first use and refreshed as the module says."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = DEFAULT_MAX_AGE_S,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL_S,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._max_age = max_age
        self._min_interval = min_refresh_interval
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._refreshing: asyncio.Task[None] | None = None
        self.fetches = 0  # attempts, for tests and metrics

    async def key(self, kid: str) -> SigningKey | None:
        """The key for `kid`. A new kid (or no key set yet) waits for a fetch: the one in flight,
        or a new one if the last attempt is older than `min_refresh_interval`. A stale set is
        refreshed in the background while its keys keep serving. Raises JwksUnavailable when no
        key set could ever be loaded."""
        now = self._clock()
        in_flight = self._refreshing is not None and not self._refreshing.done()
        if self._loaded_at is None or kid not in self._keys:
            if in_flight or self._may_try(now):
                await asyncio.shield(self._start_refresh())  # shared: one fetch for all who wait
        elif now - self._loaded_at >= self._max_age and not in_flight and self._may_try(now):
            self._start_refresh()
        if self._loaded_at is None:
            raise JwksUnavailable("the signing keys of this authorizer cannot be loaded")
        return self._keys.get(kid)

    def _may_try(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self._min_interval

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refreshing is None or self._refreshing.done():
            self._tried_at = self._clock()  # now, not when the task first runs: no second start
            self._refreshing = asyncio.get_running_loop().create_task(self._load())
        return self._refreshing

    async def _load(self) -> None:
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch())
        except Exception as exc:  # an unreachable IdP must not take the gateway down
            log.warning("JWKS refresh failed (keeping %d known keys): %s", len(self._keys), exc)
            return
        if not keys:
            log.warning(
                "JWKS has no usable RS256/ES256 signing keys (keeping %d known keys)", len(self._keys)
            )
            return
        self._keys, self._loaded_at = keys, self._clock()


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JwtPrincipal:
    """A verified token: its claims and the scopes it grants."""

    claims: Mapping[str, Any]
    scopes: tuple[str, ...]

    def event_claims(self) -> dict[str, str]:
        """Claims as API Gateway hands them to functions: every value a string ([uncertain] arrays
        become `[a b]`; objects their JSON)."""
        return {name: _claim_text(value) for name, value in self.claims.items()}

    def authorizer_v2(self) -> dict[str, Any]:
        """`requestContext.authorizer` of a payload 2.0 event."""
        return {"jwt": {"claims": self.event_claims(), "scopes": list(self.scopes) or None}}

    def authorizer_v1(self) -> dict[str, Any]:
        """`requestContext.authorizer` of a payload 1.0 event."""
        return {"claims": self.event_claims(), "scopes": list(self.scopes) or None}


def _claim_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def token_from(value: str | None) -> str | None:
    """The token in an identity source value: `Bearer <token>` or the token alone."""
    if value is None:
        return None
    parts = value.split(None, 1)
    if parts and parts[0].lower() == _BEARER:
        return parts[1].strip() if len(parts) > 1 else None
    return value.strip() or None


def granted_scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """`scope` (space-separated) or else `scp` (a list, or a space-separated string)."""
    raw = claims.get("scope")
    if raw is None:
        raw = claims.get("scp")
    if isinstance(raw, str):
        return tuple(raw.split())
    if isinstance(raw, list):
        return tuple(item for item in raw if isinstance(item, str) and item)
    return ()


class JwtVerifier:
    """Verifies the tokens of one `JwtAuth` configuration.

    A token that verified is remembered (by its sha256) for `verified_ttl` seconds, never past
    its own `exp` (plus leeway): a client sends the same token request after request, and
    checking its signature every time costs 100-200 us where a lookup costs 1. A key removed
    from the JWKS therefore stops its tokens within `verified_ttl`. Only successes are kept, in
    a bounded least-recently-used table.
    """

    def __init__(
        self,
        config: JwtAuth,
        keys: JwksCache,
        *,
        clock: Callable[[], float] = time.time,
        leeway: float = DEFAULT_LEEWAY_S,
        verified_ttl: float = DEFAULT_VERIFIED_TTL_S,
        max_verified: int = DEFAULT_MAX_VERIFIED,
    ) -> None:
        self._config = config
        self._keys = keys
        self._clock = clock
        self._leeway = leeway
        self._verified_ttl = verified_ttl
        self._max_verified = max_verified
        self._verified: OrderedDict[bytes, tuple[float, JwtPrincipal]] = OrderedDict()

    async def verify(self, identity: str | None) -> JwtPrincipal:
        """The principal of the `Authorization` value; JwtUnauthorized (401) or JwtForbidden (403)."""
        token = token_from(identity)
        if token is None:
            raise JwtUnauthorized("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise JwtUnauthorized("the token is too long")
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(digest)
        if remembered is not None:
            if self._clock() < remembered[0]:
                self._verified.move_to_end(digest)
                return remembered[1]
            del self._verified[digest]
        principal = await self._verify(token)
        self._remember(digest, principal)
        return principal

    def _remember(self, digest: bytes, principal: JwtPrincipal) -> None:
        if self._verified_ttl <= 0:
            return
        exp = principal.claims["exp"]  # checked: a finite number
        until = min(self._clock() + self._verified_ttl, float(exp) + self._leeway)
        self._verified[digest] = (until, principal)
        self._verified.move_to_end(digest)
        while len(self._verified) > self._max_verified:
            self._verified.popitem(last=False)

    async def _verify(self, token: str) -> JwtPrincipal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtUnauthorized("the token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise JwtUnauthorized(f"the token's algorithm must be one of {', '.join(ALGORITHMS)}")
        if not isinstance(kid, str) or not kid:
            raise JwtUnauthorized("the token has no kid")
        key = await self._keys.key(kid)
        if key is None:
            raise JwtUnauthorized("the token's kid is not in the JWKS")
        if key.algorithm != alg:
            raise JwtUnauthorized("the token's algorithm does not match its key")
        claims = self._decode(token, key)
        self._check_claims(claims)
        scopes = granted_scopes(claims)
        required = self._config.scopes
        if required and not set(required) & set(scopes):
            raise JwtForbidden(required)
        return JwtPrincipal(MappingProxyType(claims), scopes)

    def _decode(self, token: str, key: SigningKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                # Time and audience are checked below, with our clock and API Gateway's rules.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise JwtUnauthorized("the signature does not verify") from None
        except jwt.PyJWTError:
            raise JwtUnauthorized("the token cannot be decoded") from None
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now, leeway = self._clock(), self._leeway
        if claims.get("iss") != self._config.issuer:
            raise JwtUnauthorized("the token's issuer is not accepted")
        if not self._audience_matches(claims):
            raise JwtUnauthorized("the token's audience is not accepted")
        exp = _number(claims, "exp")
        if exp is None:
            raise JwtUnauthorized("the token has no expiry")
        if exp <= now - leeway:
            raise JwtUnauthorized("the token has expired")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise JwtUnauthorized("the token is not valid yet")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise JwtUnauthorized("the token was issued in the future")

    def _audience_matches(self, claims: Mapping[str, Any]) -> bool:
        # API Gateway: "aud or client_id" must match an audience (Cognito access tokens carry
        # client_id and no aud).
        presented: list[object] = []
        for name in ("aud", "client_id"):
            value = claims.get(name)
            presented.extend(value if isinstance(value, list) else [value])
        return any(isinstance(a, str) and a in self._config.audience for a in presented)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim; a present claim of another type fails the token."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JwtUnauthorized(f"the token's {name} is not a number")
    return float(value)
