"""Deploying a function: validate everything first, then store the artifact, build its image if
it has one, write the new version and routes in one transaction, and update the catalog.

Nothing is written to the store when any check fails, and an artifact this deploy stored is
removed again when the deploy fails after storing it (a full disk, an unreachable store, a route
taken meanwhile): a failed deploy leaves nothing behind.

Route conflicts are checked twice: against the catalog before anything is stored (a quick, clear
409), and by the store under a lock, where the unique route shape makes the check final for
concurrent deploys. Writing routes and updating the catalog happen under one lock per process,
so the catalog sees route changes in the order the store committed them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from fnplat.artifacts import ArtifactStore, StoredArtifact
from fnplat.catalog import Catalog
from fnplat.domain import FunctionSpec, FunctionVersion, Route
from fnplat.errors import Conflict, NotFound
from fnplat.packaging import validate_upload
from fnplat.resource_errors import disk_errors_as_insufficient_storage
from fnplat.route_grammar import route_shape
from fnplat.store import repository
from fnplat.store.db import transaction

ImageBuilder = Callable[[str, str], Awaitable[str]]  # (context dir, tag) -> image id
Retirer = Callable[[str, int | None], Awaitable[None]]  # (function name, version to keep)


@dataclass(frozen=True, slots=True)
class Deployment:
    version: FunctionVersion
    routes: tuple[Route, ...]


class KeyedLocks:
    """One asyncio lock per key, dropped as soon as nobody holds or waits for it (a lock per
    function name that was ever deployed would otherwise live as long as the process)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class DeployService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        artifacts: ArtifactStore,
        catalog: Catalog,
        build_image: ImageBuilder,
        retire: Retirer,
        *,
        share_artifacts: bool = False,
    ) -> None:
        """`share_artifacts`: keep each zip in the store too (a cluster: any controller may need it)."""
        self._sessions = sessions
        self._share_artifacts = share_artifacts
        self._artifacts = artifacts
        self._catalog = catalog
        self._build_image = build_image
        self._retire = retire
        self._locks = KeyedLocks()  # per function: one deploy or removal of it at a time
        self._routes_lock = asyncio.Lock()  # store write + catalog update of any function
        self._artifacts_in_use: collections.Counter[str] = collections.Counter()

    async def deploy(self, data: bytes) -> Deployment:
        # YAML parsing and zip inspection are CPU-bound: one hop off the event loop for all of it.
        summary, spec = await asyncio.to_thread(validate_upload, data)
        self._check_route_conflicts(spec)

        async with self._locks.hold(spec.name):
            with disk_errors_as_insufficient_storage("the artifact"):
                stored = await asyncio.to_thread(self._artifacts.put, data)
            self._artifacts_in_use[stored.sha256] += 1
            try:
                image: str | None = None
                if spec.runtime == "image":
                    with disk_errors_as_insufficient_storage("the image's build context"):
                        context = await asyncio.to_thread(self._artifacts.unpack_build_context, stored.sha256)
                    image = f"fnplat-fn/{spec.name.lower()}:{stored.sha256[:12]}"
                    await self._build_image(str(context), image)
                async with self._routes_lock:
                    self._check_route_conflicts(spec)  # the catalog may have changed meanwhile
                    version, routes = await asyncio.to_thread(
                        self._write, spec, stored.sha256, summary.size, summary.unzipped_size, image, data
                    )
                    self._catalog.put_function(version, routes)
            except BaseException:
                await self._discard(stored)
                raise
            finally:
                self._release(stored.sha256)
        await self._retire(spec.name, version.version)
        return Deployment(version, tuple(routes))

    async def remove(self, name: str) -> None:
        if self._catalog.latest(name) is None:
            raise NotFound(f"Function not found: {name}")
        async with self._locks.hold(name), self._routes_lock:
            await asyncio.to_thread(self._delete, name)
            self._catalog.remove_function(name)
        await self._retire(name, None)

    @property
    def locks_held(self) -> int:
        """Per-function locks alive now (each is dropped when its last user leaves)."""
        return len(self._locks)

    def _write(
        self,
        spec: FunctionSpec,
        sha256: str,
        size: int,
        unzipped_size: int,
        image: str | None,
        data: bytes,
    ) -> tuple[FunctionVersion, list[Route]]:
        with transaction(self._sessions) as session:
            repository.record_artifact(session, sha256, size, unzipped_size)
            if self._share_artifacts:
                repository.put_artifact_blob(session, sha256, data)
            version = repository.create_version(session, spec, sha256, image)
            routes = repository.replace_routes(session, spec.name, spec.routes, spec.auth)
        return version, routes

    def _delete(self, name: str) -> None:
        with transaction(self._sessions) as session:
            if not repository.delete_function(session, name):
                raise NotFound(f"Function not found: {name}")

    async def _discard(self, stored: StoredArtifact) -> None:
        """Remove an artifact this deploy stored, unless another deploy in flight uses it too.

        Only a new artifact (`created`) can be removed: an existing one may belong to a version.
        """
        if stored.created and self._artifacts_in_use[stored.sha256] == 1:
            await asyncio.to_thread(self._artifacts.discard, stored.sha256)

    def _release(self, sha256: str) -> None:
        self._artifacts_in_use[sha256] -= 1
        if self._artifacts_in_use[sha256] <= 0:
            del self._artifacts_in_use[sha256]

    def _check_route_conflicts(self, spec: FunctionSpec) -> None:
        # Keyed by shape: GET /a/{x} and GET /a/{y} are the same route.
        taken = {
            route_shape(r.method, r.path): r
            for r in self._catalog.all_routes()
            if r.function_name != spec.name
        }
        own: dict[str, str] = {}
        for route in spec.routes:
            key = route_shape(route.method, route.path)
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
