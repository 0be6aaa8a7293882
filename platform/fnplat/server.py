"""`fnctl up`: the one-host platform, gateway and controller in one process.

Start-up order (each step is undone in reverse on the way out): data dir (private) → its pid file
locked (fnplat.server_lock) → store migrated to head → environment key (stored environments
encrypted under it) → admin key → catalog loaded into memory → recorder (replays its journal) →
container engine and controller (removes orphans, starts the Runtime API, installs the task
firewall) → housekeeping (retention, GC) → gateway listening. The way out is bounded as a whole
by FNPLAT_SHUTDOWN_TIMEOUT (fnplat.shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.config import Settings
from fnplat.controller.docker_engine import DockerEngine
from fnplat.controller.engine import BuildLimits
from fnplat.controller.netfilter import Firewall, firewall_for
from fnplat.controller.service import Controller
from fnplat.controller.task import TaskInfo
from fnplat.datadir import own_code_access, prepare_data_dir
from fnplat.deployments import DeployService
from fnplat.domain import FunctionVersion
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.gateway.listener import Listener, start_listener
from fnplat.gateway.open_files import raise_open_files_limit
from fnplat.housekeeping import Housekeeper
from fnplat.journal import Journal
from fnplat.metrics import Metrics
from fnplat.recorder import Recorder
from fnplat.secrets_startup import start_environment_cipher
from fnplat.security import generate_api_key
from fnplat.server_lock import ServerLock
from fnplat.shutdown import ExitWatchdog, ShutdownBudget, stop_gateway
from fnplat.store import repository
from fnplat.store.db import make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.telemetry_writers import writer_for

log = logging.getLogger("fnplat")


def serve(settings: Settings) -> None:
    """Run the platform in the foreground until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    soft, hard = raise_open_files_limit()
    log.info("open files limit: %d (hard limit %d)", soft, hard)
    try:
        import uvloop

        uvloop.install()
    except (
        ImportError
    ):  # pragma: no cover - uvloop is a declared dependency; this keeps odd platforms working
        pass
    asyncio.run(_main(settings))


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_platform(settings) as base_url:
        print(f"fnplat is up at {base_url} (data dir {settings.data_dir}); Ctrl-C stops it", flush=True)
        await stop.wait()
        ExitWatchdog(settings.shutdown.timeout_s).start()  # the process is gone by then, whatever hangs
        print("fnplat is stopping", flush=True)
    print("fnplat stopped", flush=True)


@contextlib.asynccontextmanager
async def running_platform(settings: Settings) -> AsyncIterator[str]:
    """Start everything, yield the gateway's base URL, and stop everything in reverse order,
    within settings.shutdown.timeout_s (fnplat.shutdown)."""
    firewall = firewall_for(settings.controller, settings.database_url)  # bad settings fail first
    prepare_data_dir(settings)
    server_lock = ServerLock.acquire(settings.data_dir)  # before anything touches the data dir or tasks
    try:
        async with _running_platform(settings, firewall) as base_url:
            yield base_url
    finally:
        server_lock.release()


@contextlib.asynccontextmanager
async def _running_platform(settings: Settings, firewall: Firewall) -> AsyncIterator[str]:
    budget = ShutdownBudget.of(settings.shutdown.timeout_s)
    db = make_engine(settings.db_url, settings.telemetry)
    try:
        await asyncio.to_thread(upgrade_to_head, db)
        cipher = await asyncio.to_thread(start_environment_cipher, settings, db)
    except BaseException:
        db.dispose()
        raise
    sessions = make_sessionmaker(db, cipher)
    await asyncio.to_thread(_ensure_admin_key, sessions, settings.admin_key_file)

    catalog = Catalog()
    await asyncio.to_thread(_load_catalog, catalog, sessions)
    metrics = Metrics()
    recorder = Recorder(
        writer_for(db, sessions), Journal(settings.journal_dir), settings=settings.telemetry, metrics=metrics
    )
    await recorder.start()
    artifacts = ArtifactStore(
        settings.artifacts_dir, settings.code_dir, own_code_access(settings.controller.task_user)
    )

    def code_dir_for(version: FunctionVersion) -> Path | None:
        return None if version.runtime == "image" else artifacts.unpack(version.code_sha256)

    sandbox = settings.controller.sandbox
    engine = DockerEngine(
        settings.controller.instance_id,
        build_limits=BuildLimits(sandbox.build_memory_mb, sandbox.allow_function_bases),
    )
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
    housekeeper = Housekeeper(db, sessions, artifacts, engine, settings.telemetry, metrics)
    listener: Listener | None = None
    try:
        await controller.start()
        await housekeeper.start()

        async def build_image(context: str, tag: str) -> str:
            return await engine.build_image(Path(context), tag)

        deployer = DeployService(sessions, artifacts, catalog, build_image, controller.retire)
        deps = GatewayDeps(
            settings=settings,
            catalog=catalog,
            invoker=controller,
            deployer=deployer,
            sessions=sessions,
            recorder=recorder,
            metrics=metrics,
            task_snapshot=lambda: [_task_json(t) for t in controller.tasks()],
        )
        listener = await start_listener(
            init_app(deps),
            settings.host,
            settings.port,
            settings.gateway,
            metrics,
            shutdown_timeout_s=budget.drain_s,
        )
        base_url = deps.base_url
        settings.endpoint_file.write_text(base_url + "\n")
        yield base_url
    finally:
        if listener is not None:
            await stop_gateway(listener.runner, controller, budget.drain_s)
        await housekeeper.close()
        await controller.close(budget.stop_tasks_s)
        await engine.close()
        await recorder.close()
        db.dispose()


def _ensure_admin_key(sessions: sessionmaker[Session], key_file: Path) -> None:
    """On first start create an admin key, print it once and store it for the CLI (mode 0600)."""
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


def _load_catalog(catalog: Catalog, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        versions = [
            v
            for f in repository.list_functions(session)
            if (v := repository.get_latest_version(session, f.name)) is not None
        ]
        catalog.load(versions, repository.list_routes(session), repository.list_api_keys(session))


def _task_json(task: TaskInfo) -> Mapping[str, object]:
    return {
        "task_id": task.task_id,
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
