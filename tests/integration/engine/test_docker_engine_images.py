"""remove_image on the real engine: removes a tag, is idempotent, and never removes an image a
container uses (garbage collection then keeps the function's artifact and tries again)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from engine_harness import BASE_IMAGE, docker_cli

from fnplat.controller.docker_engine import DockerEngine
from fnplat.errors import EngineError

pytestmark = pytest.mark.docker


async def test_remove_image_removes_an_image_once_and_keeps_one_in_use(
    docker_engine_ready: None, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    tag = f"fnplat-fn/enginetest-rm-{unique}:x"
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL fnplat.test-run=rm-image-{unique}\n")
    engine = DockerEngine(f"enginetest-{unique}")
    container = ""
    try:
        await engine.build_image(tmp_path, tag)  # an image of its own: this tag is its only name
        container = docker_cli("create", "--label", "fnplat.test-run=rm-image", tag, "true").stdout.strip()
        with pytest.raises(EngineError):
            await engine.remove_image(tag)  # a (stopped) container uses it
        assert await engine.image_exists(tag)
        docker_cli("rm", container)
        await engine.remove_image(tag)
        assert not await engine.image_exists(tag)
        await engine.remove_image(tag)  # already gone: not an error
    finally:
        if container:
            docker_cli("rm", "-f", container, check=False)
        docker_cli("image", "rm", "-f", tag, check=False)
        await engine.close()
