"""Resources several roles share, each an async context manager (started, then closed in reverse).

Kept free of role decisions: which of these a role starts, and in which order, is in the role's
own module.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.config import Settings
from fnplat.controller.docker_engine import DockerEngine
from fnplat.controller.engine import BuildLimits, ContainerEngine
from fnplat.controller.netfilter import Firewall
from fnplat.controller.service import Controller
from fnplat.controller.task import TaskInfo
from fnplat.domain import ApiKey, FunctionVersion
from fnplat.errors import InvalidParameter, ServiceError
from fnplat.housekeeping import Housekeeper
from fnplat.journal import Journal
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder
from fnplat.roles.store import Store
from fnplat.security import generate_api_key, hash_secret, parse_presented_key
from fnplat.store import repository
from fnplat.store.db import transaction
from fnplat.store.telemetry_writers import writer_for

CodeDirFor = Callable[[FunctionVersion], Path | None]  # a version's unpacked code; None for images


@asynccontextmanager
async def running_recorder(store: Store, settings: Settings, metrics: Metrics) -> AsyncIterator[Recorder]:
    recorder = Recorder(
        writer_for(store.engine, store.sessions),
        Journal(settings.journal_dir),
        settings=settings.telemetry,
        metrics=metrics,
    )
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.close()


@asynccontextmanager
async def docker_engine(settings: Settings) -> AsyncIterator[DockerEngine]:
    sandbox = settings.controller.sandbox
    engine = DockerEngine(
        settings.controller.instance_id,
        build_limits=BuildLimits(sandbox.build_memory_mb, sandbox.allow_function_bases),
    )
    try:
        yield engine
    finally:
        await engine.close()


@asynccontextmanager
async def running_controller(
    engine: ContainerEngine,
    settings: Settings,
    *,
    code_dir_for: CodeDirFor,
    recorder: Recorder,
    metrics: Metrics,
    firewall: Firewall,
    stop_tasks_s: float,
) -> AsyncIterator[Controller]:
    controller = Controller(
        engine,
        settings.controller,
        region=settings.region,
        code_dir_for=code_dir_for,
        log_sink=recorder.log,
        record_sink=recorder.record,
        metrics=metrics,
        firewall=firewall,
    )
    # After a dockerd restart Docker re-creates its chains: the task firewall is asserted again.
    controller.add_reconnect_hook(controller.ensure_firewall)
    try:
        await controller.start()
        yield controller
    finally:
        await controller.close(stop_tasks_s)


@asynccontextmanager
async def running_housekeeper(
    store: Store,
    artifacts: ArtifactStore,
    containers: ContainerEngine | None,
    settings: Settings,
    metrics: Metrics,
) -> AsyncIterator[Housekeeper]:
    housekeeper = Housekeeper(
        store.engine, store.sessions, artifacts, containers, settings.telemetry, metrics
    )
    await housekeeper.start()
    try:
        yield housekeeper
    finally:
        await housekeeper.close()


def local_code_dirs(artifacts: ArtifactStore) -> CodeDirFor:
    """One host: the zip a deploy stored in the data dir, unpacked on first use."""

    def code_dir(version: FunctionVersion) -> Path | None:
        return None if version.runtime == "image" else artifacts.unpack(version.code_sha256)

    return code_dir


def shared_code_dirs(artifacts: ArtifactStore, sessions: sessionmaker[Session]) -> CodeDirFor:
    """A cluster node: the zip fetched from the store by sha256 on first use (verified), kept in
    the node's data dir, unpacked there. Called on a worker thread (the controller's cold path)."""

    def code_dir(version: FunctionVersion) -> Path | None:
        if version.runtime == "image":
            return None
        sha256 = version.code_sha256
        if not artifacts.exists(sha256):
            with transaction(sessions) as session:
                data = repository.get_artifact_blob(session, sha256)
            if data is None:
                raise ServiceError(f"the code of {version.key} ({sha256[:12]}) is not in the store")
            artifacts.put(data)
        return artifacts.unpack(sha256)

    return code_dir


async def load_catalog(store: Store) -> Catalog:
    catalog = Catalog()
    await asyncio.to_thread(_load_catalog, catalog, store.sessions)
    return catalog


def _load_catalog(catalog: Catalog, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        versions = [
            v
            for f in repository.list_functions(session)
            if (v := repository.get_latest_version(session, f.name)) is not None
        ]
        catalog.load(versions, repository.list_routes(session), repository.list_api_keys(session))


def ensure_admin_key_file(sessions: sessionmaker[Session], key_file: Path) -> None:
    """`fnctl up`: on first start create an admin key, print it once and store it for the CLI (0600)."""
    with transaction(sessions) as session:
        if any(k.scope == "admin" and not k.revoked for k in repository.list_api_keys(session)):
            return
        presented, key = generate_api_key("admin", "admin", datetime.now(UTC))
        repository.add_api_key(session, key)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(presented + "\n")
    os.chmod(key_file, 0o600)
    print(
        f"Created the admin API key (shown once; saved for fnctl in {key_file}):\n  {presented}",
        file=sys.stderr,
        flush=True,
    )


def ensure_bootstrap_admin_key(sessions: sessionmaker[Session], presented: str) -> bool:
    """Cluster gateways: make the operator's FNPLAT_ADMIN_KEY an admin key (stored hashed) unless
    it is one already; True when it was added. Idempotent across replicas and restarts."""
    parsed = parse_presented_key(presented.strip())
    if parsed is None:
        raise InvalidParameter("FNPLAT_ADMIN_KEY is not an fnplat key (fnp_<12 hex>_<43 base62>)")
    key_id, secret = parsed
    key = ApiKey(
        key_id=key_id,
        name="bootstrap admin",
        scope="admin",
        secret_hash=hash_secret(secret),
        created_at=datetime.now(UTC),
    )
    with transaction(sessions) as session:
        existing = repository.get_api_key(session, key.key_id)
        if existing is not None:
            if existing.secret_hash != key.secret_hash or existing.scope != "admin":
                raise InvalidParameter(
                    f"FNPLAT_ADMIN_KEY's id {key.key_id} belongs to another key: make a new one"
                )
            return False
        repository.add_api_key(session, key)
        return True


def task_json(task: TaskInfo, node_id: str | None = None) -> Mapping[str, object]:
    """A task as /v1/tasks shows it."""
    return {
        "task_id": task.task_id,
        "node": node_id,
        "function": task.function_name,
        "version": task.version,
        "state": task.state,
        "container_id": task.container_id,
        "ip": task.ip,
        "started_at": task.created_at.isoformat(),
        "last_used_at": task.last_used_at.isoformat() if task.last_used_at else None,
        "invocations": task.invocations,
        "init_duration_ms": task.init_duration_ms,
        "current_request_id": task.current_request_id,
    }
