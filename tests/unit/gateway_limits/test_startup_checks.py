"""What `fnctl up` checks and sets before the gateway listens (no Docker)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from fnplat.cli.main import cli
from fnplat.config import GatewaySettings, Settings
from fnplat.errors import InvalidParameter
from fnplat.gateway.listener import check_gateway_settings


def test_the_server_raises_its_open_files_soft_limit_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.fail(f"the hard open-files limit here is {hard}: nothing to raise to")
    script = (
        "import json, resource\n"
        "from fnplat.gateway.open_files import raise_open_files_limit\n"
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "print(json.dumps([before, raise_open_files_limit()]))\n"
    )

    def start_low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, preexec_fn=start_low
    )
    before, after = json.loads(done.stdout)
    assert before == [1024, hard]
    assert after == [hard, hard]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (GatewaySettings(max_connections=0), "FNPLAT_MAX_CONNECTIONS must be at least 1"),
        (GatewaySettings(header_timeout_s=0), "FNPLAT_HTTP_HEADER_TIMEOUT must be a positive"),
        (GatewaySettings(body_timeout_s=-1), "FNPLAT_HTTP_BODY_TIMEOUT must be a positive"),
        (GatewaySettings(keepalive_timeout_s=0), "FNPLAT_HTTP_KEEPALIVE_TIMEOUT must be a positive"),
        (GatewaySettings(tls_key=Path("k.pem")), "must be set together"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(settings: GatewaySettings, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        check_gateway_settings(settings)


def test_gateway_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "FNPLAT_MAX_CONNECTIONS": "100",
        "FNPLAT_HTTP_KEEPALIVE_TIMEOUT": "5",
        "FNPLAT_HTTP_HEADER_TIMEOUT": "2.5",
        "FNPLAT_HTTP_BODY_TIMEOUT": "30",
    }
    gateway = Settings.from_env(data_dir=tmp_path, env=env).gateway
    assert gateway == GatewaySettings(
        max_connections=100, keepalive_timeout_s=5, header_timeout_s=2.5, body_timeout_s=30
    )
    assert Settings.from_env(data_dir=tmp_path, env={}).gateway.tls is False


def test_up_takes_the_certificate_and_key_as_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    received: list[Settings] = []
    fake_server = types.ModuleType("fnplat.server")
    fake_server.serve = received.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fnplat.server", fake_server)
    monkeypatch.setenv("FNPLAT_TLS_KEY", "/from/env.key")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "up", "--tls-cert", "/etc/c.pem"])

    assert result.exit_code == 0, result.output
    assert received[0].gateway.tls_cert == Path("/etc/c.pem")
    assert received[0].gateway.tls_key == Path("/from/env.key")  # the flag left it as set
