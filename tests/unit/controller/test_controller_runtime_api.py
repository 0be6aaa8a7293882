"""The Runtime API as a task (or an impostor) sees it: identity by source address, state rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from controller_harness import Harness, make_request, make_version

from fnplat.controller.fake_engine import FakeContainer, FakeContext, FakeFunction, hangs
from fnplat.controller.service import Controller


@asynccontextmanager
async def client_from(ip: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from `ip` (as a task's, or an impostor's)."""
    connector = aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def url(controller: Controller, path: str) -> str:
    return f"http://{controller.runtime_api_address}/2018-06-01{path}"


def container_that_got(harness: Harness, request_id: str) -> FakeContainer:
    return next(c for c in harness.engine.containers.values() if request_id in c.requests)


async def test_ping(harness: Harness) -> None:
    controller = await harness.start()
    async with client_from("127.0.0.1") as client, client.get(url(controller, "/ping")) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/runtime/invocation/next"),
        ("POST", "/runtime/invocation/some-id/response"),
        ("POST", "/runtime/invocation/some-id/error"),
        ("POST", "/runtime/init/error"),
    ],
)
async def test_an_unknown_address_is_refused(harness: Harness, method: str, path: str) -> None:
    controller = await harness.start()
    await controller.invoke(make_request(make_version()))  # a real task exists at 127.0.0.2
    async with (
        client_from("127.0.200.9") as client,
        client.request(method, url(controller, path)) as response,
    ):
        assert response.status == 403
        assert (await response.json())["errorType"] == "AccessDenied"


async def test_a_task_cannot_answer_another_tasks_invocation(harness: Harness) -> None:
    gate, entered = asyncio.Event(), []

    async def held(event: bytes, ctx: FakeContext) -> bytes:
        entered.append(ctx.request_id)
        await gate.wait()
        return event

    harness.engine.register("fn", FakeFunction(handler=held))
    controller = await harness.start()
    fn = make_version()
    request_a, request_b = make_request(fn, b'"a"'), make_request(fn, b'"b"')
    call_a = asyncio.create_task(controller.invoke(request_a))
    call_b = asyncio.create_task(controller.invoke(request_b))
    await harness.engine.wait_until(lambda: len(entered) == 2)
    task_a = container_that_got(harness, request_a.request_id)
    forged = url(controller, f"/runtime/invocation/{request_b.request_id}/response")
    async with client_from(task_a.ip) as client:
        async with client.post(forged, data=b'"forged"') as response:
            assert response.status == 400  # A has an invocation, but not this one
            assert (await response.json())["errorType"] == "InvalidRequestID"
        error_url = url(controller, f"/runtime/invocation/{request_b.request_id}/error")
        async with client.post(error_url, json={"errorType": "X", "errorMessage": "forged"}) as response:
            assert response.status == 400
    gate.set()
    assert (await call_a).payload == b'"a"'
    assert (await call_b).payload == b'"b"'  # B's invocation was not touched
    async with client_from(task_a.ip) as client, client.post(forged, data=b'"late"') as response:
        assert response.status == 403  # A has nothing in flight now
        assert (await response.json())["errorType"] == "InvalidStateTransition"


async def test_state_rules_for_the_calling_task(harness: Harness) -> None:
    """A test client takes the place of a task's runtime (same source address)."""
    harness.engine.register("fn", FakeFunction(handler=hangs()))
    controller = await harness.start()
    request = make_request(make_version())
    call = asyncio.create_task(controller.invoke(request))
    await harness.engine.wait_until(
        lambda: any(request.request_id in c.requests for c in harness.engine.running())
    )
    ip = container_that_got(harness, request.request_id).ip
    response_url = url(controller, f"/runtime/invocation/{request.request_id}/response")
    async with client_from(ip) as client:
        async with client.get(url(controller, "/runtime/invocation/next")) as response:
            assert response.status == 403  # `next` again before answering the current event
        async with client.post(url(controller, "/runtime/init/error"), json={}) as response:
            assert response.status == 403  # init is long over
        async with client.post(response_url, data=b'{"answer": 42}') as response:
            assert response.status == 202
            assert await response.json() == {"status": "OK"}
        async with client.post(response_url, data=b'{"answer": 43}') as response:
            assert response.status == 403  # answered twice
            assert (await response.json())["errorType"] == "InvalidStateTransition"
    result = await call
    assert json.loads(result.payload) == {"answer": 42}


async def test_error_type_falls_back_to_the_header(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(handler=hangs()))
    controller = await harness.start()
    request = make_request(make_version())
    call = asyncio.create_task(controller.invoke(request))
    await harness.engine.wait_until(
        lambda: any(request.request_id in c.requests for c in harness.engine.running())
    )
    ip = container_that_got(harness, request.request_id).ip
    error_url = url(controller, f"/runtime/invocation/{request.request_id}/error")
    headers = {"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"}
    async with client_from(ip) as client, client.post(error_url, data=b"boom", headers=headers) as response:
        assert response.status == 202
    result = await call
    assert (result.function_error, result.error_type) == ("Unhandled", "Runtime.Custom")
    assert json.loads(result.payload) == {"errorMessage": "boom", "errorType": "Runtime.Custom"}


async def test_a_chunked_oversized_response_is_refused(harness: Harness) -> None:
    harness.engine.register("fn", FakeFunction(handler=hangs()))
    controller = await harness.start()
    request = make_request(make_version())
    call = asyncio.create_task(controller.invoke(request))
    await harness.engine.wait_until(
        lambda: any(request.request_id in c.requests for c in harness.engine.running())
    )
    ip = container_that_got(harness, request.request_id).ip

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    response_url = url(controller, f"/runtime/invocation/{request.request_id}/response")
    async with client_from(ip) as client, client.post(response_url, data=chunks()) as response:
        assert response.status == 413
        assert (await response.json())["errorType"] == "RequestEntityTooLarge"
    result = await call
    assert result.error_type == "Function.ResponseSizeTooLarge"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/runtime/nothing", 404),
        ("POST", "/runtime/invocation/some-id/other", 404),
        ("POST", "/runtime/invocation//response", 404),
        ("POST", "/runtime/invocation/next", 405),
        ("GET", "/runtime/invocation/some-id/response", 405),
        ("GET", "/runtime/init/error", 405),
        ("DELETE", "/ping", 405),
    ],
)
async def test_unknown_paths_and_methods_are_refused(
    harness: Harness, method: str, path: str, status: int
) -> None:
    controller = await harness.start()
    async with client_from("127.0.0.1") as client, client.request(method, url(controller, path)) as response:
        assert response.status == status
        assert (await response.json())["errorType"] in ("NotFound", "MethodNotAllowed")
