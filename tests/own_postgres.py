"""A Postgres container of a test's own, that the test may freeze (`docker pause`) or stop without
disturbing the session's shared one (importable from every test directory).

The container is labelled `fnplat.test=own-postgres` and removed afterwards, paused or not.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

IMAGE = "fnplat/postgres:15"
LABEL = "fnplat.test=own-postgres"


def _docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class OwnPostgres:
    name: str
    url: str  # postgresql://fnplat:fnplat@127.0.0.1:PORT/fnplat

    def pause(self) -> None:
        _docker("pause", self.name)

    def unpause(self) -> None:
        _docker("unpause", self.name)


def _wait_ready(url: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                connection.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # polling another process, with a deadline


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """Start a Postgres (the locally built image; `scripts/build-images.sh postgres` builds it) on
    a free loopback port; stop and remove it afterwards, unpausing it first if needed."""
    name = f"fnplat-test-pg-{uuid.uuid4().hex[:8]}"
    _docker("run", "-d", "--name", name, "--label", LABEL, "-p", "127.0.0.1::5432", IMAGE)
    try:
        port = _docker("port", name, "5432/tcp").splitlines()[0].rsplit(":", 1)[1]
        url = f"postgresql://fnplat:fnplat@127.0.0.1:{port}/fnplat"
        _wait_ready(url)
        yield OwnPostgres(name, url)
    finally:
        _docker("unpause", name, check=False)
        _docker("rm", "-f", "-v", name, check=False)
