"""Settings: every declared setting is read from its environment variable and documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnplat.config import ControllerSettings, Settings, settings_markdown, settings_table
from fnplat.errors import InvalidParameter

REPO = Path(__file__).resolve().parents[3]


def test_environment_overrides_defaults_by_type(tmp_path: Path) -> None:
    env = {
        "FNPLAT_PORT": "9090",
        "FNPLAT_KEEP_ALIVE": "1.5",
        "FNPLAT_TASK_NETWORK": "other",
        "FNPLAT_DATABASE_URL": "postgresql://x@y/z",
    }
    settings = Settings.from_env(data_dir=tmp_path, env=env)
    assert settings.port == 9090
    assert settings.controller.keep_alive_s == 1.5
    assert settings.controller.task_network == "other"
    assert settings.database_url == "postgresql://x@y/z"
    assert settings.controller.default_concurrency == ControllerSettings().default_concurrency


def test_explicit_arguments_win_over_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(data_dir=tmp_path, port=1234, host="::1", env={"FNPLAT_PORT": "9090"})
    assert (settings.port, settings.host) == (1234, "::1")


def test_an_empty_optional_setting_is_none(tmp_path: Path) -> None:
    assert Settings.from_env(data_dir=tmp_path, env={"FNPLAT_DATABASE_URL": ""}).database_url is None


def test_a_malformed_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="FNPLAT_PORT='eighty' is not a valid int"):
        Settings.from_env(data_dir=tmp_path, env={"FNPLAT_PORT": "eighty"})


def test_the_instance_id_follows_the_data_dir(tmp_path: Path) -> None:
    one = Settings.from_env(data_dir=tmp_path / "a", env={})
    two = Settings.from_env(data_dir=tmp_path / "b", env={})
    assert one.controller.instance_id != two.controller.instance_id
    again = Settings.from_env(data_dir=tmp_path / "a", env={})
    assert one.controller.instance_id == again.controller.instance_id


def test_every_environment_variable_is_unique_and_prefixed() -> None:
    names = [row.env for row in settings_table()]
    assert len(names) == len(set(names))
    assert all(name.startswith("FNPLAT_") for name in names)


def test_the_readme_table_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_markdown() in readme, (
        "README.md's configuration table is out of date: "
        "run .venv/bin/python scripts/update-settings-table.py"
    )
