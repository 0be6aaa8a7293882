"""Cluster membership in the store: controllers register, heartbeat, drain and leave.

Every timestamp here is the database's (`now()` on Postgres): liveness compares beats with the
same clock that wrote them, so skew between hosts cannot kill a live node. SQLite (one host, one
process) uses the process clock. Re-exported by `fnplat.store.repository`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from fnplat.cluster.membership import NodeRecord
from fnplat.store.columns import utcnow
from fnplat.store.models import NodeRow
from fnplat.store.sqlhelpers import check_aware


def database_now(s: Session) -> datetime:
    """The database's clock (Postgres), or this process's (SQLite)."""
    if s.get_bind().dialect.name == "postgresql":
        value = s.execute(select(func.now())).scalar_one()
        assert isinstance(value, datetime)
        return value
    return utcnow()


def register_node(s: Session, node: NodeRecord) -> None:
    """Insert or replace this node's record, beating now (a restarted node keeps its id)."""
    now = database_now(s)
    row = s.get(NodeRow, node.node_id)
    values = {
        "address": node.address,
        "capacity_mb": node.capacity_mb,
        "runtimes": sorted(node.runtimes),
        "version": node.version,
        "started_at": now,
        "heartbeat_at": now,
        "draining": False,
    }
    if row is None:
        s.add(NodeRow(node_id=node.node_id, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)
    s.flush()


def beat(s: Session, node_id: str, capacity_mb: int | None = None) -> bool:
    """Refresh a node's heartbeat; False when it has no record (it was removed as dead: re-register)."""
    values: dict[str, object] = {"heartbeat_at": database_now(s)}
    if capacity_mb is not None:
        values["capacity_mb"] = capacity_mb
    result = s.execute(update(NodeRow).where(NodeRow.node_id == node_id).values(**values))
    return bool(getattr(result, "rowcount", 0))


def set_draining(s: Session, node_id: str) -> None:
    s.execute(update(NodeRow).where(NodeRow.node_id == node_id).values(draining=True))


def remove_node(s: Session, node_id: str) -> None:
    s.execute(delete(NodeRow).where(NodeRow.node_id == node_id))


def node_snapshot(s: Session) -> tuple[datetime, list[NodeRecord]]:
    """(the database's now, every registered node) read in one transaction."""
    now = database_now(s)
    rows = s.execute(select(NodeRow).order_by(NodeRow.node_id)).scalars().all()
    return now, [_to_record(r) for r in rows]


def forget_nodes_dead_since(s: Session, before: datetime) -> list[str]:
    """Remove records of nodes whose last beat is older than `before`; returns their ids."""
    check_aware(before, "before")
    gone = list(s.execute(select(NodeRow.node_id).where(NodeRow.heartbeat_at < before)).scalars())
    if gone:
        s.execute(delete(NodeRow).where(NodeRow.node_id.in_(gone)))
    return gone


def _to_record(row: NodeRow) -> NodeRecord:
    return NodeRecord(
        node_id=row.node_id,
        address=row.address,
        capacity_mb=row.capacity_mb,
        runtimes=frozenset(row.runtimes or ()),
        version=row.version,
        heartbeat_at=row.heartbeat_at,
        draining=row.draining,
    )
