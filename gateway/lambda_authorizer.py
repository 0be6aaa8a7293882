"""Lambda authorizers with the simple response, as API Gateway's HTTP APIs have them.

1. **Identity**: the configured identity sources (`$request.header.NAME`,
   `$request.querystring.NAME`) are read from the request. If any is missing or empty the
   request gets 401 and the authorizer is not called (AuthorizerUnauthorized).
2. **Event**: the authorizer receives the payload 2.0 *authorizer* event: the route's 2.0
   request event without `body`/`isBase64Encoded`, plus `type: REQUEST`, `routeArn` and
   `identitySource` (the identity values) (`authorizer_event`).
3. **Response**: `{"isAuthorized": bool, "context": {...}}` (`parse_simple_response`).
   `false` → 403 (AuthorizerDenied); a function error or any other shape → 500 `{"message":
   "Internal Server Error"}` (AuthorizerFailed), as API Gateway answers.
4. **Cache**: a decision is kept per authorizer and identity value for the configured TTL
   (0: none), allow and deny alike, as API Gateway caches authorizer responses. Concurrent
   requests with the same identity share one call. Entries are bounded (least recently used
   go first) and keyed by a digest of the identity, so tokens are not kept in memory.
5. The context reaches the function as `requestContext.authorizer.lambda` (2.0) or, in 1.0
   events, as the keys of `requestContext.authorizer` ([uncertain]: REST's shape, which is why
   1.0 is chosen).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from fnplat.errors import Forbidden, ServiceError, Unauthorized
from fnplat.gateway import responses
from fnplat.gateway.responses import HttpResponse
from fnplat.http_config import IdentitySource, LambdaAuthorizerAuth

DEFAULT_MAX_ENTRIES = 10_000
_INTERNAL_SERVER_ERROR = responses.gateway_message(500, "Internal Server Error")


class RequestView(Protocol):
    """What identity sources read; aiohttp's `web.Request` is one (both look names up as HTTP does)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def query(self) -> Mapping[str, str]: ...


class AuthorizerUnauthorized(Unauthorized):
    """401: an identity source is missing or empty; the authorizer was not called."""

    def __init__(self, source: IdentitySource) -> None:
        super().__init__("Unauthorized")
        self.source = source

    def response(self) -> HttpResponse:
        return responses.unauthorized()


class AuthorizerDenied(Forbidden):
    """403: the authorizer said `isAuthorized: false`."""

    def __init__(self) -> None:
        super().__init__("Forbidden")

    def response(self) -> HttpResponse:
        return responses.forbidden()


class AuthorizerFailed(ServiceError):
    """500: the authorizer failed or answered something other than the simple response."""

    def __init__(self, reason: str) -> None:
        super().__init__("Internal Server Error")
        self.reason = reason  # for logs; the client sees API Gateway's generic body

    def response(self) -> HttpResponse:
        return _INTERNAL_SERVER_ERROR


def identity_values(sources: tuple[IdentitySource, ...], view: RequestView) -> tuple[str, ...]:
    """The identity of a request; AuthorizerUnauthorized when a source is missing or empty."""
    values: list[str] = []
    for source in sources:
        mapping = view.headers if source.location == "header" else view.query
        value = mapping.get(source.name)
        if value is None or not value.strip():
            raise AuthorizerUnauthorized(source)
        values.append(value)
    return tuple(values)


@dataclass(frozen=True, slots=True)
class AuthorizerDecision:
    authorized: bool
    context: Mapping[str, Any]

    def check(self) -> AuthorizerDecision:
        """Self, or AuthorizerDenied when not authorized."""
        if not self.authorized:
            raise AuthorizerDenied()
        return self

    def authorizer_v2(self) -> dict[str, Any]:
        """`requestContext.authorizer` of a payload 2.0 event."""
        return {"lambda": dict(self.context)}

    def authorizer_v1(self) -> dict[str, Any]:
        """`requestContext.authorizer` of a payload 1.0 event."""
        return dict(self.context)


def parse_simple_response(payload: bytes) -> AuthorizerDecision:
    """The authorizer function's result; AuthorizerFailed if it is not the simple response."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise AuthorizerFailed("the authorizer's result is not JSON") from None
    if not isinstance(value, dict):
        raise AuthorizerFailed("the authorizer's result must be an object with isAuthorized")
    authorized = value.get("isAuthorized")
    if not isinstance(authorized, bool):
        raise AuthorizerFailed("isAuthorized must be true or false")
    context = value.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise AuthorizerFailed("context must be an object")
    return AuthorizerDecision(authorized, MappingProxyType(context))


def route_arn(*, region: str, account_id: str, api_id: str, stage: str, method: str, path: str) -> str:
    """`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH` as in the authorizer event."""
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}{path}"


def authorizer_event(request_event: Mapping[str, Any], identity: tuple[str, ...], arn: str) -> dict[str, Any]:
    """The payload 2.0 authorizer event built from the route's 2.0 request event."""
    event: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": arn,
        "identitySource": list(identity),
    }
    for key, value in request_event.items():
        if key not in ("version", "body", "isBase64Encoded"):
            event[key] = value
    return event


# --- the cache --------------------------------------------------------------------------------


def _cache_key(config: LambdaAuthorizerAuth, identity: tuple[str, ...]) -> bytes:
    digest = hashlib.sha256(config.function.encode())
    for source, value in zip(config.identity, identity, strict=True):
        for part in (source.expression, value):
            data = part.encode()
            digest.update(len(data).to_bytes(4, "big") + data)  # length-prefixed: no ambiguous joins
    return digest.digest()


class AuthorizerCache:
    """Decisions per (authorizer, identity) for their TTL; one per gateway process."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, AuthorizerDecision]] = OrderedDict()
        self._calls: dict[bytes, asyncio.Task[AuthorizerDecision]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def decide(
        self,
        config: LambdaAuthorizerAuth,
        identity: tuple[str, ...],
        call: Callable[[], Awaitable[AuthorizerDecision]],
    ) -> AuthorizerDecision:
        """The cached decision, or `call()`'s (cached for `config.ttl`). Failures are not cached."""
        if config.ttl <= 0:
            return await call()
        key = _cache_key(config, identity)
        entry = self._entries.get(key)
        if entry is not None:
            expires, decision = entry
            if self._clock() < expires:
                self._entries.move_to_end(key)
                return decision
            del self._entries[key]
        task = self._calls.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._call(key, config.ttl, call))
            # Its waiters handle a failure; this only keeps an unawaited one from being reported.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._calls[key] = task
        return await asyncio.shield(task)  # one waiter giving up does not cancel the others' call

    async def _call(
        self, key: bytes, ttl: int, call: Callable[[], Awaitable[AuthorizerDecision]]
    ) -> AuthorizerDecision:
        try:
            decision = await call()
        finally:
            self._calls.pop(key, None)
        self._entries[key] = (self._clock() + ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return decision

    def sweep(self) -> None:
        """Drop expired entries (they are also dropped when looked up)."""
        now = self._clock()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
