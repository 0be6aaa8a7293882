"""Initial schema.

Why: the first metadata store: functions and their versions, routes, API keys, artifacts,
invocation records and log events.

Revision ID: 8d2c0f4a1b01
Revises:
Create Date: 2026-11-23 00:01:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d2c0f4a1b01"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types as they were at this revision (migrations never import models).
NAME = sa.String(64)
SHA256_HEX = sa.String(64)
TIMESTAMP = sa.DateTime(timezone=True)


def big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("name", NAME, nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_functions")),
    )
    op.create_table(
        "function_versions",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("function_name", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("handler", sa.String(256), nullable=False),
        sa.Column("memory", sa.Integer(), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("code_sha256", SHA256_HEX, nullable=False),
        sa.Column("image", sa.String(512), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["function_name"],
            ["functions.name"],
            name=op.f("fk_function_versions_function_name_functions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_function_versions")),
        sa.UniqueConstraint(
            "function_name", "version", name=op.f("uq_function_versions_function_name_version")
        ),
    )
    op.create_table(
        "routes",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("function_name", NAME, nullable=False),
        sa.Column("qualifier", sa.String(128), nullable=False),
        sa.Column("auth", sa.String(16), nullable=False),
        sa.CheckConstraint("auth IN ('api_key', 'none')", name=op.f("ck_routes_auth")),
        sa.ForeignKeyConstraint(
            ["function_name"],
            ["functions.name"],
            name=op.f("fk_routes_function_name_functions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("method", "path", name=op.f("uq_routes_method_path")),
    )
    op.create_index(op.f("ix_routes_function_name"), "routes", ["function_name"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("secret_hash", SHA256_HEX, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("scope IN ('admin', 'invoke')", name=op.f("ck_api_keys_scope")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "artifacts",
        sa.Column("sha256", SHA256_HEX, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("unzipped_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "invocation_records",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("function_name", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("billed_duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("memory_size_mb", sa.Integer(), nullable=False),
        sa.Column("max_memory_used_mb", sa.Integer(), nullable=True),
        sa.Column("init_duration_ms", sa.Float(), nullable=True),
        sa.Column("error_type", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_invocation_records")),
    )
    op.create_index(
        op.f("ix_invocation_records_function_name_started_at"),
        "invocation_records",
        ["function_name", "started_at"],
    )
    op.create_table(
        "log_events",
        sa.Column("id", big_id(), autoincrement=True, nullable=False),
        sa.Column("function_name", NAME, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_events")),
    )
    op.create_index(
        op.f("ix_log_events_function_name_timestamp_id"), "log_events", ["function_name", "timestamp", "id"]
    )
    op.create_index(op.f("ix_log_events_request_id"), "log_events", ["request_id"])


def downgrade() -> None:
    op.drop_table("log_events")
    op.drop_table("invocation_records")
    op.drop_table("artifacts")
    op.drop_table("api_keys")
    op.drop_table("routes")
    op.drop_table("function_versions")
    op.drop_table("functions")
