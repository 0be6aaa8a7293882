"""SQLAlchemy models of the metadata store. Only the store imports these; every other layer
gets `fnplat.domain` dataclasses from `fnplat.store.repository`.

Referential rules live in the database (ON DELETE CASCADE, unique constraints) so they hold for
every writer, not only this code. There are no ORM relationships: repository functions query
explicitly, which keeps lazy loading (and its hidden round trips) out of the picture.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fnplat.store.columns import UtcDateTime, utcnow

# Deterministic constraint names, so later migrations can address (and batch-recreate) them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = String(64)  # Lambda's function-name limit
SHA256_HEX = String(64)
# A route's conflict shape (fnplat.route_grammar): the method, a space and the canonical path,
# never longer than the path itself.
ROUTE_SHAPE = String(1040)
# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a 64-bit identity.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}


class FunctionRow(Base):
    __tablename__ = "functions"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FunctionVersionRow(Base):
    __tablename__ = "function_versions"
    __table_args__ = (
        UniqueConstraint("function_name", "version"),
        CheckConstraint("network IN ('default', 'none')", name="network"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    function_name: Mapped[str] = mapped_column(NAME, ForeignKey("functions.name", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    runtime: Mapped[str] = mapped_column(String(32))
    handler: Mapped[str] = mapped_column(String(256))
    memory: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    # Plain values only in rows written before environments were encrypted ({} otherwise); the
    # first start with a key encrypts them (fnplat/secrets_startup.py).
    environment: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The environment as a Fernet token (fnplat/sealing.py); NULL only in those older rows.
    environment_sealed: Mapped[str | None] = mapped_column(Text)
    code_sha256: Mapped[str] = mapped_column(SHA256_HEX)
    image: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    network: Mapped[str] = mapped_column(String(16), server_default="default")


class RouteRow(Base):
    __tablename__ = "routes"
    __table_args__ = (
        # Two routes the gateway cannot tell apart (`GET /a/{x}`, `GET /a/{y}`) share a shape
        # (fnplat.route_grammar.route_shape): the database refuses the second, whoever writes it.
        UniqueConstraint("shape"),
        CheckConstraint("auth IN ('api_key', 'none')", name="auth"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    shape: Mapped[str] = mapped_column(ROUTE_SHAPE)
    function_name: Mapped[str] = mapped_column(
        NAME, ForeignKey("functions.name", ondelete="CASCADE"), index=True
    )
    qualifier: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(16))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("scope IN ('admin', 'invoke')", name="scope"),)

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(SHA256_HEX)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(SHA256_HEX, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    unzipped_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvocationRecordRow(Base):
    __tablename__ = "invocation_records"
    __table_args__ = (
        Index(None, "function_name", "started_at"),
        # "The invocations that ended last" gives the newest START/END/REPORT lines (fnctl logs).
        Index(None, "function_name", "ended_at"),
        # Retention deletes the oldest records first, across functions (fnplat/store/retention.py).
        Index(None, "started_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # No foreign key: records outlive the functions they describe (usage and billing history).
    function_name: Mapped[str] = mapped_column(NAME)
    version: Mapped[int] = mapped_column(Integer)
    executed_version: Mapped[str] = mapped_column(String(16), server_default="$LATEST")
    started_at: Mapped[datetime] = mapped_column()
    # NULL only on records written before platform lines were rendered from records: their
    # START/END/REPORT lines are stored in log_events.
    ended_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[float] = mapped_column(Float)
    billed_duration_ms: Mapped[int] = mapped_column(BigInteger)
    memory_size_mb: Mapped[int] = mapped_column(Integer)
    max_memory_used_mb: Mapped[int | None] = mapped_column(Integer)
    init_duration_ms: Mapped[float | None] = mapped_column(Float)
    error_type: Mapped[str | None] = mapped_column(String(256))


class LogEventRow(Base):
    __tablename__ = "log_events"
    # "Newest N lines of a function" is the only hot query: one index serves it in order.
    __table_args__ = (Index(None, "function_name", "timestamp", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    function_name: Mapped[str] = mapped_column(NAME)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    timestamp: Mapped[datetime] = mapped_column()
    message: Mapped[str] = mapped_column(Text)


class UsageHourlyRow(Base):
    """Usage per function, API key and hour (UTC), kept after the raw records expire.

    Incremented in the transaction that inserts the records it counts (only those inserted: a
    replayed record already stored adds nothing), so it always equals the sum of the records
    written, including those retention has deleted since.
    """

    __tablename__ = "usage_hourly"

    function_name: Mapped[str] = mapped_column(NAME, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # '' while keys are not recorded
    hour: Mapped[datetime] = mapped_column(primary_key=True)  # the hour's start, UTC
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    cold_starts: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    billed_duration_ms: Mapped[int] = mapped_column(BigInteger)
    billed_mb_ms: Mapped[int] = mapped_column(BigInteger)  # billed duration x configured memory


class NodeRow(Base):
    """A controller (one per Docker host) of a cluster, as it registered itself (fnplat/cluster)."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    address: Mapped[str] = mapped_column(String(256))  # http://host:port of its node API
    capacity_mb: Mapped[int] = mapped_column(Integer)
    runtimes: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()  # the database's clock, never a node's
    draining: Mapped[bool] = mapped_column(Boolean, default=False)


class ArtifactChunkRow(Base):
    """A code artifact's bytes in the store, for every node of a cluster (content-addressed;
    written once, in 1 MiB chunks, beside its `artifacts` row)."""

    __tablename__ = "artifact_chunks"

    sha256: Mapped[str] = mapped_column(
        SHA256_HEX, ForeignKey("artifacts.sha256", ondelete="CASCADE"), primary_key=True
    )
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
