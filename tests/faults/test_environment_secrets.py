"""Environment variables are encrypted at rest and masked in responses: the database files hold
no value, the API and `fnctl describe` show `****` unless asked, the task sees the real values,
and a wrong or missing key stops `fnctl up` with one clear line (no stack trace)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from e2e_platform import FNCTL, Platform, running_platform


def generate_key() -> str:
    """Another valid key (written here so the test also runs against code without fnplat's)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()

pytestmark = pytest.mark.docker

FUNCTION = Path(__file__).parent / "functions" / "py-env"


def function_with_secret(directory: Path, value: str) -> Path:
    shutil.copytree(FUNCTION, directory)
    spec = directory / "function.yaml"
    spec.write_text(spec.read_text() + f"  DB_PASSWORD: {value}\n")
    return directory


def database_bytes(data_dir: Path) -> bytes:
    parts = (data_dir / name for name in ("fnplat.db", "fnplat.db-wal", "fnplat.db-shm"))
    return b"".join(part.read_bytes() for part in parts if part.exists())


def start_fails(plat: Platform, **env: str) -> str:
    result = subprocess.run(
        [FNCTL, "up", "--port", str(plat.port), "--data-dir", str(plat.data_dir)],
        env={**plat.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr, result
    return result.stderr.strip().splitlines()[-1]  # the error line, after the log lines


def test_environment_is_encrypted_at_rest_masked_and_real_in_the_task(
    docker_images: None, tmp_path: Path
) -> None:
    value = f"s3cret-{uuid.uuid4().hex}"
    directory = function_with_secret(tmp_path / "py-env", value)
    with running_platform(tmp_path / "data") as plat:
        plat.fnctl("deploy", str(directory))
        invoked = plat.invoke("py-env", {"names": ["DB_PASSWORD", "STAGE"]})
        assert invoked.status_code == 200 and invoked.json() == {"DB_PASSWORD": value, "STAGE": "prod"}

        url = f"{plat.url}/v1/functions/py-env"
        masked = requests.get(url, headers=plat.headers(), timeout=30).json()
        assert masked["environment"] == {"DB_PASSWORD": "****", "STAGE": "****"}
        reveal = {"reveal_environment": "true"}
        revealed = requests.get(url, params=reveal, headers=plat.headers(), timeout=30)
        assert revealed.json()["environment"] == {"DB_PASSWORD": value, "STAGE": "prod"}
        described = plat.fnctl("describe", "py-env").stdout
        assert "DB_PASSWORD=****" in described and value not in described
        assert f"DB_PASSWORD={value}" in plat.fnctl("describe", "py-env", "--show-environment").stdout

        assert value.encode() not in database_bytes(plat.data_dir)

        plat.stop()
        assert value.encode() not in database_bytes(plat.data_dir)
        wrong = start_fails(plat, FNPLAT_SECRET_KEY=generate_key())
        assert wrong.startswith("error: a function environment in the store cannot be decrypted")
        key_file = plat.data_dir / "secret.key"
        key_file.rename(tmp_path / "secret.key.saved")
        missing = start_fails(plat)
        assert missing.startswith(f"error: no secret key: {key_file} does not exist")
        assert not key_file.exists()
        (tmp_path / "secret.key.saved").rename(key_file)

        plat.start()  # the right key again: the task still gets the real value
        invoked = plat.invoke("py-env", {"names": ["DB_PASSWORD"]})
        assert invoked.status_code == 200 and invoked.json() == {"DB_PASSWORD": value}
