"""Sample domain objects for the store tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from fnplat.domain import ApiKey, FunctionSpec, KeyScope, RouteSpec, frozen_map

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec(name: str = "hello", memory: int = 128, routes: tuple[RouteSpec, ...] = ()) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        runtime="python3.11",
        handler="app.handler",
        memory=memory,
        timeout=3,
        environment=frozen_map({"GREETING": "hi"}),
        routes=routes,
    )


def api_key(key_id: str, scope: KeyScope = "invoke", created_at: datetime = T0) -> ApiKey:
    return ApiKey(
        key_id=key_id, name=f"key {key_id}", scope=scope, secret_hash=sha(key_id), created_at=created_at
    )
