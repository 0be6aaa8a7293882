"""Encrypted function environments.

Why: environment variables hold secrets; they are stored as a Fernet token in a new column. A
migration cannot see the key, so the first start of the platform encrypts the rows written
before (and empties their plaintext column).

Revision ID: 0006
Revises: 3f6a1c2e9b02
Create Date: 2026-12-03 00:06:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("function_versions") as batch:
        batch.add_column(sa.Column("environment_sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    # Sealed environments cannot be decrypted here (no key): dropping them would lose them.
    sealed = op.get_bind().execute(
        sa.text("SELECT COUNT(*) FROM function_versions WHERE environment_sealed IS NOT NULL")
    )
    if sealed.scalar_one():
        raise RuntimeError(
            "function environments are encrypted and migrations have no key to decrypt them: "
            "downgrading past revision 0006 would lose them"
        )
    with op.batch_alter_table("function_versions") as batch:
        batch.drop_column("environment_sealed")
