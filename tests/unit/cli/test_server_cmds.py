"""fnctl server: one flag per setting, named after its variable; flags win over the environment."""

from __future__ import annotations

from click.testing import CliRunner

from fnplat.cli.main import cli
from fnplat.cli.server_cmds import flag_name, settings_from
from fnplat.config import settings_table


def test_every_setting_has_a_flag_named_after_its_variable() -> None:
    help_text = CliRunner().invoke(cli, ["server", "controller", "--help"], terminal_width=200).output
    for row in settings_table():
        assert flag_name(row.env) in help_text, row.env
    assert flag_name("FNPLAT_NODE_PORT") == "--node-port"


def test_a_flag_overrides_its_environment_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FNPLAT_NODE_PORT", "7000")
    monkeypatch.setenv("FNPLAT_KEEP_ALIVE", "12")
    settings = settings_from({"FNPLAT_NODE_PORT": 7555, "FNPLAT_KEEP_ALIVE": None})
    assert settings.cluster.node_port == 7555
    assert settings.controller.keep_alive_s == 12.0
