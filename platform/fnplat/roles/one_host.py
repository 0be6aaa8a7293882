"""`fnctl up`: the one-host platform, gateway and controller in one process.

Start-up order (each step undone in reverse on the way out, within FNPLAT_SHUTDOWN_TIMEOUT):
data dir (private) → its pid file locked (fnplat.server_lock) → store migrated to head →
environment key (stored environments encrypted under it) → admin key → catalog → recorder
(replays its journal) → container engine → controller (removes orphans, starts the Runtime API,
installs the task firewall) → housekeeping (retention, GC) → gateway listening (its drain comes
first on the way out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fnplat.artifacts import ArtifactStore
from fnplat.config import Settings
from fnplat.controller.netfilter import firewall_for
from fnplat.controller.service import Controller
from fnplat.datadir import own_code_access, prepare_data_dir
from fnplat.deployments import DeployService
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.gateway.listener import start_listener
from fnplat.metrics import Metrics
from fnplat.roles import parts
from fnplat.roles.resources import ResourceStack
from fnplat.roles.store import open_store
from fnplat.server_lock import ServerLock
from fnplat.shutdown import ShutdownBudget, stop_gateway


@asynccontextmanager
async def running_platform(settings: Settings) -> AsyncIterator[str]:
    """Start everything, yield the gateway's base URL, stop everything in reverse order."""
    firewall = firewall_for(settings.controller, settings.database_url)  # bad settings fail first
    budget = ShutdownBudget.of(settings.shutdown.timeout_s)
    prepare_data_dir(settings)
    async with ResourceStack("fnctl up") as stack:
        lock = ServerLock.acquire(settings.data_dir)  # before anything touches the data dir or tasks
        stack.callback("pid file lock", lock.release)
        store = await stack.enter("store", open_store(settings, migrate=True, server_role=False))
        await asyncio.to_thread(parts.ensure_admin_key_file, store.sessions, settings.admin_key_file)
        catalog = await parts.load_catalog(store)
        metrics = Metrics()
        recorder = await stack.enter("recorder", parts.running_recorder(store, settings, metrics))
        artifacts = ArtifactStore(
            settings.artifacts_dir, settings.code_dir, own_code_access(settings.controller.task_user)
        )
        engine = await stack.enter("container engine", parts.docker_engine(settings))
        controller = await stack.enter(
            "controller",
            parts.running_controller(
                engine,
                settings,
                code_dir_for=parts.local_code_dirs(artifacts),
                recorder=recorder,
                metrics=metrics,
                firewall=firewall,
                stop_tasks_s=budget.stop_tasks_s,
            ),
        )
        await stack.enter(
            "housekeeping", parts.running_housekeeper(store, artifacts, engine, settings, metrics)
        )

        async def build_image(context: str, tag: str) -> str:
            return await engine.build_image(Path(context), tag)

        deps = GatewayDeps(
            settings=settings,
            catalog=catalog,
            invoker=controller,
            deployer=DeployService(store.sessions, artifacts, catalog, build_image, controller.retire),
            sessions=store.sessions,
            recorder=recorder,
            metrics=metrics,
            task_snapshot=lambda: [parts.task_json(t) for t in controller.tasks()],
        )
        await stack.enter("gateway", _gateway_listener(deps, controller, budget))
        settings.endpoint_file.write_text(deps.base_url + "\n")
        yield deps.base_url


@asynccontextmanager
async def _gateway_listener(
    deps: GatewayDeps, controller: Controller, budget: ShutdownBudget
) -> AsyncIterator[None]:
    settings = deps.settings
    listener = await start_listener(
        init_app(deps),
        settings.host,
        settings.port,
        settings.gateway,
        deps.metrics,
        shutdown_timeout_s=budget.drain_s,
    )
    try:
        yield
    finally:
        await stop_gateway(listener.runner, controller, budget.drain_s)
