"""Kills go to Docker one at a time, each as SIGKILL, wait, remove (no Docker needed: a fake client)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from fnplat.controller.docker_engine import DockerEngine


@dataclass
class FakeApi:
    calls: list[tuple[str, str]] = field(default_factory=list)
    active: int = 0
    most_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self, name: str, container_id: str) -> None:
        with self.lock:
            self.calls.append((name, container_id))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(0.02)  # long enough for overlapping kills to overlap here
        with self.lock:
            self.active -= 1

    def kill(self, container_id: str) -> None:
        self._call("kill", container_id)

    def wait(self, container_id: str, timeout: int) -> None:
        self._call("wait", container_id)

    def remove_container(self, container_id: str, force: bool = False, v: bool = False) -> None:
        self._call("remove with volumes" if v else "remove", container_id)


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def close(self) -> None:
        return None


async def test_kills_are_serialised_and_wait_before_removing() -> None:
    api = FakeApi()
    engine = DockerEngine("unit", client_factory=lambda *, max_pool_size: FakeClient(api))  # type: ignore[arg-type,return-value]
    try:
        await asyncio.gather(*(engine.kill(f"c{i}") for i in range(4)))
    finally:
        await engine.close()
    assert api.most_active == 1
    for i in range(4):
        # With its anonymous volumes: an image's VOLUME would otherwise stay on the host's disk.
        assert [name for name, cid in api.calls if cid == f"c{i}"] == ["kill", "wait", "remove with volumes"]
