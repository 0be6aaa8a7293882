"""`fnctl server gateway`: the stateless HTTP front door of a cluster (any number of replicas).

Start-up order (undone in reverse, within FNPLAT_SHUTDOWN_TIMEOUT): store (waits for the schema)
→ bootstrap admin key → catalog → cluster membership (live controllers) → the invoker that sends
invocations to them → housekeeping (retention; one process at a time cluster-wide) → listening.
On the way out the listener drains first: new invocations get 503, those in flight finish.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fnplat.artifacts import ArtifactStore
from fnplat.cluster.members import MembershipView
from fnplat.cluster.membership import LivenessPolicy
from fnplat.cluster.remote_invoker import RemoteInvoker
from fnplat.config import Settings
from fnplat.datadir import prepare_data_dir
from fnplat.deployments import DeployService
from fnplat.errors import ImageBuildError
from fnplat.gateway.app import init_app
from fnplat.gateway.deps import GatewayDeps
from fnplat.gateway.listener import start_listener
from fnplat.metrics import Metrics
from fnplat.roles import parts
from fnplat.roles.cluster_checks import check_cluster_settings
from fnplat.roles.resources import ResourceStack
from fnplat.roles.store import open_store
from fnplat.shutdown import ShutdownBudget, stop_gateway


@asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[str]:
    check_cluster_settings(settings, "gateway")
    budget = ShutdownBudget.of(settings.shutdown.timeout_s)
    policy = LivenessPolicy(settings.cluster.heartbeat_interval_s, settings.cluster.missed_beats)
    prepare_data_dir(settings)  # scratch space for uploads being checked
    async with ResourceStack("gateway") as stack:
        store = await stack.enter("store", open_store(settings, migrate=False, server_role=True))
        if settings.cluster.admin_key:
            await asyncio.to_thread(
                parts.ensure_bootstrap_admin_key, store.sessions, settings.cluster.admin_key
            )
        catalog = await parts.load_catalog(store)
        metrics = Metrics()
        members = await stack.enter(
            "membership",
            MembershipView(
                store.sessions,
                policy,
                refresh_s=min(1.0, policy.interval_s / 2),
                store_deadline_s=store.deadline_s,
            ),
        )
        invoker = await stack.enter("invoker", RemoteInvoker(members, settings))
        artifacts = ArtifactStore(settings.artifacts_dir, settings.code_dir)
        await stack.enter(
            "housekeeping", parts.running_housekeeper(store, artifacts, None, settings, metrics)
        )

        async def build_image(context: str, tag: str) -> str:
            raise ImageBuildError("image functions cannot be deployed to a cluster yet")

        def readiness() -> tuple[bool, str]:
            if not members.store_ok:
                return False, "the metadata store is not answering"
            if not members.routable():
                return False, "no live controller"
            return True, f"{len(members.routable())} live controller(s)"

        async def nodes() -> list[Mapping[str, object]]:
            tasks = await invoker.list_tasks()
            per_node = Counter(str(t.get("node")) for t in tasks)
            return [
                {
                    "node_id": n.node_id,
                    "state": members.state_of(n).value,
                    "address": n.address,
                    "capacity_mb": n.capacity_mb,
                    "tasks": per_node.get(n.node_id, 0),
                    "version": n.version,
                    "runtimes": sorted(n.runtimes),
                    "heartbeat_at": n.heartbeat_at.isoformat(),
                }
                for n in members.all_nodes()
            ]

        deps = GatewayDeps(
            settings=settings,
            catalog=catalog,
            invoker=invoker,
            deployer=DeployService(
                store.sessions, artifacts, catalog, build_image, invoker.retire, share_artifacts=True
            ),
            sessions=store.sessions,
            recorder=None,
            metrics=metrics,
            task_snapshot=invoker.list_tasks,
            readiness=readiness,
            nodes=nodes,
        )
        await stack.enter("listener", _listening(deps, invoker, budget))
        yield deps.base_url


@asynccontextmanager
async def _listening(
    deps: GatewayDeps, invoker: RemoteInvoker, budget: ShutdownBudget
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
        await stop_gateway(listener.runner, invoker, budget.drain_s)
