"""fnctl init (templates), up (hands Settings to the server) and down (SIGTERM via the pid file)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from fnplat.cli.main import cli
from fnplat.config import Settings
from fnplat.domain import RUNTIMES
from fnplat.packaging import package_function
from fnplat.server_lock import ServerLock, ServerRunning
from fnplat.spec import load_spec

EXPECTED_FILES = {
    "python3.11": ["app.py", "function.yaml"],
    "nodejs18.x": ["function.yaml", "index.js"],
    "provided": ["bootstrap", "function.yaml"],
    "image": ["Dockerfile", "app.py", "function.yaml"],
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_init_creates_a_deployable_function(runtime: str, tmp_path: Path) -> None:
    target = tmp_path / "greeter"
    result = CliRunner().invoke(cli, ["init", "greeter", "--runtime", runtime, "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == EXPECTED_FILES[runtime]
    spec = load_spec(target)
    assert (spec.name, spec.runtime) == ("greeter", runtime)
    assert [r.route_key for r in spec.routes] == ["GET /greeter/{name}"]
    assert f"next: fnctl deploy {target}" in result.stdout
    packaged = package_function(target)  # passes the runtime's layout rules (bootstrap, Dockerfile)
    assert packaged.spec == spec


def test_init_provided_bootstrap_is_executable_bash(tmp_path: Path) -> None:
    CliRunner().invoke(cli, ["init", "fn", "--runtime", "provided", "--dir", str(tmp_path / "fn")])
    bootstrap = tmp_path / "fn" / "bootstrap"
    assert bootstrap.stat().st_mode & stat.S_IXUSR
    assert bootstrap.read_text().startswith("#!/bin/bash\n")
    assert subprocess.run(["bash", "-n", str(bootstrap)], check=False).returncode == 0


def test_init_image_dockerfile_builds_from_the_python_runtime(tmp_path: Path) -> None:
    CliRunner().invoke(cli, ["init", "fn", "--runtime", "image", "--dir", str(tmp_path / "fn")])
    dockerfile = (tmp_path / "fn" / "Dockerfile").read_text()
    assert "FROM fnplat/runtime-python3.11:latest" in dockerfile
    assert 'CMD ["app.handler"]' in dockerfile


def test_init_defaults_to_a_directory_named_after_the_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init", "hello", "-r", "python3.11"]).exit_code == 0
    assert (tmp_path / "hello" / "function.yaml").is_file()


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("mine")
    result = CliRunner().invoke(cli, ["init", "x", "--runtime", "python3.11", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"error: {tmp_path} already has app.py: not overwriting" in result.stderr
    assert (tmp_path / "app.py").read_text() == "mine"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad name", "error: function name must be 1-64 letters, digits, '-' or '_', got 'bad name'"),
        ("v1", "path prefix /v1 is reserved by fnplat"),  # its route would be GET /v1/{name}
    ],
)
def test_init_rejects_bad_names(name: str, expected: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", name, "--runtime", "python3.11", "--dir", str(tmp_path / "x")])
    assert result.exit_code == 1 and expected in result.stderr
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------ up


def test_up_passes_settings_to_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    received: list[Settings] = []
    fake_server = types.ModuleType("fnplat.server")
    fake_server.serve = received.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fnplat.server", fake_server)
    result = CliRunner().invoke(
        cli, ["up", "--port", "9999", "--host", "127.0.0.2", "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    [settings] = received
    assert (settings.port, settings.host) == (9999, "127.0.0.2")
    assert settings.data_dir == (tmp_path / "d").resolve()


def test_up_uses_the_global_data_dir_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    received: list[Settings] = []
    fake_server = types.ModuleType("fnplat.server")
    fake_server.serve = received.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fnplat.server", fake_server)
    for var in ("FNPLAT_PORT", "FNPLAT_HOST"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "up"])
    assert result.exit_code == 0, result.output
    assert (received[0].port, received[0].host, received[0].data_dir) == (
        8080,
        "127.0.0.1",
        tmp_path.resolve(),
    )


# ------------------------------------------------------------------------ down


def stand_in_server(data_dir: Path, *, exit_on_term: bool = True) -> subprocess.Popen[str]:
    """A stand-in server: holds the pid file's lock as the real one does (fnplat.server_lock) and
    exits 0 on SIGTERM (or ignores it)."""
    on_term = "lambda *a: sys.exit(0)" if exit_on_term else "signal.SIG_IGN"
    code = (
        "import signal, sys; from pathlib import Path; from fnplat.server_lock import ServerLock;"
        f"signal.signal(signal.SIGTERM, {on_term}); lock = ServerLock.acquire(Path(sys.argv[1]));"
        "print('ready', flush=True); signal.pause()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_down_terminates_the_server_process(tmp_path: Path) -> None:
    proc = stand_in_server(tmp_path)
    try:
        assert (tmp_path / "fnplat.pid").read_text() == f"{proc.pid}\n"
        result = CliRunner().invoke(cli, ["down", "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"stopped fnplat (pid {proc.pid})"
        proc.wait(timeout=10)  # already reaped by `down` or exiting now: either way it is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_down_gives_up_after_its_wait(tmp_path: Path) -> None:
    proc = stand_in_server(tmp_path, exit_on_term=False)
    try:
        result = CliRunner().invoke(cli, ["down", "--wait", "0.3", "--data-dir", str(tmp_path)])
        assert result.exit_code == 1
        assert f"fnplat (pid {proc.pid}) did not stop within 0 s" in result.stderr
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    proc = stand_in_server(tmp_path)
    try:
        with pytest.raises(ServerRunning, match=rf"another fnplat server \(pid {proc.pid}\) is running"):
            ServerLock.acquire(tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # Killed, it left its pid file behind: the next server takes it over.
    assert (tmp_path / "fnplat.pid").exists()
    lock = ServerLock.acquire(tmp_path)
    assert (tmp_path / "fnplat.pid").read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not (tmp_path / "fnplat.pid").exists()


def test_down_without_a_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["down", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"error: no fnplat server is running for {tmp_path}" in result.stderr


def test_down_with_a_stale_pid_file_signals_nobody(tmp_path: Path) -> None:
    """A server killed with SIGKILL leaves its pid file; that pid may be another process's by now."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "fnplat.pid").write_text(f"{bystander.pid}\n")  # unlocked: nobody holds it
        result = CliRunner().invoke(cli, ["down", "--data-dir", str(tmp_path)])
        assert result.exit_code == 1 and "is stale" in result.stderr
        assert bystander.poll() is None  # not signalled
        assert os.path.exists(tmp_path / "fnplat.pid")  # the next server takes it over
    finally:
        bystander.kill()
        bystander.wait(timeout=10)
