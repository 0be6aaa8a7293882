"""JWT authorizer: RS256/ES256 verification, claims, scopes, JWKS caching and rotation (jwt_auth)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fnplat.gateway.jwt_auth import (
    JwksCache,
    JwksUnavailable,
    JwtForbidden,
    JwtPrincipal,
    JwtUnauthorized,
    JwtVerifier,
    granted_scopes,
    parse_jwks,
    token_from,
)
from fnplat.http_config import JwtAuth

NOW = 1_700_000_000.0
ISSUER = "https://idp.example.com/"
AUDIENCE = "my-api"

pytestmark = pytest.mark.timeout(60)  # a test waiting on a gate fails instead of hanging


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key_2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "scope": "read write",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any, kid: str | None, alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


class Source:
    """A JWKS fetcher whose document the test changes (key rotation) and whose calls it counts."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OSError("connection refused")
        return self.document


class Clocks:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0


def make(
    source: Source,
    clocks: Clocks,
    *,
    scopes: tuple[str, ...] = (),
    audience: tuple[str, ...] = (AUDIENCE,),
    verified_ttl: float = 0,
    max_verified: int = 100,
) -> tuple[JwtVerifier, JwksCache]:
    """A verifier; by default without its verified-token memory, so every call verifies in full."""
    cache = JwksCache(source, clock=lambda: clocks.mono, max_age=3600, min_refresh_interval=60)
    config = JwtAuth(issuer=ISSUER, audience=audience, jwks_url="https://idp.example.com/jwks", scopes=scopes)
    verifier = JwtVerifier(
        config,
        cache,
        clock=lambda: clocks.wall,
        leeway=30,
        verified_ttl=verified_ttl,
        max_verified=max_verified,
    )
    return verifier, cache


@pytest.fixture
def setup(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> tuple[JwtVerifier, Source, Clocks]:
    source = Source(jwks(rsa_jwk(rsa_key, "r1"), ec_jwk(ec_key, "e1")))
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    return verifier, source, clocks


async def settle() -> None:
    """Let ready tasks run (no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def rejected(verifier: JwtVerifier, identity: str | None) -> str:
    with pytest.raises(JwtUnauthorized) as caught:
        await verifier.verify(identity)
    return caught.value.description


# --- accepted tokens --------------------------------------------------------------------------


async def test_rs256_and_es256_tokens_verify(
    setup: tuple[JwtVerifier, Source, Clocks], rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier, source, _ = setup
    principal = await verifier.verify("Bearer " + sign(claims(), rsa_key, "r1"))
    assert principal.claims["sub"] == "user-1"
    assert principal.scopes == ("read", "write")
    principal = await verifier.verify(sign(claims(sub="ec-user"), ec_key, "e1", "ES256"))
    assert principal.claims["sub"] == "ec-user"
    assert source.calls == 1  # the JWKS is cached


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("abc", "abc"),
        ("  abc ", "abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic dXNlcjpwdw==", "Basic dXNlcjpwdw=="),  # not a bearer token: verified as is, and fails
        ("", None),
        (None, None),
    ],
)
def test_token_from_the_identity_source(value: str | None, token: str | None) -> None:
    assert token_from(value) == token


@pytest.mark.parametrize(
    ("token_claims", "audience"),
    [
        (claims(aud=["other", AUDIENCE]), (AUDIENCE,)),  # a list of audiences
        (claims(aud=None, client_id=AUDIENCE), (AUDIENCE,)),  # Cognito access tokens
        (claims(aud="other", client_id=AUDIENCE), (AUDIENCE,)),  # aud or client_id
        (claims(aud="second"), ("first", "second")),
        (claims(exp=NOW - 20), (AUDIENCE,)),  # expired 20 s ago: within the 30 s leeway
        (claims(nbf=NOW + 20), (AUDIENCE,)),
        (claims(iat=NOW + 20), (AUDIENCE,)),
        (claims(exp=NOW + 1.5, nbf=NOW - 1.5), (AUDIENCE,)),  # NumericDate may be fractional
    ],
)
async def test_accepted_claims(
    rsa_key: rsa.RSAPrivateKey, token_claims: dict[str, Any], audience: tuple[str, ...]
) -> None:
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), Clocks(), audience=audience)
    assert (await verifier.verify(sign(token_claims, rsa_key, "r1"))).claims["sub"] == "user-1"


# --- rejected tokens --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        (claims(iss="https://evil.example.com/"), "issuer"),
        (claims(iss=None), "issuer"),
        (claims(aud="other-api"), "audience"),
        (claims(aud=None), "audience"),
        (claims(aud=[1, 2]), "audience"),
        (claims(exp=None), "no expiry"),
        (claims(exp=NOW - 31), "expired"),
        (claims(exp="tomorrow"), "exp is not a number"),
        (claims(exp=True), "exp is not a number"),
        (claims(nbf=NOW + 31), "not valid yet"),
        (claims(iat=NOW + 31), "issued in the future"),
        (claims(iat="now"), "iat is not a number"),
    ],
)
async def test_rejected_claims(
    setup: tuple[JwtVerifier, Source, Clocks],
    rsa_key: rsa.RSAPrivateKey,
    token_claims: dict[str, Any],
    reason: str,
) -> None:
    verifier, _, _ = setup
    assert reason in await rejected(verifier, sign(token_claims, rsa_key, "r1"))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_rejected_tokens(
    setup: tuple[JwtVerifier, Source, Clocks],
    rsa_key: rsa.RSAPrivateKey,
    rsa_key_2: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    verifier, _, _ = setup
    good = sign(claims(), rsa_key, "r1")
    header, payload, signature = good.split(".")
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases: list[tuple[str | None, str]] = [
        (None, "no token"),
        ("Bearer ", "no token"),
        ("not-a-jwt", "not a JWT"),
        ("a" * 20000, "too long"),
        # payload changed after signing
        (f"{header}.{b64(json.dumps(claims(sub='admin')).encode())}.{signature}", "signature"),
        # signed by another key under the same kid
        (sign(claims(), rsa_key_2, "r1"), "signature"),
        # alg none, and HS256 keyed with the public key (algorithm confusion)
        (jwt.encode(claims(), None, algorithm="none", headers={"kid": "r1"}), "algorithm must be"),
        (
            f"{b64(json.dumps({'alg': 'HS256', 'kid': 'r1'}).encode())}.{payload}.{b64(public_pem[:32])}",
            "algorithm",
        ),
        # the header says RS256 but the kid is the EC key
        (
            f"{b64(json.dumps({'alg': 'RS256', 'kid': 'e1', 'typ': 'JWT'}).encode())}.{payload}.{signature}",
            "match",
        ),
        # ES256 header on the RSA key
        (sign(claims(), ec_key, "r1", "ES256"), "match"),
        (sign(claims(), rsa_key, None), "no kid"),
        (sign(claims(), rsa_key, "unknown"), "not in the JWKS"),
        (sign(claims(), rsa_key, "r1", "RS384"), "algorithm must be"),
    ]
    for identity, reason in cases:
        assert reason in await rejected(verifier, identity), identity


async def test_401_response_has_api_gateway_body_and_a_bearer_challenge() -> None:
    response = JwtUnauthorized('the token\'s "kid"\r\n is unknown').response()
    assert response.status == 401
    assert json.loads(response.body) == {"message": "Unauthorized"}
    challenge = response.header("www-authenticate")
    assert (
        challenge == 'Bearer scope="" error="invalid_token" error_description="the token\'s kid is unknown"'
    )


# --- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_claims", "granted"),
    [
        ({"scope": "read write"}, ("read", "write")),
        ({"scp": ["read", "write"]}, ("read", "write")),
        ({"scp": "read write"}, ("read", "write")),
        ({"scope": "a", "scp": ["b"]}, ("a",)),  # scope wins
        ({"scp": ["a", 1, ""]}, ("a",)),
        ({}, ()),
        ({"scope": 5}, ()),
    ],
)
def test_granted_scopes(token_claims: dict[str, Any], granted: tuple[str, ...]) -> None:
    assert granted_scopes(token_claims) == granted


@pytest.mark.parametrize(
    ("scope_claims", "allowed"),
    [
        ({"scope": "read"}, True),
        ({"scope": "admin write"}, True),  # one of the required scopes is enough
        ({"scp": ["write"]}, True),
        ({"scope": "other"}, False),
        ({"scope": None}, False),
    ],
)
async def test_required_scopes_403(
    rsa_key: rsa.RSAPrivateKey, scope_claims: dict[str, Any], allowed: bool
) -> None:
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), Clocks(), scopes=("read", "write"))
    token = sign(claims(**scope_claims), rsa_key, "r1")
    if allowed:
        await verifier.verify(token)
        return
    with pytest.raises(JwtForbidden) as caught:
        await verifier.verify(token)
    response = caught.value.response()
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Forbidden"}
    assert response.header("www-authenticate") == 'Bearer scope="read write" error="insufficient_scope"'


# --- the event's authorizer context -----------------------------------------------------------


def test_authorizer_context_for_both_payload_versions() -> None:
    principal = JwtPrincipal(
        claims={
            "sub": "u",
            "exp": 1700000300,
            "email_verified": True,
            "groups": ["a", "b"],
            "ratio": 0.5,
            "address": {"country": "NZ"},
        },
        scopes=("read",),
    )
    expected_claims = {
        "sub": "u",
        "exp": "1700000300",
        "email_verified": "true",
        "groups": "[a b]",
        "ratio": "0.5",
        "address": '{"country":"NZ"}',
    }
    assert principal.authorizer_v2() == {"jwt": {"claims": expected_claims, "scopes": ["read"]}}
    assert principal.authorizer_v1() == {"claims": expected_claims, "scopes": ["read"]}
    assert JwtPrincipal(claims={}, scopes=()).authorizer_v2() == {"jwt": {"claims": {}, "scopes": None}}


# --- the JWKS: parsing, caching, rotation -----------------------------------------------------


def test_parse_jwks_keeps_only_keys_we_would_accept(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    private_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key))  # with "d": a private key
    document = jwks(
        rsa_jwk(rsa_key, "ok-rsa"),
        ec_jwk(ec_key, "ok-ec", use="sig", alg="ES256"),
        rsa_jwk(rsa_key, "no-kid") | {"kid": None},
        rsa_jwk(rsa_key, "enc", use="enc"),
        rsa_jwk(rsa_key, "wrong-alg", alg="RS512"),
        rsa_jwk(small, "small"),
        ec_jwk(p384, "p384"),
        {"kty": "oct", "k": b64(b"secret"), "kid": "hmac"},
        {**private_jwk, "kid": "private"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not a key",
        rsa_jwk(rsa_key, "ok-rsa"),  # a repeated kid keeps the first
    )
    assert sorted(parse_jwks(document)) == ["ok-ec", "ok-rsa"]


@pytest.mark.parametrize("document", [b"", b"not json", b"[]", b'{"keys": {}}', b"[" * 50000])
def test_parse_jwks_rejects_documents_that_are_not_a_jwks(document: bytes) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        parse_jwks(document)


async def test_rotated_keys_are_picked_up_on_an_unknown_kid(
    rsa_key: rsa.RSAPrivateKey, rsa_key_2: rsa.RSAPrivateKey
) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "old")))
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    await verifier.verify(sign(claims(), rsa_key, "old"))
    clocks.mono += 61
    source.document = jwks(rsa_jwk(rsa_key, "old"), rsa_jwk(rsa_key_2, "new"))
    await verifier.verify(sign(claims(), rsa_key_2, "new"))
    assert source.calls == 2


async def test_a_flood_of_unknown_kids_fetches_once_per_interval(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    await verifier.verify(sign(claims(), rsa_key, "r1"))
    clocks.mono += 61
    for i in range(100):
        assert "not in the JWKS" in await rejected(verifier, sign(claims(), rsa_key, f"made-up-{i}"))
        clocks.mono += 0.1  # 10 s in all: within one interval
    assert source.calls == 2  # the first load and one refresh
    clocks.mono += 60
    await rejected(verifier, sign(claims(), rsa_key, "made-up-again"))
    assert source.calls == 3


async def test_concurrent_first_requests_share_one_fetch(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    source.gate = asyncio.Event()
    verifier, _ = make(source, Clocks())
    token = sign(claims(), rsa_key, "r1")
    pending = [asyncio.create_task(verifier.verify(token)) for _ in range(10)]
    await settle()
    source.gate.set()
    await asyncio.gather(*pending)
    assert source.calls == 1


async def test_stale_keys_are_refreshed_and_kept_when_the_refresh_fails(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    token = sign(claims(), rsa_key, "r1")
    await verifier.verify(token)
    clocks.mono += 3600
    source.fail = True
    await verifier.verify(token)  # stale: a refresh starts in the background
    await settle()
    assert source.calls == 2
    await verifier.verify(token)  # it failed: the known key still verifies, no retry within the interval
    await settle()
    assert source.calls == 2
    clocks.mono += 60
    source.fail = False
    await verifier.verify(token)
    await settle()
    assert source.calls == 3


async def test_a_stale_set_keeps_serving_while_it_is_refreshed(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    token = sign(claims(), rsa_key, "r1")
    await verifier.verify(token)
    source.gate = asyncio.Event()  # the IdP hangs
    clocks.mono += 3600
    await verifier.verify(token)  # does not wait for the refresh
    await settle()
    assert source.calls == 2
    source.gate.set()
    await settle()


async def test_a_request_during_a_slow_first_load_waits_for_it(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    source.gate = asyncio.Event()
    verifier, _ = make(source, Clocks())
    token = sign(claims(), rsa_key, "r1")
    first = asyncio.create_task(verifier.verify(token))
    await settle()  # the fetch is running (and stuck)
    second = asyncio.create_task(verifier.verify(token))
    await settle()
    source.gate.set()
    await asyncio.gather(first, second)
    assert source.calls == 1


async def test_no_keys_at_all_is_503_not_401(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(b"")
    source.fail = True
    clocks = Clocks()
    verifier, _ = make(source, clocks)
    token = sign(claims(), rsa_key, "r1")
    with pytest.raises(JwksUnavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status == 503
    with pytest.raises(JwksUnavailable):
        await verifier.verify(token)
    assert source.calls == 1  # rate-limited while unavailable too


async def test_a_jwks_without_usable_keys_does_not_replace_good_keys(rsa_key: rsa.RSAPrivateKey) -> None:
    source = Source(jwks(rsa_jwk(rsa_key, "r1")))
    clocks = Clocks()
    verifier, cache = make(source, clocks)
    token = sign(claims(), rsa_key, "r1")
    await verifier.verify(token)
    clocks.mono += 3600
    source.document = jwks({"kty": "oct", "k": "c2VjcmV0", "kid": "r1"})
    await verifier.verify(token)
    assert await cache.key("r1") is not None


# --- verified tokens are remembered -------------------------------------------------------------


class CountingDecode:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = jwt.decode

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(jwt, "decode", counted)


async def test_a_verified_token_is_remembered_until_the_ttl(
    rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = CountingDecode(monkeypatch)
    clocks = Clocks()
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), clocks, verified_ttl=60)
    token = sign(claims(), rsa_key, "r1")
    first = await verifier.verify("Bearer " + token)
    assert await verifier.verify(token) is first  # same token, with or without Bearer
    assert decode.calls == 1
    clocks.wall += 60
    await verifier.verify(token)
    assert decode.calls == 2
    await verifier.verify(sign(claims(sub="other"), rsa_key, "r1"))  # another token: verified
    assert decode.calls == 3


async def test_a_remembered_token_still_expires(rsa_key: rsa.RSAPrivateKey) -> None:
    clocks = Clocks()
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), clocks, verified_ttl=3600)
    token = sign(claims(exp=NOW + 10), rsa_key, "r1")
    await verifier.verify(token)
    clocks.wall += 39  # within exp + leeway
    await verifier.verify(token)
    clocks.wall += 1
    assert "expired" in await rejected(verifier, token)


async def test_refusals_are_not_remembered(
    rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = CountingDecode(monkeypatch)
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), Clocks(), scopes=("admin",), verified_ttl=60)
    token = sign(claims(), rsa_key, "r1")
    for _ in range(2):
        with pytest.raises(JwtForbidden):
            await verifier.verify(token)
    assert decode.calls == 2


async def test_the_memory_is_bounded(rsa_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    decode = CountingDecode(monkeypatch)
    verifier, _ = make(Source(jwks(rsa_jwk(rsa_key, "r1"))), Clocks(), verified_ttl=60, max_verified=2)
    a, b, c = (sign(claims(sub=name), rsa_key, "r1") for name in "abc")
    for token in (a, b, a, c):  # c pushes out b, the least recently used
        await verifier.verify(token)
    assert decode.calls == 3
    await verifier.verify(a)
    assert decode.calls == 3
    await verifier.verify(b)
    assert decode.calls == 4
