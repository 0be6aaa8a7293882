"""The migration history itself: one head, date-prefixed files that say why."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from fnplat.route_grammar import route_shape
from fnplat.store.db import alembic_config, heads, make_engine, upgrade_to_head

VERSIONS = Path(alembic_config().get_main_option("script_location") or "") / "versions"


def test_history_has_a_single_head() -> None:
    assert len(heads()) == 1


def test_every_revision_file_is_date_prefixed_and_says_why() -> None:
    files = sorted(p for p in VERSIONS.glob("*.py") if p.name != "__init__.py")
    assert files, f"no revisions found in {VERSIONS}"
    scripts = {s.path: s for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    for path in files:
        assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{4}_[a-z0-9_]+\.py", path.name), path.name
        script = scripts[str(path)]
        assert script.module.__doc__ and "Why:" in script.module.__doc__, f"{path.name} lacks a why"


def test_downgrade_to_base_and_back_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade_to_head(engine)
    assert "functions" in inspect(engine).get_table_names()


def test_route_shapes_are_backfilled_and_conflicting_rows_dropped(tmp_path: Path) -> None:
    """Migration 0004 on a store where an old race left two routes of one shape: the one stored
    first is kept (the platform could not start on both), every row gets its shape."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "3f6a1c2e9b02")
    with engine.begin() as connection:
        for name in ("first", "second"):
            connection.exec_driver_sql(
                "INSERT INTO functions (name, latest_version, created_at, updated_at) "
                f"VALUES ('{name}', 1, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
            )
        for method, path, fn in [
            ("GET", "/a/{x}", "first"),
            ("GET", "/a/{y}", "second"),
            ("GET", "/caf%c3%a9", "second"),
            ("ANY", "$default", "second"),
        ]:
            connection.exec_driver_sql(
                "INSERT INTO routes (method, path, function_name, qualifier, auth) "
                f"VALUES ('{method}', '{path}', '{fn}', '$LATEST', 'api_key')"
            )
    upgrade_to_head(engine)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT method, path, function_name, shape FROM routes ORDER BY id"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("GET", "/a/{x}", "first", route_shape("GET", "/a/{x}")),
        ("GET", "/caf%c3%a9", "second", route_shape("GET", "/caf%C3%A9")),
        ("ANY", "$default", "second", "ANY $default"),
    ]
    engine.dispose()
