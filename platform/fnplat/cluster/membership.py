"""Node records and liveness, as pure functions of a snapshot and "now".

A controller (node) registers a record and refreshes its `heartbeat_at` every `interval`; it is
dead once more than `missed_beats` intervals have passed without one (default 3 x 2 s: dead
after 6 s of silence; a beat exactly at the limit still counts). In between it is `SUSPECT`
(a beat is late): still routable, since one late beat is usually a busy loop, not a dead node.
A node that is shutting down marks itself `draining`: alive, but given no new work.

Clocks: `heartbeat_at` and `now` must come from the same clock. With Postgres, write beats with
the database's `now()` and read the snapshot with the database's `now()` too, so skew between
hosts cannot kill a live node or keep a dead one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fnplat.cluster.placement import PlacementNode


class NodeState(enum.StrEnum):
    ALIVE = "alive"  # beat within the last interval
    SUSPECT = "suspect"  # beats missed, not yet dead: still routable
    DRAINING = "draining"  # alive, deregistering: no new work
    DEAD = "dead"


ROUTABLE = frozenset({NodeState.ALIVE, NodeState.SUSPECT})


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: str  # stable across restarts of the same node
    address: str  # how gateways reach its controller, e.g. "http://10.0.0.5:9100"
    capacity_mb: int  # task memory it offers: its placement weight
    runtimes: frozenset[str]  # the runtimes it can run (python3.11, nodejs18.x, ...)
    version: str  # fnplat version it runs
    heartbeat_at: datetime
    draining: bool = False


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    interval_s: float = 2.0
    missed_beats: int = 3

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.missed_beats < 1:
            raise ValueError("liveness needs interval_s > 0 and missed_beats >= 1")

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.interval_s)

    @property
    def dead_after(self) -> timedelta:
        return timedelta(seconds=self.interval_s * self.missed_beats)


DEFAULT_POLICY = LivenessPolicy()


def node_state(node: NodeRecord, now: datetime, policy: LivenessPolicy = DEFAULT_POLICY) -> NodeState:
    silence = now - node.heartbeat_at
    if silence > policy.dead_after:
        return NodeState.DEAD
    if node.draining:
        return NodeState.DRAINING
    return NodeState.SUSPECT if silence > policy.interval else NodeState.ALIVE


def dead_at(node: NodeRecord, policy: LivenessPolicy = DEFAULT_POLICY) -> datetime:
    """When the node counts as dead if no further beat arrives (for a timer, not a poll)."""
    return node.heartbeat_at + policy.dead_after


def routable_nodes(
    snapshot: Iterable[NodeRecord],
    now: datetime,
    policy: LivenessPolicy = DEFAULT_POLICY,
    runtime: str | None = None,
) -> tuple[NodeRecord, ...]:
    """The nodes that may get new work (of `runtime`, when given), ordered by id."""
    return tuple(
        sorted(
            (
                n
                for n in snapshot
                if node_state(n, now, policy) in ROUTABLE and (runtime is None or runtime in n.runtimes)
            ),
            key=lambda n: n.node_id,
        )
    )


def dead_nodes(
    snapshot: Iterable[NodeRecord], now: datetime, policy: LivenessPolicy = DEFAULT_POLICY
) -> tuple[NodeRecord, ...]:
    """The nodes to fail over from (their in-flight calls are lost, their tasks orphaned)."""
    return tuple(
        sorted((n for n in snapshot if node_state(n, now, policy) is NodeState.DEAD), key=lambda n: n.node_id)
    )


def placement_nodes(nodes: Iterable[NodeRecord]) -> tuple[PlacementNode, ...]:
    """Routable nodes as placement sees them: weighted by their memory capacity."""
    return tuple(PlacementNode(n.node_id, max(1, n.capacity_mb)) for n in nodes)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    joined: frozenset[str]
    left: frozenset[str]

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


def membership_change(before: Iterable[NodeRecord], after: Iterable[NodeRecord]) -> MembershipChange:
    """Which node ids joined and left between two lists of routable nodes (to drop caches)."""
    old, new = {n.node_id for n in before}, {n.node_id for n in after}
    return MembershipChange(frozenset(new - old), frozenset(old - new))
