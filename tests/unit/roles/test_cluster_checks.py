"""What the cluster roles refuse before starting anything, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fnplat.cli.main import cli
from fnplat.config import Settings
from fnplat.errors import InvalidParameter
from fnplat.roles.cluster_checks import check_cluster_settings, node_address

KEY = "a" * 43 + "="
PG = "postgresql://fnplat:fnplat@127.0.0.1:5432/fnplat"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(data_dir=tmp_path, env=env)


@pytest.mark.parametrize("role", ["gateway", "controller", "migrate"])
def test_sqlite_is_refused_by_every_cluster_role(tmp_path: Path, role: str) -> None:
    with pytest.raises(InvalidParameter, match=rf"fnctl server {role} needs a Postgres metadata store"):
        check_cluster_settings(settings(tmp_path, FNPLAT_SECRET_KEY=KEY), role)


def test_the_environment_key_must_be_given_not_made(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="FNPLAT_SECRET_KEY"):
        check_cluster_settings(settings(tmp_path, FNPLAT_DATABASE_URL=PG), "migrate")


@pytest.mark.parametrize("secret", [None, "short"])
def test_gateways_and_controllers_need_a_cluster_secret(tmp_path: Path, secret: str | None) -> None:
    env = {"FNPLAT_DATABASE_URL": PG, "FNPLAT_SECRET_KEY": KEY}
    if secret is not None:
        env["FNPLAT_CLUSTER_SECRET"] = secret
    for role in ("gateway", "controller"):
        with pytest.raises(InvalidParameter, match="FNPLAT_CLUSTER_SECRET"):
            check_cluster_settings(settings(tmp_path, **env), role)
    check_cluster_settings(settings(tmp_path, **env), "migrate")  # migrate needs none


def test_a_complete_cluster_configuration_passes(tmp_path: Path) -> None:
    env = {"FNPLAT_DATABASE_URL": PG, "FNPLAT_SECRET_KEY": KEY, "FNPLAT_CLUSTER_SECRET": "s" * 16}
    check_cluster_settings(settings(tmp_path, **env), "gateway")


def test_the_node_address_is_the_configured_one(tmp_path: Path) -> None:
    given = settings(tmp_path, FNPLAT_NODE_ADDRESS="10.1.2.3")
    assert node_address(given, 7070) == "http://10.1.2.3:7070"
    assert node_address(settings(tmp_path, FNPLAT_NODE_ADDRESS="fd00::1"), 7070) == "http://[fd00::1]:7070"


def test_the_cli_refuses_sqlite_with_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["server", "gateway", "--data-dir", str(tmp_path)], env={"FNPLAT_DATABASE_URL": ""}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: fnctl server gateway needs a Postgres metadata store")
    assert "Traceback" not in result.output
