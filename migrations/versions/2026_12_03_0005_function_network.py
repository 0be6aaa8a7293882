"""A function version's network access.

Why: function.yaml `network: none` gives a task no egress at all; the setting belongs to the
immutable version, so the controller can place the task in the isolated part of its subnet.

Revision ID: 0005
Revises: 3f6a1c2e9b02
Create Date: 2026-12-03 00:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every version so far had the default network (the only one there was).
    with op.batch_alter_table("function_versions") as batch:
        batch.add_column(sa.Column("network", sa.String(16), server_default="default", nullable=False))
        batch.create_check_constraint(
            op.f("ck_function_versions_network"), "network IN ('default', 'none')"
        )


def downgrade() -> None:
    with op.batch_alter_table("function_versions") as batch:
        batch.drop_constraint(op.f("ck_function_versions_network"), type_="check")
        batch.drop_column("network")
