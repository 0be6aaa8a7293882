"""Code artifacts stored in the metadata store, for every node of a cluster.

Why: a deploy reaches one gateway, but any controller may start the function's tasks: with
Postgres, the zip is kept content-addressed beside its `artifacts` row and controllers fetch it
by sha256 on first use (one host on SQLite keeps files in the data dir only).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 00:09:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "artifact_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["artifacts.sha256"],
            name=op.f("fk_artifact_chunks_sha256_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sha256", "chunk", name=op.f("pk_artifact_chunks")),
    )


def downgrade() -> None:
    op.drop_table("artifact_chunks")
