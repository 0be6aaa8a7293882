"""Cluster membership in the store (SQLite and Postgres): register, beat, drain, leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fnplat.cluster.membership import NodeRecord, NodeState, node_state, routable_nodes
from fnplat.store import nodes
from fnplat.store.db import transaction


def record(node_id: str, address: str = "http://10.0.0.1:7070") -> NodeRecord:
    return NodeRecord(node_id, address, 4096, frozenset({"python3.11"}), "0.1.0", datetime.now(UTC))


def test_a_node_registers_beats_drains_and_leaves(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        nodes.register_node(s, record("a"))
        nodes.register_node(s, record("b"))
    with transaction(sessions) as s:
        now, snapshot = nodes.node_snapshot(s)
    assert [n.node_id for n in routable_nodes(snapshot, now)] == ["a", "b"]
    with transaction(sessions) as s:
        assert nodes.beat(s, "a")
        nodes.set_draining(s, "b")
    with transaction(sessions) as s:
        now, snapshot = nodes.node_snapshot(s)
    assert [n.node_id for n in routable_nodes(snapshot, now)] == ["a"]
    assert node_state(next(n for n in snapshot if n.node_id == "b"), now) is NodeState.DRAINING
    with transaction(sessions) as s:
        nodes.remove_node(s, "b")
        assert not nodes.beat(s, "b")  # gone: a beat tells it to register again
        _, snapshot = nodes.node_snapshot(s)
    assert [n.node_id for n in snapshot] == ["a"]


def test_a_restarted_node_replaces_its_record(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        nodes.register_node(s, record("a", "http://10.0.0.1:7070"))
        nodes.set_draining(s, "a")
    with transaction(sessions) as s:
        nodes.register_node(s, record("a", "http://10.0.0.9:7070"))
    with transaction(sessions) as s:
        now, (only,) = nodes.node_snapshot(s)
    assert only.address == "http://10.0.0.9:7070" and not only.draining
    assert node_state(only, now) is NodeState.ALIVE


def test_records_of_long_dead_nodes_can_be_forgotten(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        nodes.register_node(s, record("a"))
        now = nodes.database_now(s)
    with transaction(sessions) as s:
        assert nodes.forget_nodes_dead_since(s, now - timedelta(hours=1)) == []
        assert nodes.forget_nodes_dead_since(s, now + timedelta(seconds=1)) == ["a"]
