"""Node liveness from heartbeats: pure functions of a snapshot and now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fnplat.cluster.membership import (
    DEFAULT_POLICY,
    LivenessPolicy,
    MembershipChange,
    NodeRecord,
    NodeState,
    dead_at,
    dead_nodes,
    membership_change,
    node_state,
    placement_nodes,
    routable_nodes,
)
from fnplat.cluster.placement import PlacementNode

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PY, NODE = "python3.11", "nodejs18.x"


def node(
    node_id: str, silent_s: float, *, draining: bool = False, runtimes: tuple[str, ...] = (PY, NODE)
) -> NodeRecord:
    return NodeRecord(
        node_id=node_id,
        address=f"http://{node_id}:9100",
        capacity_mb=4096,
        runtimes=frozenset(runtimes),
        version="0.1.0",
        heartbeat_at=NOW - timedelta(seconds=silent_s),
        draining=draining,
    )


@pytest.mark.parametrize(
    ("silent_s", "draining", "policy", "expected"),
    [
        (0, False, DEFAULT_POLICY, NodeState.ALIVE),
        (2.0, False, DEFAULT_POLICY, NodeState.ALIVE),  # a beat is due, not yet late
        (2.001, False, DEFAULT_POLICY, NodeState.SUSPECT),
        (6.0, False, DEFAULT_POLICY, NodeState.SUSPECT),  # 3 x 2 s: the limit itself still counts
        (6.001, False, DEFAULT_POLICY, NodeState.DEAD),
        (3600, False, DEFAULT_POLICY, NodeState.DEAD),
        (0, True, DEFAULT_POLICY, NodeState.DRAINING),
        (5, True, DEFAULT_POLICY, NodeState.DRAINING),
        (7, True, DEFAULT_POLICY, NodeState.DEAD),  # a draining node that stops beating is dead
        (1.5, False, LivenessPolicy(interval_s=1.0, missed_beats=5), NodeState.SUSPECT),
        (5.0, False, LivenessPolicy(interval_s=1.0, missed_beats=5), NodeState.SUSPECT),
        (5.5, False, LivenessPolicy(interval_s=1.0, missed_beats=5), NodeState.DEAD),
        (0.5, False, LivenessPolicy(interval_s=0.2, missed_beats=1), NodeState.DEAD),
        (-1, False, DEFAULT_POLICY, NodeState.ALIVE),  # a beat stamped slightly ahead of now
    ],
)
def test_node_state(silent_s: float, draining: bool, policy: LivenessPolicy, expected: NodeState) -> None:
    assert node_state(node("a", silent_s, draining=draining), NOW, policy) is expected


def test_dead_at_is_when_the_state_turns() -> None:
    record = node("a", 1)
    turn = dead_at(record)
    assert turn == NOW + timedelta(seconds=5)
    assert node_state(record, turn) is NodeState.SUSPECT
    assert node_state(record, turn + timedelta(microseconds=1)) is NodeState.DEAD


SNAPSHOT = [
    node("c", 0),
    node("a", 3),  # suspect: still routable
    node("b", 10),  # dead
    node("d", 0, draining=True),
    node("e", 0, runtimes=(NODE,)),
]


def test_routable_nodes_are_alive_or_suspect_and_sorted() -> None:
    assert [n.node_id for n in routable_nodes(SNAPSHOT, NOW)] == ["a", "c", "e"]
    assert [n.node_id for n in routable_nodes(SNAPSHOT, NOW, runtime=PY)] == ["a", "c"]
    assert [n.node_id for n in routable_nodes(SNAPSHOT, NOW, runtime="image")] == []
    assert [n.node_id for n in dead_nodes(SNAPSHOT, NOW)] == ["b"]
    assert routable_nodes([], NOW) == () and dead_nodes([], NOW) == ()


def test_a_dead_node_is_routed_around_within_one_dead_interval() -> None:
    # The last beat of "a" at NOW: it is routable until NOW + 6 s and gone after.
    record = node("a", 0)
    assert routable_nodes([record], NOW + timedelta(seconds=6)) == (record,)
    assert routable_nodes([record], NOW + timedelta(seconds=6.001)) == ()


def test_placement_nodes_are_weighted_by_capacity() -> None:
    small = NodeRecord("s", "http://s", 0, frozenset({PY}), "0.1.0", NOW)
    assert placement_nodes([node("a", 0), small]) == (PlacementNode("a", 4096), PlacementNode("s", 1))


def test_membership_change() -> None:
    change = membership_change([node("a", 0), node("b", 0)], [node("b", 0), node("c", 0)])
    assert change == MembershipChange(frozenset({"c"}), frozenset({"a"})) and change.changed
    assert not membership_change([node("a", 0)], [node("a", 5)]).changed


@pytest.mark.parametrize(("interval_s", "missed"), [(0, 3), (-1, 3), (2, 0)])
def test_invalid_policies_are_refused(interval_s: float, missed: int) -> None:
    with pytest.raises(ValueError):
        LivenessPolicy(interval_s, missed)
