"""Cluster membership at run time: a controller's heartbeat, and the gateways' view of live nodes.

The decisions (who is alive, where a function goes) are the pure functions of
`fnplat.cluster.membership` and `fnplat.cluster.placement`; this module only moves records
between the store and memory on a timer. Each side is an async context manager started and
closed by its role (`fnplat.roles`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fnplat.cluster.membership import (
    LivenessPolicy,
    NodeRecord,
    NodeState,
    node_state,
    placement_nodes,
    routable_nodes,
)
from fnplat.cluster.placement import Placement
from fnplat.store import nodes as node_store
from fnplat.store.calls import run_blocking
from fnplat.store.db import transaction

log = logging.getLogger(__name__)


class NodeRegistration:
    """Removes this node's record on the way out (entered before the node API, so it is closed
    after it: gateways see the node draining while its invocations finish, and gone only then)."""

    def __init__(self, sessions: sessionmaker[Session], store_deadline_s: float) -> None:
        self._sessions = sessions
        self._deadline = store_deadline_s
        self.node_id: str | None = None  # set by the heartbeat once registered

    async def __aenter__(self) -> NodeRegistration:
        return self

    async def __aexit__(self, *_: object) -> None:
        node_id = self.node_id
        if node_id is None:
            return
        try:
            await run_blocking(lambda: self._remove(node_id), self._deadline)
            log.info("node %s deregistered", node_id)
        except Exception as exc:
            log.warning("node %s could not deregister (it will be seen dead): %s", node_id, exc)

    def _remove(self, node_id: str) -> None:
        with transaction(self._sessions) as s:
            node_store.remove_node(s, node_id)


class Heartbeat:
    """A controller's membership: registered on start, a beat every interval, and marked draining
    on the way out (gateways stop sending new work at once)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        record: NodeRecord,
        policy: LivenessPolicy,
        *,
        store_deadline_s: float,
        registration: NodeRegistration,
    ) -> None:
        self._sessions = sessions
        self._record = record
        self._policy = policy
        self._deadline = store_deadline_s
        self._registration = registration
        self._task: asyncio.Task[None] | None = None
        self.beats = 0  # successful beats since start
        self.last_beat_ok = False

    @property
    def node_id(self) -> str:
        return self._record.node_id

    async def __aenter__(self) -> Heartbeat:
        await run_blocking(self._register, self._deadline)
        self._registration.node_id = self._record.node_id
        self.last_beat_ok = True
        self._task = asyncio.get_running_loop().create_task(self._beat_forever(), name="heartbeat")
        log.info("node %s registered at %s", self._record.node_id, self._record.address)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await run_blocking(self._set_draining, self._deadline)
            log.info("node %s is draining: no new invocations", self.node_id)
        except Exception as exc:  # the node leaves anyway; gateways then see it dead
            log.warning("node %s could not mark itself draining: %s", self.node_id, exc)

    async def _beat_forever(self) -> None:
        interval = self._policy.interval_s
        while True:
            started = time.monotonic()
            try:
                known = await run_blocking(self._beat, self._deadline)
                if not known:  # removed as dead by someone while we were away: come back
                    await run_blocking(self._register, self._deadline)
                    log.warning("node %s re-registered: its record had been removed", self.node_id)
                self.beats += 1
                self.last_beat_ok = True
            except Exception as exc:  # keep beating: the store may come back
                self.last_beat_ok = False
                log.warning("node %s heartbeat failed: %s", self.node_id, exc)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _register(self) -> None:
        with transaction(self._sessions) as s:
            node_store.register_node(s, self._record)

    def _beat(self) -> bool:
        with transaction(self._sessions) as s:
            return node_store.beat(s, self._record.node_id)

    def _set_draining(self) -> None:
        with transaction(self._sessions) as s:
            node_store.set_draining(s, self._record.node_id)


class MembershipView:
    """The gateway's view: the routable nodes and a placement over them, refreshed from the store
    every `refresh_s` (well under the dead interval, so a dead node is routed around within it).

    A node whose connections are refused is taken out at once (`mark_unreachable`) until a beat
    newer than that moment shows it back.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        policy: LivenessPolicy,
        *,
        refresh_s: float,
        store_deadline_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._refresh_s = refresh_s
        self._deadline = store_deadline_s
        self._clock = clock
        self._nodes: dict[str, NodeRecord] = {}  # routable ones, by id
        self._all: tuple[NodeRecord, ...] = ()
        self._db_now: datetime | None = None
        self._unreachable: dict[str, datetime] = {}  # node id -> the last beat we saw before it failed
        self._placement = Placement(())
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.store_ok = False
        self.refreshed_at: float | None = None

    # -- what the gateway reads (no I/O) ------------------------------------------------------
    def node(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def routable(self) -> tuple[NodeRecord, ...]:
        return tuple(self._nodes.values())

    def all_nodes(self) -> tuple[NodeRecord, ...]:
        """Every registered node (dead ones too), as last read."""
        return self._all

    def state_of(self, node: NodeRecord) -> NodeState:
        if self._db_now is None:
            return NodeState.DEAD
        return node_state(node, self._db_now, self._policy)

    @property
    def placement(self) -> Placement:
        return self._placement

    def mark_unreachable(self, node_id: str) -> None:
        node = self._nodes.pop(node_id, None)
        if node is None:
            return
        self._unreachable[node_id] = node.heartbeat_at
        self._rebuild()
        log.warning("node %s is unreachable: routing around it until it beats again", node_id)

    # -- life cycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> MembershipView:
        try:
            await self.refresh()
        except Exception as exc:  # start anyway: /readyz says not ready until the store answers
            log.warning("reading cluster membership failed: %s", exc)
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever(), name="membership")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        now, nodes = await run_blocking(self._snapshot, self._deadline)
        self._apply(now, nodes)

    async def wait_changed(self) -> None:
        """Until the routable set changes (tests)."""
        self._changed.clear()
        await self._changed.wait()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
                self.store_ok = True
            except Exception as exc:  # keep the last view: warm routing goes on without the store
                self.store_ok = False
                log.warning("refreshing cluster membership failed: %s", exc)

    def _snapshot(self) -> tuple[datetime, list[NodeRecord]]:
        with transaction(self._sessions) as s:
            return node_store.node_snapshot(s)

    def _apply(self, now: datetime, nodes: list[NodeRecord]) -> None:
        self.store_ok = True
        self.refreshed_at = self._clock()
        self._db_now = now
        self._all = tuple(nodes)
        routable = {n.node_id: n for n in routable_nodes(nodes, now, self._policy)}
        for node_id, seen in list(self._unreachable.items()):
            node = routable.get(node_id)
            if node is not None and node.heartbeat_at <= seen:
                del routable[node_id]  # no beat since it failed us
            else:
                del self._unreachable[node_id]
        if set(routable) != set(self._nodes) or any(
            replace(routable[i], heartbeat_at=self._nodes[i].heartbeat_at) != self._nodes[i]
            for i in routable
            if i in self._nodes
        ):
            self._nodes = routable
            self._rebuild()
        else:
            self._nodes = routable

    def _rebuild(self) -> None:
        self._placement = Placement(placement_nodes(self._nodes.values()))
        self._changed.set()
