"""Requests a client can get wrong on purpose: stalled bodies, trace headers a runtime cannot
hold, header bytes that are not UTF-8 (no Docker: the invoker is scripted)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

from gateway_harness import Gateway, GatewayFactory, metric_value

from fnplat import ids
from fnplat.config import GatewaySettings

SPEC = (
    "name: hello\nruntime: python3.11\nhandler: app.handler\n"
    "routes: ['POST /hello', 'GET /hello']\nauth: none\n"
)
ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


async def deployed(make_gateway: GatewayFactory, **settings: float) -> Gateway:
    gateway = await make_gateway(gateway=GatewaySettings(**settings))  # type: ignore[arg-type]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("function.yaml", SPEC)
        archive.writestr("app.py", "def handler(e, c): pass\n")
    response = await gateway.client.post(
        "/v1/functions", data=buffer.getvalue(), headers={**gateway.admin, "Content-Type": "application/zip"}
    )
    assert response.status == 201, await response.text()
    return gateway


def invoke_head(gateway: Gateway, length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: test\r\n"
        + f"x-api-key: {gateway.admin_key}\r\nContent-Length: {length}\r\n".encode()
        + extra
        + b"\r\n"
    )


# ---- stalled bodies -----------------------------------------------------------------------------


async def test_a_stalled_invoke_body_gets_408_and_the_connection_is_closed(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await deployed(make_gateway, body_timeout_s=0.3)
    answer = await gateway.raw(invoke_head(gateway, 100) + b'{"a": 1')  # 7 of 100 bytes, then nothing

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"x-amzn-ErrorType: RequestTimeoutException" in head
    assert json.loads(body)["message"] == "the request body stalled for 0.3 s"
    assert gateway.invoker.requests == []
    assert metric_value(gateway.deps.metrics, "fnplat_gateway_timeouts_total", phase="body") == 1


async def test_a_stalled_route_body_gets_api_gateways_408(make_gateway: GatewayFactory) -> None:
    gateway = await deployed(make_gateway, body_timeout_s=0.3)
    head = b"POST /hello HTTP/1.1\r\nHost: test\r\nContent-Length: 50\r\n\r\n"
    answer = await gateway.raw(head + b"partial")

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b'{"message":"Request Timeout"}')


async def test_a_body_arriving_in_pieces_faster_than_the_timeout_is_read_whole(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await deployed(make_gateway, body_timeout_s=5)
    payload = b'{"pieces": [' + b",".join(b"%d" % i for i in range(2000)) + b"]}"
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(invoke_head(gateway, len(payload), b"Connection: close\r\n"))
    for start in range(0, len(payload), 1000):
        writer.write(payload[start : start + 1000])
        await writer.drain()
    answer = await reader.read()
    writer.close()

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert gateway.invoker.requests[0].payload == payload


# ---- trace headers ------------------------------------------------------------------------------


async def test_a_well_formed_trace_header_reaches_the_task(make_gateway: GatewayFactory) -> None:
    gateway = await deployed(make_gateway)
    response = await gateway.client.post(
        "/2015-03-31/functions/hello/invocations",
        json={},
        headers={**gateway.admin, "X-Amzn-Trace-Id": ROOT},
    )
    assert response.status == 200
    assert gateway.invoker.requests[-1].trace_id == ROOT


async def test_a_trace_header_with_bytes_that_are_not_text_is_replaced_not_forwarded(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await deployed(make_gateway)
    bad = ROOT.encode() + b";Note=\xff\xfe"
    extra = b"Connection: close\r\nX-Amzn-Trace-Id: " + bad + b"\r\n"
    answer = await gateway.raw(invoke_head(gateway, 2, extra) + b"{}")

    assert answer.startswith(b"HTTP/1.1 200 ")
    forwarded = gateway.invoker.requests[-1].trace_id
    assert forwarded is not None and forwarded.isascii() and "Note" not in forwarded
    assert ids.forwarded_trace_id(forwarded) == forwarded


async def test_an_overlong_trace_header_on_a_route_is_replaced(make_gateway: GatewayFactory) -> None:
    gateway = await deployed(make_gateway)
    long_header = ROOT + ";Pad=" + "x" * 4000
    response = await gateway.client.get("/hello", headers={"X-Amzn-Trace-Id": long_header})

    assert response.status == 200
    forwarded = gateway.invoker.requests[-1].trace_id
    assert forwarded is not None and len(forwarded) <= ids.TRACE_ID_MAX_LENGTH


async def test_a_route_request_with_header_bytes_that_are_not_utf8_reaches_the_function(
    make_gateway: GatewayFactory,
) -> None:
    # aiohttp hands such bytes over as lone surrogates, which UTF-8 JSON cannot hold: the 2.0
    # event escapes them (\udcxx) instead of failing the request with a 500.
    gateway = await deployed(make_gateway)
    head = b"GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Name: caf\xe9\r\n\r\n"
    answer = await gateway.raw(head)

    assert answer.startswith(b"HTTP/1.1 200 ")
    event = json.loads(gateway.invoker.requests[-1].payload)
    assert event["headers"]["x-name"] == "caf\udce9"


async def test_a_key_request_body_is_bounded_like_every_other(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    response = await gateway.client.post(
        "/v1/keys", data=b'{"name": "' + b"x" * 70000 + b'"}', headers=gateway.admin
    )
    assert response.status == 413
    created = await gateway.client.post("/v1/keys", json={"name": "ci"}, headers=gateway.admin)
    assert created.status == 201
