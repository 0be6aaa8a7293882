"""Route shapes.

Why: two deploys at the same moment could store `GET /a/{x}` and `GET /a/{y}` for different
functions (unique on method and path only), after which the gateway could not build its route
table and the platform could not start. A route now stores its conflict shape, unique.

Existing rows are backfilled; should two of them already share a shape, the route stored first
is kept and the later ones are deleted (with a warning naming them): that database could not
start before this migration.

Revision ID: 0004
Revises: 3f6a1c2e9b02
Create Date: 2026-12-03 00:04:00
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

SHAPE_LENGTH = 1040
SHAPE = sa.String(SHAPE_LENGTH)

# A frozen copy of fnplat.route_grammar.route_shape as it was at this revision (migrations never
# import the code they migrate for).
_PARAM_RE = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*(\+?)\}$")
_SHAPE_SAFE = "!$&'()*+,;=:@-._~"


def route_shape(method: str, path: str) -> str:
    method = method.upper()
    if path == "$default" or not path.startswith("/"):
        return f"{method} {path}"
    parts = []
    for segment in path[1:].split("/"):
        param = _PARAM_RE.match(segment)
        if param is None:
            parts.append(quote(unquote(segment), safe=_SHAPE_SAFE))
        else:
            parts.append("{+}" if param.group(1) else "{}")
    shape = f"{method} /" + "/".join(parts)
    # Only a path the grammar refuses today can grow here: keep it unique as the old key did.
    return shape if len(shape) <= SHAPE_LENGTH else f"{method} {path}"


def upgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.add_column(sa.Column("shape", SHAPE, nullable=True))

    routes = sa.table(
        "routes",
        sa.column("id", sa.BigInteger()),
        sa.column("method", sa.String()),
        sa.column("path", sa.String()),
        sa.column("function_name", sa.String()),
        sa.column("shape", SHAPE),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(routes.c.id, routes.c.method, routes.c.path, routes.c.function_name).order_by(routes.c.id)
    ).all()
    kept: dict[str, tuple[int, str]] = {}
    for row in rows:
        shape = route_shape(row.method, row.path)
        first = kept.get(shape)
        if first is not None:
            log.warning(
                "route %s %s of %s conflicts with route id %s of %s; deleting it",
                row.method,
                row.path,
                row.function_name,
                first[0],
                first[1],
            )
            connection.execute(sa.delete(routes).where(routes.c.id == row.id))
            continue
        kept[shape] = (row.id, row.function_name)
        connection.execute(sa.update(routes).where(routes.c.id == row.id).values(shape=shape))

    with op.batch_alter_table("routes") as batch:
        batch.alter_column("shape", existing_type=SHAPE, nullable=False)
        batch.drop_constraint("uq_routes_method_path", type_="unique")
        batch.create_unique_constraint(op.f("uq_routes_shape"), ["shape"])


def downgrade() -> None:
    with op.batch_alter_table("routes") as batch:
        batch.drop_constraint("uq_routes_shape", type_="unique")
        batch.create_unique_constraint(op.f("uq_routes_method_path"), ["method", "path"])
        batch.drop_column("shape")
