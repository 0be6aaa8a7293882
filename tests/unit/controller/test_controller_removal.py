"""Functions removed leave nothing behind: no pools or counters in the controller, no deploy
locks, no metric series (the Prometheus label sets and the cached children)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest
from controller_harness import Harness, make_request, settle
from prometheus_client import generate_latest
from store_support import sealed_sessions

from fnplat.artifacts import ArtifactStore
from fnplat.catalog import Catalog
from fnplat.controller.fake_engine import FakeContext, FakeFunction, FakeFunctionError
from fnplat.deployments import DeployService
from fnplat.errors import Conflict, TooManyRequests
from fnplat.store.db import make_engine, upgrade_to_head

COUNT = 25


def package(name: str, route: str) -> bytes:
    spec = f"name: {name}\nruntime: python3.11\nhandler: app.handler\nroutes: ['{route}']\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", spec)
        archive.writestr("app.py", f"# {name}\n")
    return buffer.getvalue()


async def test_deploy_invoke_and_remove_many_functions_leaves_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    controller = await harness.start(default_concurrency=2, queue_timeout_s=0.01)
    db = make_engine(f"sqlite:///{tmp_path / 'fnplat.db'}")
    upgrade_to_head(db)
    catalog = Catalog()

    async def build_image(context: str, tag: str) -> str:
        return "sha256:fake"

    deployer = DeployService(
        sealed_sessions(db),
        ArtifactStore(tmp_path / "artifacts", tmp_path / "code"),
        catalog,
        build_image,
        controller.retire,
    )
    names = [f"fn-{i}" for i in range(COUNT)]
    for i, name in enumerate(names):
        gate = asyncio.Event()

        async def held(event: bytes, ctx: FakeContext, gate: asyncio.Event = gate, i: int = i) -> bytes:
            await gate.wait()
            if i % 5 == 0:
                raise FakeFunctionError("Boom", "an error outcome too")
            return event

        harness.engine.register(name, FakeFunction(handler=held))
        await deployer.deploy(package(name, f"GET /r{i}/{{x}}"))
        version = catalog.latest(name)
        assert version is not None
        # Concurrency 2, three callers: two cold starts and a throttle, then two results.
        calls = [asyncio.create_task(controller.invoke(make_request(version))) for _ in range(3)]
        done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
        assert isinstance(done.pop().exception(), TooManyRequests)
        gate.set()
        await asyncio.gather(*calls, return_exceptions=True)
    with pytest.raises(Conflict):  # a failed deploy holds no lock afterwards either
        await deployer.deploy(package("intruder", "GET /r1/{y}"))
    exposition = generate_latest(harness.metrics.registry).decode()
    assert 'function="fn-7"' in exposition  # the series exist while the functions do

    for name in names:
        await deployer.remove(name)
    await harness.engine.wait_until(lambda: not harness.engine.containers)
    await harness.engine.wait_until(lambda: not controller.tracked_functions())

    assert controller.tasks() == []
    assert deployer.locks_held == 0
    exposition = generate_latest(harness.metrics.registry).decode()
    assert 'function="fn-' not in exposition
    assert 'function="intruder"' not in exposition
    # The cached children are gone too: a function deployed again under an old name starts at 0.
    await deployer.deploy(package("fn-3", "GET /again/{x}"))
    version = catalog.latest("fn-3")
    assert version is not None
    harness.engine.register("fn-3", FakeFunction())
    await controller.invoke(make_request(version))
    await settle(lambda: harness.metric("fnplat_invocations_total", function="fn-3", outcome="success") == 1)
    db.dispose()
