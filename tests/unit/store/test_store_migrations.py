"""The migration history itself: one head, date-prefixed files that say why."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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
