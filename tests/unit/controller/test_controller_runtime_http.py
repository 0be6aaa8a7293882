"""The Runtime API's HTTP/1.1 layer over raw sockets: order, pipelining, long polls, bodies,
limits and bad input."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from fnplat.controller.runtime_http import (
    MAX_CONNECTIONS_PER_PEER,
    MAX_HEAD_BYTES,
    HttpConnection,
    HttpServer,
    Pending,
    Reply,
    Request,
)


@dataclass
class EchoHandler:
    """Answers with what it saw; GET /wait long-polls until `release` is set."""

    seen: list[Request] = field(default_factory=list)
    waits: list[asyncio.Future[None]] = field(default_factory=list)
    abandoned: int = 0
    polling: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, request: Request, peer: str) -> Reply | Pending:
        self.seen.append(request)
        if request.path == "/wait":
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waits.append(future)
            self.polling.set()

            def abandon() -> None:
                self.abandoned += 1
                self.hung_up.set()

            return Pending(future, lambda: Reply(200, b"woken"), abandon)
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        body = request.body if request.oversize is None else b"oversize %d" % request.oversize
        return Reply(200, body, (("X-Peer", peer),), content_type="text/plain")


@pytest.fixture
async def server() -> AsyncIterator[tuple[EchoHandler, int]]:
    handler = EchoHandler()
    http = HttpServer(handler, max_body=1000)
    port = await http.start("127.0.0.1", 0)
    try:
        yield handler, port
    finally:
        await http.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def test_pipelined_requests_are_answered_in_order(server: tuple[EchoHandler, int]) -> None:
    handler, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
        b"GET /c?q=1 HTTP/1.1\r\nHost: x\r\nX-Mixed-Case: Yes\r\n\r\n"
    )
    answers = [await read_response(reader) for _ in range(3)]
    assert [body for _, _, body in answers] == [b"one", b"two", b""]
    assert answers[0][1]["x-peer"] == "127.0.0.1"
    assert answers[0][1]["content-type"] == "text/plain"
    assert [r.path for r in handler.seen] == ["/a", "/b", "/c"]
    assert handler.seen[2].headers["x-mixed-case"] == "Yes"
    writer.close()


async def test_a_long_poll_holds_back_the_requests_behind_it(server: tuple[EchoHandler, int]) -> None:
    handler, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    await handler.polling.wait()
    assert [r.path for r in handler.seen] == ["/wait"]  # /after waits its turn
    handler.waits[0].set_result(None)
    assert (await read_response(reader))[2] == b"woken"
    assert (await read_response(reader))[2] == b""
    assert [r.path for r in handler.seen] == ["/wait", "/after"]
    writer.close()


async def test_a_long_poll_is_abandoned_when_the_runtime_hangs_up(server: tuple[EchoHandler, int]) -> None:
    handler, port = server
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    await handler.polling.wait()
    writer.close()
    await writer.wait_closed()
    await handler.hung_up.wait()
    assert handler.abandoned == 1


async def test_bodies_over_the_limit_reach_the_handler_as_oversize(server: tuple[EchoHandler, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\n\r\n" + b"x" * 1500)
    assert (await read_response(reader))[2] == b"oversize 1500"
    chunk = b"400\r\n" + b"y" * 0x400 + b"\r\n"
    chunked = b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    writer.write(chunked + chunk * 2 + b"0\r\n\r\n")
    assert (await read_response(reader))[2] == b"oversize 2048"  # read to the end, then refused
    writer.write(b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    assert (await read_response(reader))[2] == b"ok"  # the connection is still in step
    writer.close()


async def test_expect_100_continue_is_answered(server: tuple[EchoHandler, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(b"body")
    assert (await read_response(reader))[2] == b"body"
    writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n"
     b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"],
)
async def test_malformed_requests_get_400_and_the_connection_closes(
    server: tuple[EchoHandler, int], request_bytes: bytes
) -> None:
    handler, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes)
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (400, "close")
    assert await reader.read() == b""
    assert handler.seen == []
    writer.close()


async def test_http_1_0_and_connection_close_end_the_connection(server: tuple[EchoHandler, int]) -> None:
    _, port = server
    for request in (b"GET /a HTTP/1.0\r\n\r\n", b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "close")
        assert await reader.read() == b""
        writer.close()


async def test_a_failing_handler_answers_500_and_keeps_the_connection(
    server: tuple[EchoHandler, int],
) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 500
    assert (await read_response(reader))[0] == 200
    writer.close()


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        Reply(200, b"", (("X-Injected", "a\r\nSet-Cookie: x"),)).encode(close=False)


@dataclass(eq=False)
class FakeTransport:
    writes: list[bytes] = field(default_factory=list)
    closed: bool = False

    def get_extra_info(self, name: str) -> object:
        return ("10.0.0.2", 4321) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, high: int, low: int) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0


def connected(handler: EchoHandler) -> tuple[HttpConnection, FakeTransport]:
    server = HttpServer(handler, max_body=1000)
    connection = server._connection()
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def test_replies_before_a_pipelined_long_poll_go_out_with_its_reply() -> None:
    handler = EchoHandler()
    connection, transport = connected(handler)
    connection.data_received(
        b"POST /result HTTP/1.1\r\nContent-Length: 2\r\n\r\nok" b"GET /wait HTTP/1.1\r\n\r\n"
    )
    assert transport.writes == []  # the result's reply waits for the long poll's
    handler.waits[0].set_result(None)
    await asyncio.sleep(0)  # the future's callbacks run on the next loop turn
    assert len(transport.writes) == 1
    assert transport.writes[0].count(b"HTTP/1.1 200 OK") == 2
    assert transport.writes[0].endswith(b"woken")


async def test_a_request_on_its_own_is_answered_at_once() -> None:
    handler = EchoHandler()
    connection, transport = connected(handler)
    connection.data_received(b"POST /result HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"ok")
    connection.data_received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert len(transport.writes) == 2  # two pipelined replies, one write
    assert transport.writes[1].count(b"HTTP/1.1 200 OK") == 2


async def test_an_endless_request_head_is_cut_off(server: tuple[EchoHandler, int]) -> None:
    handler, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def flood() -> None:  # a header that never ends, sent until the server hangs up
        writer.write(b"GET /a HTTP/1.1\r\nX-Flood: ")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"a" * 4096)
                await writer.drain()

    flooding = asyncio.create_task(flood())
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (431, "close")
    await flooding
    assert handler.seen == []
    writer.close()


async def test_a_large_but_bounded_head_is_fine(server: tuple[EchoHandler, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a HTTP/1.1\r\nX-Big: " + b"b" * (MAX_HEAD_BYTES // 2) + b"\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    writer.close()


async def test_connections_per_peer_are_capped(server: tuple[EchoHandler, int]) -> None:
    _, port = server
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS_PER_PEER)]
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
    assert await extra_reader.read() == b""  # closed at once, unanswered
    for reader, writer in connections:  # the first ones still work
        writer.write(b"GET /a HTTP/1.1\r\n\r\n")
        assert (await read_response(reader))[0] == 200
    connections[0][1].close()
    await connections[0][1].wait_closed()
    extra_writer.close()
    for _, writer in connections[1:]:
        writer.close()


async def test_a_head_after_a_large_body_in_the_same_packet_is_not_cut_off(
    server: tuple[EchoHandler, int],
) -> None:
    # What our bootstraps send: a result (here 300 KB) and the next `next` in one write.
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"r" * 300_000
    head = b"POST /r HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    writer.write(head + body + b"GET /b HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[2] == b"oversize 300000"
    assert (await read_response(reader))[0] == 200
    writer.close()
