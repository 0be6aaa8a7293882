"""Lambda authorizers: identity sources, the simple response, the event and the TTL cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from multidict import CIMultiDict, MultiDict

from fnplat.gateway.lambda_authorizer import (
    AuthorizerCache,
    AuthorizerDecision,
    AuthorizerDenied,
    AuthorizerFailed,
    AuthorizerUnauthorized,
    authorizer_event,
    identity_values,
    parse_simple_response,
    route_arn,
)
from fnplat.gateway.proxy_event import build_http_api_v2_event
from fnplat.http_config import AUTHORIZATION_HEADER, IdentitySource, LambdaAuthorizerAuth

TOKEN_AND_TENANT = (AUTHORIZATION_HEADER, IdentitySource("querystring", "tenant"))

pytestmark = pytest.mark.timeout(60)  # a test waiting on a gate fails instead of hanging


@dataclass
class View:
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)
    query: Mapping[str, str] = field(default_factory=MultiDict)


def view(headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> View:
    return View(CIMultiDict(headers or {}), MultiDict(query or {}))


# --- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_view", "identity"),
    [
        (view({"Authorization": "tok"}, {"tenant": "t1"}), ("tok", "t1")),
        (view({"authorization": "Bearer tok"}, {"tenant": "t1", "x": "y"}), ("Bearer tok", "t1")),
    ],
)
def test_identity_from_headers_and_query(request_view: View, identity: tuple[str, ...]) -> None:
    assert identity_values(TOKEN_AND_TENANT, request_view) == identity


@pytest.mark.parametrize(
    ("request_view", "missing"),
    [
        (view({}, {"tenant": "t1"}), "$request.header.Authorization"),
        (view({"Authorization": ""}, {"tenant": "t1"}), "$request.header.Authorization"),
        (view({"Authorization": "   "}, {"tenant": "t1"}), "$request.header.Authorization"),
        (view({"Authorization": "tok"}, {}), "$request.querystring.tenant"),
        (view({"Authorization": "tok", "tenant": "header, not query"}), "$request.querystring.tenant"),
    ],
)
def test_a_missing_or_empty_identity_is_401_before_any_call(request_view: View, missing: str) -> None:
    with pytest.raises(AuthorizerUnauthorized) as caught:
        identity_values(TOKEN_AND_TENANT, request_view)
    assert caught.value.source.expression == missing
    response = caught.value.response()
    assert (response.status, json.loads(response.body)) == (401, {"message": "Unauthorized"})


# --- the simple response ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "authorized", "context"),
    [
        (b'{"isAuthorized": true}', True, {}),
        (b'{"isAuthorized": false}', False, {}),
        (b'{"isAuthorized": true, "context": null}', True, {}),
        (
            b'{"isAuthorized": true, "context": {"user": "u1", "n": 3, "admin": false, "tags": ["a"]}}',
            True,
            {"user": "u1", "n": 3, "admin": False, "tags": ["a"]},
        ),
        (b'{"isAuthorized": true, "extra": "ignored"}', True, {}),
    ],
)
def test_simple_responses(payload: bytes, authorized: bool, context: dict[str, Any]) -> None:
    decision = parse_simple_response(payload)
    assert (decision.authorized, dict(decision.context)) == (authorized, context)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not JSON"),
        (b"{nope", "not JSON"),
        (b"[" * 50_000, "not JSON"),
        (b"true", "must be an object"),
        (
            b'{"principalId": "u", "policyDocument": {}}',
            "isAuthorized must be true or false",
        ),  # IAM policy form
        (b'{"isAuthorized": "true"}', "isAuthorized must be true or false"),
        (b'{"isAuthorized": 1}', "isAuthorized must be true or false"),
        (b'{"isAuthorized": true, "context": "x"}', "context must be an object"),
        (b'{"isAuthorized": true, "context": [1]}', "context must be an object"),
    ],
)
def test_anything_else_is_a_500(payload: bytes, reason: str) -> None:
    with pytest.raises(AuthorizerFailed) as caught:
        parse_simple_response(payload)
    assert reason in caught.value.reason
    response = caught.value.response()
    assert (response.status, json.loads(response.body)) == (500, {"message": "Internal Server Error"})


def test_decisions_check_and_shape_the_event_context() -> None:
    allowed = parse_simple_response(b'{"isAuthorized": true, "context": {"user": "u1"}}')
    assert allowed.check() is allowed
    assert allowed.authorizer_v2() == {"lambda": {"user": "u1"}}
    assert allowed.authorizer_v1() == {"user": "u1"}
    with pytest.raises(AuthorizerDenied) as caught:
        parse_simple_response(b'{"isAuthorized": false}').check()
    response = caught.value.response()
    assert (response.status, json.loads(response.body)) == (403, {"message": "Forbidden"})


# --- the authorizer event -----------------------------------------------------------------------


def test_authorizer_event_is_the_request_event_without_its_body() -> None:
    request_event = build_http_api_v2_event(
        method="POST",
        raw_path="/my/path",
        raw_query_string="parameter1=value1",
        headers=[("Authorization", "tok"), ("Cookie", "c=1")],
        body=b"secret body",
        route_key="POST /my/{x}",
        path_parameters={"x": "path"},
        source_ip="192.0.2.1",
        request_id="r1",
        now_ms=1583348638390,
        domain_name="api.example.com",
        stage_variables={"v": "1"},
    )
    arn = route_arn(
        region="us-east-1",
        account_id="123456789012",
        api_id="fnplat",
        stage="$default",
        method="POST",
        path="/my/path",
    )
    assert arn == "arn:aws:execute-api:us-east-1:123456789012:fnplat/$default/POST/my/path"
    event = authorizer_event(request_event, ("tok",), arn)
    assert list(event)[:4] == ["version", "type", "routeArn", "identitySource"]
    assert (event["version"], event["type"], event["routeArn"], event["identitySource"]) == (
        "2.0",
        "REQUEST",
        arn,
        ["tok"],
    )
    assert "body" not in event and "isBase64Encoded" not in event
    for key in (
        "routeKey",
        "rawPath",
        "rawQueryString",
        "cookies",
        "headers",
        "queryStringParameters",
        "requestContext",
        "pathParameters",
        "stageVariables",
    ):
        assert event[key] == request_event[key], key
    json.dumps(event)


# --- the cache ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Authorizer:
    """A stand-in authorizer function: counts calls, can be held or made to fail."""

    def __init__(self, decision: AuthorizerDecision | None = None) -> None:
        self.decision = decision or AuthorizerDecision(True, {"user": "u"})
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> AuthorizerDecision:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise AuthorizerFailed("function error")
        return self.decision


AUTH = LambdaAuthorizerAuth(function="gatekeeper", ttl=300)


async def test_decisions_are_cached_for_the_ttl() -> None:
    clock, authorizer = Clock(), Authorizer()
    cache = AuthorizerCache(clock=clock)
    for _ in range(3):
        assert (await cache.decide(AUTH, ("tok",), authorizer)).authorized
    assert authorizer.calls == 1
    clock.now += 299
    await cache.decide(AUTH, ("tok",), authorizer)
    assert authorizer.calls == 1
    clock.now += 1
    await cache.decide(AUTH, ("tok",), authorizer)
    assert authorizer.calls == 2


async def test_denials_are_cached_too() -> None:
    authorizer = Authorizer(AuthorizerDecision(False, {}))
    cache = AuthorizerCache(clock=Clock())
    for _ in range(2):
        with pytest.raises(AuthorizerDenied):
            (await cache.decide(AUTH, ("tok",), authorizer)).check()
    assert authorizer.calls == 1


async def test_ttl_zero_calls_every_time() -> None:
    authorizer = Authorizer()
    cache = AuthorizerCache(clock=Clock())
    no_cache = LambdaAuthorizerAuth(function="gatekeeper", ttl=0)
    for _ in range(3):
        await cache.decide(no_cache, ("tok",), authorizer)
    assert authorizer.calls == 3 and len(cache) == 0


async def test_entries_are_per_authorizer_and_identity() -> None:
    authorizer = Authorizer()
    cache = AuthorizerCache(clock=Clock())
    other_function = LambdaAuthorizerAuth(function="other", ttl=300)
    two_sources = LambdaAuthorizerAuth(function="gatekeeper", identity=TOKEN_AND_TENANT, ttl=300)
    await cache.decide(AUTH, ("tok",), authorizer)
    await cache.decide(AUTH, ("tok2",), authorizer)
    await cache.decide(other_function, ("tok",), authorizer)
    await cache.decide(two_sources, ("tok", "t1"), authorizer)
    await cache.decide(two_sources, ("tokt", "1"), authorizer)  # no ambiguity in joining values
    assert authorizer.calls == 5 and len(cache) == 5


async def test_failures_are_not_cached() -> None:
    authorizer = Authorizer()
    authorizer.fail = True
    cache = AuthorizerCache(clock=Clock())
    with pytest.raises(AuthorizerFailed):
        await cache.decide(AUTH, ("tok",), authorizer)
    authorizer.fail = False
    assert (await cache.decide(AUTH, ("tok",), authorizer)).authorized
    assert authorizer.calls == 2


async def test_concurrent_requests_with_one_identity_share_a_call() -> None:
    authorizer = Authorizer()
    authorizer.gate = asyncio.Event()
    cache = AuthorizerCache(clock=Clock())
    waiting = [asyncio.create_task(cache.decide(AUTH, ("tok",), authorizer)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    waiting[0].cancel()  # one client gives up: the others still get the answer
    authorizer.gate.set()
    results = await asyncio.gather(*waiting[1:])
    assert all(r.authorized for r in results)
    assert authorizer.calls == 1


async def test_a_shared_failure_reaches_every_waiter() -> None:
    authorizer = Authorizer()
    authorizer.gate = asyncio.Event()
    authorizer.fail = True
    cache = AuthorizerCache(clock=Clock())
    waiting = [asyncio.create_task(cache.decide(AUTH, ("tok",), authorizer)) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    authorizer.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, AuthorizerFailed) for r in results)
    assert authorizer.calls == 1


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    clock, authorizer = Clock(), Authorizer()
    cache = AuthorizerCache(clock=clock, max_entries=2)
    await cache.decide(AUTH, ("a",), authorizer)
    await cache.decide(AUTH, ("b",), authorizer)
    await cache.decide(AUTH, ("a",), authorizer)  # a is now the most recent
    await cache.decide(AUTH, ("c",), authorizer)  # evicts b
    assert len(cache) == 2 and authorizer.calls == 3
    await cache.decide(AUTH, ("a",), authorizer)
    assert authorizer.calls == 3
    await cache.decide(AUTH, ("b",), authorizer)
    assert authorizer.calls == 4


async def test_sweep_drops_expired_entries() -> None:
    clock, authorizer = Clock(), Authorizer()
    cache = AuthorizerCache(clock=clock)
    await cache.decide(AUTH, ("a",), authorizer)
    await cache.decide(LambdaAuthorizerAuth(function="gatekeeper", ttl=3600), ("b",), authorizer)
    clock.now += 300
    cache.sweep()
    assert len(cache) == 1
