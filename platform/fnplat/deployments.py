"""Deploying a function: validate everything first, then store the artifact, build its image if
it has one, write the new version and routes in one transaction, and update the catalog.

Nothing is written to the store when any check fails; the only thing that may outlive a failed
deploy is a content-addressed artifact file, which is harmless and reused by the next deploy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.domain import FunctionSpec, FunctionVersion, Route
from fnplat.errors import Conflict, NotFound
from fnplat.gateway.routing import route_conflict_key
from fnplat.packaging import validate_upload
from fnplat.store import repository
from fnplat.store.db import transaction

ImageBuilder = Callable[[str, str], Awaitable[str]]  # (context dir, tag) -> image id
Retirer = Callable[[str, int | None], Awaitable[None]]  # (function name, version to keep)


@dataclass(frozen=True, slots=True)
class Deployment:
    version: FunctionVersion
    routes: tuple[Route, ...]


class DeployService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        artifacts: ArtifactStore,
        catalog: Catalog,
        build_image: ImageBuilder,
        retire: Retirer,
    ) -> None:
        self._sessions = sessions
        self._artifacts = artifacts
        self._catalog = catalog
        self._build_image = build_image
        self._retire = retire
        self._locks: dict[str, asyncio.Lock] = {}

    async def deploy(self, data: bytes) -> Deployment:
        # YAML parsing and zip inspection are CPU-bound: one hop off the event loop for all of it.
        summary, spec = await asyncio.to_thread(validate_upload, data)
        self._check_route_conflicts(spec)

        lock = self._locks.setdefault(spec.name, asyncio.Lock())
        async with lock:
            stored = await asyncio.to_thread(self._artifacts.put, data)
            image: str | None = None
            if spec.runtime == "image":
                context = await asyncio.to_thread(self._artifacts.unpack_build_context, stored.sha256)
                image = f"fnplat-fn/{spec.name.lower()}:{stored.sha256[:12]}"
                await self._build_image(str(context), image)
            version, routes = await asyncio.to_thread(
                self._write, spec, stored.sha256, summary.size, summary.unzipped_size, image
            )
            self._catalog.put_function(version, routes)
        await self._retire(spec.name, version.version)
        return Deployment(version, tuple(routes))

    async def remove(self, name: str) -> None:
        if self._catalog.latest(name) is None:
            raise NotFound(f"Function not found: {name}")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            await asyncio.to_thread(self._delete, name)
            self._catalog.remove_function(name)
        await self._retire(name, None)

    def _write(
        self, spec: FunctionSpec, sha256: str, size: int, unzipped_size: int, image: str | None
    ) -> tuple[FunctionVersion, list[Route]]:
        with transaction(self._sessions) as session:
            repository.record_artifact(session, sha256, size, unzipped_size)
            version = repository.create_version(session, spec, sha256, image)
            routes = repository.replace_routes(session, spec.name, spec.routes, spec.auth)
        return version, routes

    def _delete(self, name: str) -> None:
        with transaction(self._sessions) as session:
            if not repository.delete_function(session, name):
                raise NotFound(f"Function not found: {name}")

    def _check_route_conflicts(self, spec: FunctionSpec) -> None:
        # Keyed without parameter names: GET /a/{x} and GET /a/{y} are the same route.
        taken = {
            route_conflict_key(r.method, r.path): r
            for r in self._catalog.all_routes()
            if r.function_name != spec.name
        }
        own: dict[str, str] = {}
        for route in spec.routes:
            key = route_conflict_key(route.method, route.path)
            if key in own:
                raise Conflict(
                    f"routes '{own[key]}' and '{route.route_key}' of {spec.name} are the same route"
                )
            own[key] = route.route_key
            other = taken.get(key)
            if other is not None:
                raise Conflict(
                    f"route '{route.route_key}' clashes with '{other.route_key}' "
                    f"of function '{other.function_name}'"
                )
