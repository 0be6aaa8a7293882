"""The management REST API under /v1 (admin keys only). Handlers are thin: parse, call, render."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from fnplat import ids
from fnplat.domain import ARTIFACT_ZIPPED_LIMIT, ApiKey, FunctionVersion, Route
from fnplat.errors import BadRequest, InvalidParameter, NotFound, UnsupportedMediaType
from fnplat.gateway.auth import authenticate
from fnplat.gateway.bodies import read_body
from fnplat.gateway.deps import DEPS, GatewayDeps
from fnplat.gateway.observed import observed
from fnplat.gateway.public_errors import ERRORS
from fnplat.gateway.webresponse import to_web_response
from fnplat.security import generate_api_key
from fnplat.store import repository
from fnplat.store.calls import store_call
from fnplat.store.db import transaction

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
LOGS_FLUSH_WAIT_S = 2.0  # what a log reader waits for the newest lines to be written first
# What API responses show for each environment value unless ?reveal_environment=true.
MASKED_VALUE = "****"
KEY_REQUEST_LIMIT = 64 * 1024  # {"name": ..., "scope": ...}: anything larger is not one


def admin(handler: Callable[[web.Request, GatewayDeps], Awaitable[web.StreamResponse]]) -> Handler:
    """Wrap a handler: admin key required, every error rendered as one AWS-style error body
    (public_errors.py decides what it may say)."""

    @observed("management")
    async def wrapped(request: web.Request) -> web.StreamResponse:
        deps = request.app[DEPS]
        try:
            authenticate(request, deps.catalog.keyring, "admin")
            return await handler(request, deps)
        except Exception as exc:
            doing = f"{request.method} {request.raw_path!r}"
            return to_web_response(request.app[ERRORS].aws(exc, ids.request_id(), doing))

    return wrapped


def setup_management_routes(app: web.Application) -> None:
    app.router.add_post("/v1/functions", admin(deploy_function))
    app.router.add_get("/v1/functions", admin(list_functions))
    app.router.add_get("/v1/functions/{name}", admin(describe_function))
    app.router.add_delete("/v1/functions/{name}", admin(delete_function))
    app.router.add_get("/v1/functions/{name}/logs", admin(function_logs))
    app.router.add_get("/v1/routes", admin(list_routes))
    app.router.add_post("/v1/keys", admin(create_key))
    app.router.add_get("/v1/keys", admin(list_keys))
    app.router.add_delete("/v1/keys/{key_id}", admin(revoke_key))
    app.router.add_get("/v1/tasks", admin(list_tasks))
    app.router.add_get("/v1/nodes", admin(list_nodes))


async def deploy_function(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    if request.content_type not in ZIP_TYPES:
        raise UnsupportedMediaType(
            f"upload the function as a zip (Content-Type: application/zip), not {request.content_type!r}"
        )
    data = await read_body(request, ARTIFACT_ZIPPED_LIMIT, "the zipped package")
    if not data:
        raise BadRequest("empty upload: send the function's zip as the request body")
    deployment = await deps.deployer.deploy(data)
    body = _version_json(deployment.version, deployment.routes, deps)
    return web.json_response(body, status=201)


async def list_functions(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    functions = [
        {
            "name": v.function_name,
            "latest_version": v.version,
            "runtime": v.runtime,
            "memory": v.memory,
            "timeout": v.timeout,
            "updated_at": v.created_at.isoformat(),
        }
        for v in deps.catalog.functions()
    ]
    return web.json_response({"functions": functions})


async def describe_function(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    version = _latest(deps, request.match_info["name"])
    reveal = _bool_param(request, "reveal_environment")
    routes = deps.catalog.routes_of(version.function_name)
    return web.json_response(_version_json(version, routes, deps, reveal_environment=reveal))


async def delete_function(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    await deps.deployer.remove(request.match_info["name"])
    return web.Response(status=204)


async def function_logs(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    name = request.match_info["name"]
    _latest(deps, name)
    limit = _int_param(request, "limit", default=100, low=1, high=10000)
    request_id = request.query.get("request_id") or None
    # Bounded: with the store down or hung this answers 503 within the store's timeouts.
    deadline = deps.settings.telemetry.store_call_deadline_s
    if deps.recorder is not None:
        await deps.recorder.flush_before_read(min(deadline, LOGS_FLUSH_WAIT_S))

    def query() -> list[dict[str, Any]]:
        with transaction(deps.sessions) as session:
            events = repository.recent_log_events(session, name, limit=limit, request_id=request_id)
        return [
            {"timestamp": e.timestamp.isoformat(), "request_id": e.request_id, "message": e.message}
            for e in events
        ]

    return web.json_response({"events": await store_call(query, deadline, f"logs of {name}")})


async def list_routes(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    return web.json_response({"routes": [_route_json(r, deps) for r in deps.catalog.all_routes()]})


async def create_key(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    try:
        body = json.loads(await read_body(request, KEY_REQUEST_LIMIT, "the key request"))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest('the body must be JSON like {"name": "ci", "scope": "invoke"}') from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    name, scope = body.get("name"), body.get("scope", "invoke")
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise InvalidParameter("name must be a string of 1-128 characters")
    if scope not in ("admin", "invoke"):
        raise InvalidParameter(f"scope must be 'admin' or 'invoke', got {scope!r}")
    presented, key = generate_api_key(name, scope, datetime.now(UTC))

    def store() -> None:
        with transaction(deps.sessions) as session:
            repository.add_api_key(session, key)

    await asyncio.to_thread(store)
    deps.catalog.put_key(key)
    return web.json_response({**_key_json(key), "key": presented}, status=201)


async def list_keys(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    def query() -> list[ApiKey]:
        with transaction(deps.sessions) as session:
            return repository.list_api_keys(session)

    keys = await asyncio.to_thread(query)
    return web.json_response({"keys": [_key_json(k) for k in keys]})


async def revoke_key(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    key_id = request.match_info["key_id"]

    def revoke() -> bool:
        with transaction(deps.sessions) as session:
            return repository.revoke_api_key(session, key_id)

    if not await asyncio.to_thread(revoke):
        raise NotFound(f"API key not found: {key_id}")
    deps.catalog.revoke_key(key_id)
    return web.Response(status=204)


async def list_tasks(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    tasks = deps.task_snapshot()
    if inspect.isawaitable(tasks):
        tasks = await tasks
    return web.json_response({"tasks": tasks}, dumps=_dumps)


async def list_nodes(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    nodes = await deps.nodes() if deps.nodes is not None else []
    return web.json_response({"nodes": nodes}, dumps=_dumps)


def _latest(deps: GatewayDeps, name: str) -> FunctionVersion:
    version = deps.catalog.latest(name)
    if version is None:
        raise NotFound(f"Function not found: {name}")
    return version


def _int_param(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None or raw.lower() in ("false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise InvalidParameter(f"{name} must be true or false, got {raw!r}")


def _version_json(
    version: FunctionVersion,
    routes: tuple[Route, ...] | list[Route],
    deps: GatewayDeps,
    *,
    reveal_environment: bool = False,
) -> dict[str, Any]:
    """A version as the API shows it; environment values are masked unless asked for."""
    environment = (
        dict(version.environment)
        if reveal_environment
        else dict.fromkeys(version.environment, MASKED_VALUE)
    )
    return {
        "name": version.function_name,
        "version": version.version,
        "runtime": version.runtime,
        "handler": version.handler,
        "memory": version.memory,
        "timeout": version.timeout,
        "environment": environment,
        "code_sha256": version.code_sha256,
        "image": version.image,
        "updated_at": version.created_at.isoformat(),
        "routes": [_route_json(r, deps) for r in routes],
        "invoke_url": f"{deps.base_url}/2015-03-31/functions/{version.function_name}/invocations",
    }


def _route_json(route: Route, deps: GatewayDeps) -> dict[str, Any]:
    url = None if route.path == "$default" else deps.base_url + route.path
    return {
        "method": route.method,
        "path": route.path,
        "route_key": route.route_key,
        "function": route.function_name,
        "qualifier": route.qualifier,
        "auth": route.auth,
        "url": url,
    }


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "revoked": key.revoked,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
