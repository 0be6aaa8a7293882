"""Usage rollups and retention.

Why: invocation records and log lines now expire (retention), so usage is also kept rolled up
per function, key and hour (usage_hourly, filled from the records already stored), and
retention finds the oldest records through an index on started_at.

Revision ID: 0003
Revises: 3f6a1c2e9b02
Create Date: 2026-12-03 00:03:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "3f6a1c2e9b02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
TIMESTAMP = sa.DateTime(timezone=True)

# The hour a record started in, as each backend stores timestamps: SQLite keeps UTC text
# ("2026-12-03 10:41:07.123456"), which the application writes with zero minutes for an hour.
_HOUR = {
    "postgresql": "date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "substr(started_at, 1, 13) || ':00:00.000000'",
}


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("function_name", NAME, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cold_starts", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("billed_duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("billed_mb_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("function_name", "key_id", "hour", name=op.f("pk_usage_hourly")),
    )
    op.create_index(op.f("ix_invocation_records_started_at"), "invocation_records", ["started_at"])
    hour = _HOUR[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO usage_hourly (function_name, key_id, hour, requests, errors, cold_starts,"
        " duration_ms, billed_duration_ms, billed_mb_ms)"
        f" SELECT function_name, '', {hour}, count(*), count(error_type), count(init_duration_ms),"
        " coalesce(sum(duration_ms), 0), coalesce(sum(billed_duration_ms), 0),"
        " coalesce(sum(billed_duration_ms * memory_size_mb), 0)"
        f" FROM invocation_records GROUP BY function_name, {hour}"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invocation_records_started_at"), table_name="invocation_records")
    op.drop_table("usage_hourly")
