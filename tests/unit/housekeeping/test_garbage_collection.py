"""Garbage collection of artifacts, unpacked code and function images (SQLite store, fake engine):
only what no version references and nobody used within the grace period, never a deploy's."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.config import TelemetrySettings
from fnplat.controller.fake_engine import FakeEngine
from fnplat.deployments import DeployService
from fnplat.housekeeping import Housekeeper, function_image_tag
from fnplat.metrics import Metrics
from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, generate_key
from fnplat.store.db import make_engine, make_sessionmaker, transaction, upgrade_to_head
from fnplat.store.models import ArtifactRow

GRACE_S = 3600.0


def function_zip(name: str, runtime: str = "image", body: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        handler = "" if runtime == "image" else "handler: app.handler\n"
        archive.writestr("function.yaml", f"name: {name}\nruntime: {runtime}\n{handler}")
        if runtime == "image":
            archive.writestr("Dockerfile", f"FROM scratch\n# {body}\n")
        else:
            archive.writestr("app.py", f"def handler(e, c):\n    return {body!r}\n")
    return buffer.getvalue()


@dataclass
class World:
    artifacts: ArtifactStore
    engine: FakeEngine
    deployer: DeployService
    housekeeper: Housekeeper
    metrics: Metrics
    sessions: object

    def age(self, sha: str, seconds: float = 2 * GRACE_S) -> None:
        """Make an artifact look stored, recorded and unpacked `seconds` ago."""
        then = time.time() - seconds
        for path in (self.artifacts.zip_path(sha), self.artifacts.code_path(sha)):
            if path.exists():
                os.utime(path, (then, then))
        with transaction(self.sessions) as s:  # type: ignore[arg-type]
            s.execute(
                update(ArtifactRow)
                .where(ArtifactRow.sha256 == sha)
                .values(created_at=datetime.now(UTC) - timedelta(seconds=seconds))
            )

    def removed(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value("fnplat_gc_removed_total", {"kind": kind})
        return value or 0.0


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(db)
    sessions = make_sessionmaker(db, EnvironmentCipher(SecretKeys(generate_key().encode(), (), "test")))
    artifacts = ArtifactStore(tmp_path / "artifacts", tmp_path / "code")
    engine = FakeEngine()
    metrics = Metrics(CollectorRegistry())

    async def build_image(context: str, tag: str) -> str:
        return await engine.build_image(Path(context), tag)

    async def retire(name: str, keep: int | None) -> None:
        return None

    deployer = DeployService(sessions, artifacts, Catalog(), build_image, retire)
    settings = TelemetrySettings(gc_grace_s=GRACE_S, housekeeping_interval_s=0)
    housekeeper = Housekeeper(db, sessions, artifacts, engine, settings, metrics)
    yield World(artifacts, engine, deployer, housekeeper, metrics, sessions)
    await housekeeper.close()
    db.dispose()


async def test_the_image_tag_gc_derives_is_the_one_a_deploy_gives(world: World) -> None:
    deployment = await world.deployer.deploy(function_zip("Imaged-Fn"))
    version = deployment.version
    assert version.image == function_image_tag("Imaged-Fn", version.code_sha256)


async def test_a_removed_function_loses_its_artifact_code_and_image_after_the_grace_period(
    world: World,
) -> None:
    deployment = await world.deployer.deploy(function_zip("gone"))
    sha, tag = deployment.version.code_sha256, deployment.version.image
    assert tag in world.engine.images and world.artifacts.code_path(sha).is_dir()
    await world.deployer.remove("gone")

    await world.housekeeper.collect_garbage()  # within the grace period: kept
    assert world.artifacts.exists(sha) and tag in world.engine.images

    world.age(sha)
    await world.housekeeper.collect_garbage()
    assert not world.artifacts.exists(sha)
    assert not world.artifacts.code_path(sha).exists()
    assert tag not in world.engine.images
    with transaction(world.sessions) as s:  # type: ignore[arg-type]
        assert s.get(ArtifactRow, sha) is None
    assert (world.removed("artifact"), world.removed("code_dir"), world.removed("image")) == (1, 1, 1)
    assert [p.name for p in world.artifacts.root.rglob("*") if p.is_file()] == []


async def test_what_a_version_references_is_never_collected(world: World) -> None:
    first = await world.deployer.deploy(function_zip("kept", "python3.11", "v1"))
    second = await world.deployer.deploy(function_zip("kept", "python3.11", "v2"))
    for version in (first.version, second.version):  # an old version still references its code
        world.artifacts.unpack(version.code_sha256)
        world.age(version.code_sha256)
    await world.housekeeper.collect_garbage()
    for version in (first.version, second.version):
        assert world.artifacts.exists(version.code_sha256)
        assert world.artifacts.code_path(version.code_sha256).is_dir()


async def test_an_old_artifact_stored_again_by_a_deploy_in_flight_is_not_collected(world: World) -> None:
    data = function_zip("again", "python3.11")
    sha = (await world.deployer.deploy(data)).version.code_sha256
    await world.deployer.remove("again")
    world.age(sha)
    # A deploy of the same code has stored the zip and not yet written its version.
    world.artifacts.put(data)
    await world.housekeeper.collect_garbage()
    assert world.artifacts.exists(sha)
    deployment = await world.deployer.deploy(data)  # the deploy completes and the code is there
    assert world.artifacts.unpack(deployment.version.code_sha256).is_dir()


async def test_an_image_still_in_use_keeps_its_artifact_until_the_next_run(world: World) -> None:
    deployment = await world.deployer.deploy(function_zip("busy"))
    sha, tag = deployment.version.code_sha256, deployment.version.image
    assert tag is not None
    await world.deployer.remove("busy")
    world.age(sha)
    in_use = world.engine.add_container({})
    world.engine.containers[in_use].taskdef = _taskdef(tag)
    await world.housekeeper.collect_garbage()
    assert world.artifacts.exists(sha) and tag in world.engine.images  # tried again next run
    await world.engine.kill(in_use)
    await world.housekeeper.collect_garbage()
    assert not world.artifacts.exists(sha) and tag not in world.engine.images


async def test_leftovers_of_interrupted_writes_are_removed_after_the_grace_period(world: World) -> None:
    (world.artifacts.root / "sha256").mkdir(parents=True)
    world.artifacts.code_root.mkdir(parents=True)
    old_zip = world.artifacts.root / "sha256" / ".tmp-abc.zip"
    old_dir = world.artifacts.code_root / ".tmp-abcdef-123"
    young = world.artifacts.code_root / ".gc-young"
    old_zip.write_bytes(b"partial")
    (old_dir / "sub").mkdir(parents=True)
    young.mkdir()
    for path in (old_zip, old_dir):
        os.utime(path, (time.time() - 2 * GRACE_S,) * 2)
    await world.housekeeper.collect_garbage()
    assert not old_zip.exists() and not old_dir.exists() and young.exists()
    assert world.removed("temp") == 2


def _taskdef(image: str) -> object:
    from fnplat.controller.engine import TaskDefinition

    return TaskDefinition(family="busy", revision=1, image=image, command=None, memory_mb=128)
