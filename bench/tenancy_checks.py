"""CPU cost of the gateway's per-request tenancy checks, each beside the API key check.

    .venv/bin/python -m bench.tenancy_checks [--rounds 2000]

In-process, no HTTP: what each check adds to a request before the gateway wires it in (issue 13's
target is each within 0.05 ms of `api_key` at p50; the end-to-end P1 rows belong to `python -m
bench` once the checks are on the request path). Prints p50 and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import botocore.auth
import jwt
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from multidict import CIMultiDict

from fnplat.gateway.cors import policy_for
from fnplat.gateway.jwt_auth import JwksCache, JwtVerifier
from fnplat.gateway.rate_limits import MemoryQuotaStore, PlanLimits, Quota, Throttle, UsageLimiter
from fnplat.gateway.responses import HttpResponse
from fnplat.gateway.sigv4 import SignedRequest, SigV4Verifier
from fnplat.http_config import CorsConfig, JwtAuth
from fnplat.security import KeyRing, generate_api_key


async def timed(rounds: int, check: Callable[[], Awaitable[object] | object]) -> tuple[float, float]:
    samples: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = check()
        if asyncio.iscoroutine(result):
            await result
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


async def run(rounds: int) -> None:
    presented, record = generate_api_key("bench", "invoke", datetime.now(UTC))
    ring = KeyRing([record])

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r"},
        {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e"},
    ]
    document = json.dumps({"keys": keys}).encode()

    async def fetch() -> bytes:
        return document

    config = JwtAuth(issuer="https://idp", audience=("api",), jwks_url="https://idp/jwks")
    remembering = JwtVerifier(config, JwksCache(fetch))
    verifying = JwtVerifier(config, JwksCache(fetch), verified_ttl=0)
    claims = {"iss": "https://idp", "aud": "api", "exp": time.time() + 3600, "scope": "read"}
    rs256 = "Bearer " + jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r"})
    es256 = "Bearer " + jwt.encode(claims, ec_key, algorithm="ES256", headers={"kid": "e"})

    secret = "S" * 43
    signed = AWSRequest(
        method="POST", url="http://127.0.0.1:8080/2015-03-31/functions/f/invocations", data=b"{}"
    )
    botocore.auth.SigV4Auth(Credentials("0123456789ab", secret), "lambda", "us-east-1").add_auth(signed)
    parts = urlsplit(signed.url)
    headers = [("Host", "127.0.0.1:8080")]
    headers += [(k, v.decode() if isinstance(v, bytes) else v) for k, v in signed.headers.items()]
    sigv4 = SigV4Verifier(lambda _: secret.encode())
    request = SignedRequest("POST", parts.path, parts.query, headers, b"{}")

    limiter = UsageLimiter(MemoryQuotaStore())
    plan = PlanLimits(throttle=Throttle(1e9, 10**9), quota=Quota(10**9, "month"))
    cors = policy_for(CorsConfig(allow_origins=("https://app.example.com",), allow_methods=("GET",)))
    origin = CIMultiDict({"Origin": "https://app.example.com"})
    response = HttpResponse(200, (("content-type", "application/json"),), b"{}")

    checks: list[tuple[str, Callable[[], Awaitable[object] | object]]] = [
        ("api_key (baseline)", lambda: ring.authenticate(presented)),
        ("jwt RS256, token remembered", lambda: remembering.verify(rs256)),
        ("jwt ES256, token remembered", lambda: remembering.verify(es256)),
        ("jwt RS256, full verification", lambda: verifying.verify(rs256)),
        ("jwt ES256, full verification", lambda: verifying.verify(es256)),
        ("sigv4", lambda: sigv4.verify(request)),
        ("usage plan (rate + quota)", lambda: limiter.admit("k", plan)),
        ("cors on a response", lambda: cors.apply(origin, response)),
    ]
    for name, check in checks:
        await timed(min(rounds, 200), check)  # warm-up: caches, JWKS, first lease
        p50, p99 = await timed(rounds, check)
        print(f"{name:32} p50 {p50:7.1f} us   p99 {p99:7.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tenancy_checks", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
