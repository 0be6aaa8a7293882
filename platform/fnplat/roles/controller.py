"""`fnctl server controller`: one per Docker host (node) of a cluster.

Start-up order (undone in reverse, within FNPLAT_SHUTDOWN_TIMEOUT): data dir (private) → its pid
file locked → store (waits for the schema) → recorder → container engine → controller (orphans
removed by this node's label, Runtime API, task firewall) → housekeeping (this node's code and
images; retention one process at a time) → node record in the store → node API listening →
heartbeat. On SIGTERM it drains: marked draining (gateways send no new work), invocations in
flight finish, then its record is removed, its tasks stopped, and it exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime

import fnplat
from fnplat.artifacts import ArtifactStore
from fnplat.cluster.members import Heartbeat, NodeRegistration
from fnplat.cluster.membership import LivenessPolicy, NodeRecord
from fnplat.cluster.node_api import NodeApi, serving_node_api
from fnplat.cluster.versions import VersionCache
from fnplat.config import Settings
from fnplat.controller.fleet import host_memory_capacity_mb
from fnplat.controller.netfilter import firewall_for
from fnplat.controller.taskdef import RUNTIME_IMAGES
from fnplat.datadir import own_code_access, prepare_data_dir
from fnplat.metrics import Metrics
from fnplat.roles import parts
from fnplat.roles.cluster_checks import check_cluster_settings, node_address, node_id
from fnplat.roles.resources import ResourceStack
from fnplat.roles.store import open_store
from fnplat.server_lock import ServerLock
from fnplat.shutdown import ShutdownBudget


@asynccontextmanager
async def running_controller_node(settings: Settings) -> AsyncIterator[str]:
    check_cluster_settings(settings, "controller")
    firewall = firewall_for(settings.controller, settings.database_url)  # bad settings fail first
    budget = ShutdownBudget.of(settings.shutdown.timeout_s)
    policy = LivenessPolicy(settings.cluster.heartbeat_interval_s, settings.cluster.missed_beats)
    prepare_data_dir(settings)
    me = node_id(settings)
    async with ResourceStack(f"controller {me}") as stack:
        lock = ServerLock.acquire(settings.data_dir)
        stack.callback("pid file lock", lock.release)
        store = await stack.enter("store", open_store(settings, migrate=False, server_role=True))
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
                code_dir_for=parts.shared_code_dirs(artifacts, store.sessions),
                recorder=recorder,
                metrics=metrics,
                firewall=firewall,
                stop_tasks_s=budget.stop_tasks_s,
            ),
        )
        await stack.enter(
            "housekeeping", parts.running_housekeeper(store, artifacts, engine, settings, metrics)
        )
        versions = VersionCache(store.sessions, store.deadline_s)
        heartbeat_state: list[Heartbeat] = []

        def readiness() -> tuple[bool, str]:
            if not heartbeat_state or not heartbeat_state[0].last_beat_ok:
                return False, "not registered in the metadata store"
            return True, "serving"

        api = NodeApi(
            node_id=me,
            controller=controller,
            versions=versions.get,
            secret=settings.cluster.secret or "",
            metrics=metrics,
            readiness=readiness,
            tasks=lambda: [parts.task_json(t, me) for t in controller.tasks()],
        )
        # The record outlives the node API on the way out: gateways see the node draining while
        # its invocations finish, and gone only after.
        record = NodeRecord(
            node_id=me,
            address="",  # set once the port is bound
            capacity_mb=host_memory_capacity_mb(settings.controller),
            runtimes=frozenset({*RUNTIME_IMAGES, "image"}),
            version=fnplat.__version__,
            heartbeat_at=datetime.now(UTC),
        )
        registration = await stack.enter("node record", NodeRegistration(store.sessions, store.deadline_s))
        port = await stack.enter(
            "node API",
            serving_node_api(
                api, settings.cluster.node_host, settings.cluster.node_port, controller, budget.drain_s
            ),
        )
        address = node_address(settings, port)
        heartbeat = await stack.enter(
            "heartbeat",
            Heartbeat(
                store.sessions,
                replace(record, address=address),
                policy,
                store_deadline_s=store.deadline_s,
                registration=registration,
            ),
        )
        heartbeat_state.append(heartbeat)
        yield address
