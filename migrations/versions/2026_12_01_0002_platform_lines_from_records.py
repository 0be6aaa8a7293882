"""Platform log lines from invocation records.

Why: START/END/REPORT were four rows per invocation on the write path; the record already says
everything they say, so the lines are rendered from it when logs are read (one row per call).

Revision ID: 3f6a1c2e9b02
Revises: 8d2c0f4a1b01
Create Date: 2026-12-01 00:02:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a1c2e9b02"
down_revision: str | None = "8d2c0f4a1b01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Every record so far was an invocation of $LATEST (the only version there was).
    op.add_column(
        "invocation_records",
        sa.Column("executed_version", sa.String(16), server_default="$LATEST", nullable=False),
    )
    # Left NULL on existing records: their platform lines are already stored in log_events.
    op.add_column("invocation_records", sa.Column("ended_at", TIMESTAMP, nullable=True))
    op.create_index(
        op.f("ix_invocation_records_function_name_ended_at"),
        "invocation_records",
        ["function_name", "ended_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invocation_records_function_name_ended_at"), table_name="invocation_records")
    with op.batch_alter_table("invocation_records") as batch:
        batch.drop_column("ended_at")
        batch.drop_column("executed_version")
