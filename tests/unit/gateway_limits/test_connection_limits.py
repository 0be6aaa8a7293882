"""The gateway's listener: connection cap, request-head deadline, keep-alive (no Docker).

Each test starts the real listener (`start_listener`, as `fnctl up` does) around a tiny app and
talks to it over raw sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from fnplat.config import GatewaySettings
from fnplat.gateway.listener import Listener, start_listener
from fnplat.metrics import Metrics

GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def hello(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def echo(request: web.Request) -> web.StreamResponse:
    return web.Response(body=await request.read())


StartGateway = Callable[..., Awaitable[tuple[Listener, Metrics]]]


@pytest.fixture
async def start() -> AsyncIterator[StartGateway]:
    listeners: list[Listener] = []

    async def start(**settings: float) -> tuple[Listener, Metrics]:
        app = web.Application()
        app.router.add_get("/", hello)
        app.router.add_post("/echo", echo)
        metrics = Metrics()
        listener = await start_listener(app, "127.0.0.1", 0, GatewaySettings(**settings), metrics)  # type: ignore[arg-type]
        listeners.append(listener)
        return listener, metrics

    yield start
    for listener in listeners:
        await listener.close()


async def connect(listener: Listener) -> Connection:
    return await asyncio.open_connection("127.0.0.1", listener.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(lines[0].split()[1]), body


async def ask(connection: Connection, request: bytes = GET) -> tuple[int, bytes]:
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    return await read_response(reader)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails after 10 s)."""
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# ---- the connection cap --------------------------------------------------------------------------


async def test_connections_over_the_cap_are_closed_at_once_and_the_others_keep_working(
    start: StartGateway,
) -> None:
    listener, metrics = await start(max_connections=4)
    held = [await connect(listener) for _ in range(4)]
    for connection in held:
        assert await ask(connection) == (200, b"ok")
    assert sample(metrics, "fnplat_gateway_open_connections") == 4

    reader, writer = await connect(listener)
    writer.write(GET)
    assert await closed_by_server(reader) == b""  # no answer: closed as soon as it was accepted
    writer.close()
    assert sample(metrics, "fnplat_gateway_refused_connections_total") == 1

    for connection in held:  # the connections inside the cap are untouched
        assert await ask(connection) == (200, b"ok")
    # A slot freed is a slot usable again.
    held[0][1].close()
    await closed_by_server(held[0][0])
    deadline = asyncio.get_running_loop().time() + 10
    while sample(metrics, "fnplat_gateway_open_connections") != 3:
        assert asyncio.get_running_loop().time() < deadline, "the server never saw the close"
        await asyncio.sleep(0.01)  # polling the server's view of a close: no event to wait on
    assert await ask(await connect(listener)) == (200, b"ok")


def test_the_cap_keeps_a_quarter_of_the_open_files_limit_for_everything_else() -> None:
    from fnplat.gateway.open_files import RESERVED_MIN, connection_cap

    assert connection_cap(4096, 20000) == 4096
    assert connection_cap(4096, 4096) == 3072
    assert connection_cap(4096, 1024) == 1024 - RESERVED_MIN
    assert connection_cap(10, 100) == 1  # never zero: the gateway must answer someone


# ---- the request-head deadline -------------------------------------------------------------------


async def test_a_head_that_never_ends_gets_408_and_is_closed(start: StartGateway) -> None:
    listener, metrics = await start(header_timeout_s=0.3)
    reader, writer = await connect(listener)
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")  # ... and nothing more
    answer = await closed_by_server(reader)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b'{"message":"Request Timeout"}')
    assert sample(metrics, "fnplat_gateway_timeouts_total", phase="head") == 1


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(start: StartGateway) -> None:
    listener, metrics = await start(header_timeout_s=0.3, keepalive_timeout_s=300)
    reader, writer = await connect(listener)
    answer = await closed_by_server(reader)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sample(metrics, "fnplat_gateway_open_connections") == 0


async def test_a_trickled_head_on_a_keep_alive_connection_gets_the_same_deadline(start: StartGateway) -> None:
    listener, metrics = await start(header_timeout_s=0.3, keepalive_timeout_s=300)
    connection = await connect(listener)
    assert await ask(connection) == (200, b"ok")
    reader, writer = connection
    writer.write(b"GET / HTTP/1.1\r\n")  # the next request starts and stalls
    answer = await closed_by_server(reader)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sample(metrics, "fnplat_gateway_timeouts_total", phase="head") == 1


async def test_a_head_in_pieces_within_the_deadline_is_served(start: StartGateway) -> None:
    listener, _ = await start(header_timeout_s=5)
    reader, writer = await connect(listener)
    for piece in (b"GET / HT", b"TP/1.1\r\nHo", b"st: test\r\n", b"\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)  # a slow client: the pieces arrive as separate reads
    assert await read_response(reader) == (200, b"ok")
    # And again on the same (keep-alive) connection.
    writer.write(b"GET / HTTP/1.1\r\n")
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.write(b"Host: test\r\n\r\n")
    assert await read_response(reader) == (200, b"ok")


async def test_the_head_deadline_ends_with_the_head(start: StartGateway) -> None:
    # A body (or a handler) slower than the head timeout is not cut by it.
    listener, metrics = await start(header_timeout_s=0.2)
    reader, writer = await connect(listener)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nab")
    await writer.drain()
    await asyncio.sleep(0.5)  # a slow client, past the head deadline
    writer.write(b"cd")
    assert await read_response(reader) == (200, b"abcd")
    assert sample(metrics, "fnplat_gateway_timeouts_total", phase="head") == 0


# ---- keep-alive ----------------------------------------------------------------------------------


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    start: StartGateway,
) -> None:
    listener, metrics = await start(keepalive_timeout_s=0.3, header_timeout_s=300)
    connection = await connect(listener)
    assert await ask(connection) == (200, b"ok")

    assert await closed_by_server(connection[0]) == b""  # closed quietly: it was idle
    assert sample(metrics, "fnplat_gateway_timeouts_total", phase="head") == 0
