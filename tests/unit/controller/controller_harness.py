"""A started Controller on a FakeEngine (loopback, no Docker), with its sinks captured."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from fnplat.config import ControllerSettings
from fnplat.controller.engine import NetworkInfo
from fnplat.controller.fake_engine import FakeEngine
from fnplat.controller.service import Controller
from fnplat.domain import FunctionVersion, InvocationRecord, LogEvent, frozen_map
from fnplat.invocation import InvocationRequest, InvocationResult
from fnplat.metrics import Metrics

TEST_SETTINGS = ControllerSettings(
    runtime_api_port=0,
    default_concurrency=10,
    queue_timeout_s=2.0,
    max_queue_length=100,
    keep_alive_s=600.0,
    init_timeout_s=2.0,
    task_memory_capacity_mb=4096,
    instance_id="unit-test",
)


def make_version(name: str = "fn", version: int = 1, **changes: object) -> FunctionVersion:
    base = FunctionVersion(
        function_name=name,
        version=version,
        runtime="python3.11",
        handler="app.handler",
        memory=128,
        timeout=3,
        environment=frozen_map(),
        code_sha256="0" * 64,
        image=None,
        created_at=datetime.now(UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def make_request(
    function: FunctionVersion, payload: bytes = b'{"x": 1}', **changes: object
) -> InvocationRequest:
    request = InvocationRequest(
        function=function,
        payload=payload,
        request_id=str(uuid.uuid4()),
        invoked_function_arn=f"arn:aws:lambda:us-east-1:000000000000:function:{function.function_name}",
    )
    return replace(request, **changes)  # type: ignore[arg-type]


@dataclass
class RecordingFirewall:
    """A stand-in for the iptables firewall: what the controller asked of it, in order."""

    calls: list[str] = field(default_factory=list)
    installed: tuple[NetworkInfo, int, NetworkInfo | None] | None = None

    async def install(self, tasks: NetworkInfo, runtime_api_port: int, builds: NetworkInfo | None) -> None:
        self.calls.append("install")
        self.installed = (tasks, runtime_api_port, builds)

    async def ensure(self) -> None:
        self.calls.append("ensure")

    async def remove(self) -> None:
        self.calls.append("remove")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    engine: FakeEngine
    metrics: Metrics
    clock: FakeClock
    firewall: RecordingFirewall = field(default_factory=RecordingFirewall)
    logs: list[LogEvent] = field(default_factory=list)
    records: list[InvocationRecord] = field(default_factory=list)
    controllers: list[Controller] = field(default_factory=list)

    async def start(self, **settings: object) -> Controller:
        controller = Controller(
            self.engine,
            replace(TEST_SETTINGS, **settings),  # type: ignore[arg-type]
            region="us-east-1",
            code_dir_for=lambda version: None,
            log_sink=self.logs.append,
            record_sink=self.records.append,
            metrics=self.metrics,
            firewall=self.firewall,
            clock=self.clock,
        )
        self.controllers.append(controller)
        await controller.start()
        return controller

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(engine=FakeEngine(), metrics=Metrics(), clock=FakeClock())
    try:
        yield h
    finally:
        for controller in h.controllers:
            await controller.close()
        await h.engine.close()


async def settle(predicate: Callable[[], bool], rounds: int = 10_000) -> None:
    """Let the event loop run (no wall-clock wait) until `predicate` holds; fail if it never does.

    For conditions inside the controller that nothing signals (a request queued in a pool)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def invoke(
    controller: Controller, function: FunctionVersion, payload: bytes = b'{"x": 1}'
) -> InvocationResult:
    return await controller.invoke(make_request(function, payload))
