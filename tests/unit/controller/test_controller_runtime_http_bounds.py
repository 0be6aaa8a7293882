"""What a Runtime API client can make the HTTP layer hold: back-pressure from replies nobody
reads, bodies queued behind a long poll, per connection and per source address, and pipelined
floods of tiny requests. Real servers on loopback, raw non-blocking sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from runtime_flood import (
    Flood,
    Meter,
    finish_and_read,
    held,
    raw_connection,
    read_replies,
    small_kernel_buffers,
)

from fnplat.controller.runtime_http import (
    MAX_CONNECTIONS_PER_PEER,
    MAX_PIPELINED,
    PARSE_PIECE,
    WRITE_HIGH_WATER,
    HttpConnection,
    HttpServer,
    Pending,
    Reply,
    Request,
)
from fnplat.metrics import Metrics

MAX_BODY = 6 * 1024 * 1024 + 100  # the Runtime API's
READ_MAX = 262_144  # the most one read brings (asyncio: 256 KiB, uvloop: 256,000 bytes)
REPLY_BATCH = 64 * 1024  # small replies written in one go, past the high-water mark


def documented_bound(server: HttpServer, connections: int = MAX_CONNECTIONS_PER_PEER) -> int:
    """What one source address may make the server hold (runtime_http.py's docstring)."""
    limits = server.limits
    return limits.peer + limits.max_body + connections * (READ_MAX + WRITE_HIGH_WATER + REPLY_BATCH)


@dataclass
class Handler:
    """GET /wait long-polls until released; everything else is answered at once with 200."""

    waits: list[asyncio.Future[None]] = field(default_factory=list)
    answered: int = 0
    bodies: int = 0  # body bytes seen
    polled: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, request: Request, peer: str) -> Reply | Pending:
        self.bodies += len(request.body)
        if request.path == "/wait":
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waits.append(future)
            self.polled.set()
            return Pending(future, lambda: Reply(200, b"woken"), lambda: None)
        self.answered += 1
        return Reply(200, b"ok")

    def release(self) -> None:
        for future in self.waits:
            if not future.done():
                future.set_result(None)


@dataclass
class Served:
    handler: Handler
    server: HttpServer
    meter: Meter
    port: int

    def all_paused(self) -> bool:
        live = [c for c in self.meter.connections if not c._closing]
        return bool(live) and all(c._read_paused for c in live)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    handler = Handler()
    server = HttpServer(handler, max_body=MAX_BODY)
    meter = Meter(server)
    meter.attach()
    port = await server.start("127.0.0.1", 0)
    small_kernel_buffers(server)
    try:
        yield Served(handler, server, meter, port)
    finally:
        await server.close()


def post(size: int, path: str = "/post") -> bytes:
    return b"POST %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (path.encode(), size) + b"p" * size


GET = b"GET /a HTTP/1.1\r\n\r\n"


async def test_a_client_that_never_reads_stops_being_read_and_resumes_when_it_reads(
    served: Served,
) -> None:
    sock = raw_connection(served.port)
    flood = Flood(sock, GET)
    bound = documented_bound(served.server, connections=1)
    await flood.until_stalled(served.all_paused, give_up=lambda: served.meter.sample() > bound)
    assert served.all_paused(), f"the server held {served.meter.peak} bytes and kept reading"
    assert served.meter.peak <= bound
    assert served.server.read_pauses()["unread_replies"] >= 1
    # Nothing was lost: once the client reads, every request it sent is answered, in order.
    statuses = await finish_and_read(flood)
    assert statuses == [200] * len(statuses)
    assert served.handler.answered == len(statuses) == flood.sent // len(GET)
    assert held(served.server) == 0
    sock.close()


async def test_bodies_behind_a_long_poll_are_bounded_per_connection(served: Served) -> None:
    sock = raw_connection(served.port)
    await asyncio.get_running_loop().sock_sendall(sock, b"GET /wait HTTP/1.1\r\n\r\n")
    flood = Flood(sock, post(MAX_BODY))  # the largest body a runtime may post, over and over
    bound = documented_bound(served.server, connections=1)
    await flood.until_stalled(served.all_paused, give_up=lambda: served.meter.sample() > bound)
    assert served.meter.peak <= bound
    connection = served.meter.connections[0]
    # One whole body is queued; the next one stopped reading within a read of its start.
    assert MAX_BODY <= served.server.buffered_bytes()["request_bodies"] <= MAX_BODY + READ_MAX
    assert connection._read_paused
    assert served.server.read_pauses()["connection_buffer"] >= 1
    # The long poll ends: everything queued is answered, and reading picks up where it stopped.
    served.handler.release()
    statuses = await finish_and_read(flood, before=1)
    assert statuses == [200] * len(statuses)
    assert served.handler.bodies == (len(statuses) - 1) * MAX_BODY
    assert held(served.server) == 0
    sock.close()


async def test_all_connections_of_one_address_share_one_bound(served: Served) -> None:
    loop = asyncio.get_running_loop()
    socks = [raw_connection(served.port) for _ in range(MAX_CONNECTIONS_PER_PEER)]
    for sock in socks:
        await loop.sock_sendall(sock, b"GET /wait HTTP/1.1\r\n\r\n")
    floods = [Flood(sock, post(MAX_BODY)) for sock in socks]
    bound = documented_bound(served.server)
    await asyncio.gather(
        *(f.until_stalled(served.all_paused, give_up=lambda: served.meter.sample() > bound) for f in floods)
    )
    assert served.all_paused()
    assert served.meter.peak <= bound
    # Together they hold one address's worth of bodies (and one whole request), not eight
    # connections' worth.
    limits = served.server.limits
    bodies = served.server.buffered_bytes()["request_bodies"]
    assert bodies <= limits.peer + limits.max_body + MAX_CONNECTIONS_PER_PEER * READ_MAX
    assert served.server.peer_buffered("127.0.0.1") == held(served.server)
    assert served.server.read_pauses()["peer_buffer"] >= 1
    served.handler.release()  # every connection gets through, one finisher at a time

    replies = await asyncio.gather(*(finish_and_read(f, before=1) for f in floods))
    for sock in socks:
        sock.close()
    assert all(statuses == [200] * len(statuses) for statuses in replies)
    assert served.handler.bodies == sum(len(statuses) - 1 for statuses in replies) * MAX_BODY
    assert held(served.server) == 0


async def test_a_flood_of_tiny_requests_behind_a_long_poll_queues_a_bounded_number(
    served: Served,
) -> None:
    sock = raw_connection(served.port)
    await asyncio.get_running_loop().sock_sendall(sock, b"GET /wait HTTP/1.1\r\n\r\n")
    flood = Flood(sock, GET)  # one 256 KB read of these is 13,000 requests
    await flood.until_stalled(served.all_paused, give_up=lambda: served.meter.peak_queue > 1000)
    # Parsed a piece at a time: at most one piece's worth past the limit, the rest left unparsed.
    assert served.meter.peak_queue <= MAX_PIPELINED + PARSE_PIECE // len(GET) + 1
    assert served.server.buffered_bytes()["unparsed_input"] <= READ_MAX
    assert served.server.read_pauses()["pipelined"] >= 1
    served.handler.release()
    statuses = await finish_and_read(flood, before=1)
    assert statuses == [200] * len(statuses)
    assert served.handler.answered == len(statuses) - 1 == flood.sent // len(GET)
    sock.close()


async def test_a_result_and_the_next_request_in_one_write_are_not_held_back(served: Served) -> None:
    # What our bootstraps send: a 6 MB result and the next `next` pipelined in one write.
    loop = asyncio.get_running_loop()
    sock = raw_connection(served.port)
    await loop.sock_sendall(sock, post(MAX_BODY) + b"GET /wait HTTP/1.1\r\n\r\n")
    await served.handler.polled.wait()
    assert served.handler.bodies == MAX_BODY
    assert served.server.read_pauses() == dict.fromkeys(served.server.read_pauses(), 0)
    served.handler.release()
    assert await read_replies(sock, 2) == [200, 200]
    sock.close()


async def test_chunked_bodies_are_parsed_whole_across_pieces(served: Served) -> None:
    loop = asyncio.get_running_loop()
    sock = raw_connection(served.port)
    chunk = b"%x\r\n" % 10_000 + b"c" * 10_000 + b"\r\n"
    await loop.sock_sendall(
        sock, b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 50 + b"0\r\n\r\n" + GET
    )
    assert await read_replies(sock, 2) == [200, 200]
    assert served.handler.bodies == 500_000
    sock.close()


# -- the protocol's decisions, on a transport that records what it is asked to do -------------


@dataclass(eq=False)
class RecordingTransport:
    writes: list[bytes] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    closed: bool = False

    def get_extra_info(self, name: str) -> object:
        return ("10.0.0.2", 4321) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        self.calls.append(f"limits {high} {low}")

    def get_write_buffer_size(self) -> int:
        return 0


def connected(handler: Handler) -> tuple[HttpConnection, RecordingTransport, HttpServer]:
    server = HttpServer(handler, max_body=MAX_BODY)
    connection = server._connection()
    transport = RecordingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport, server


async def test_the_usual_exchange_costs_no_pause_or_resume() -> None:
    handler = Handler()
    connection, transport, _ = connected(handler)
    assert transport.calls == ["limits 65536 16384"]
    for _ in range(3):  # a result and the next `next`, then the event arrives
        connection.data_received(post(2000, "/result") + b"GET /wait HTTP/1.1\r\n\r\n")
        handler.release()
        await asyncio.sleep(0)
    assert transport.calls == ["limits 65536 16384"]
    assert len(transport.writes) == 3


async def test_while_writes_are_paused_nothing_is_answered_or_read() -> None:
    handler = Handler()
    connection, transport, _ = connected(handler)
    connection.pause_writing()  # as the transport does from inside write()
    assert transport.calls[-1] == "pause_reading"
    connection.data_received(GET * 3)  # already in flight when reading stopped
    assert transport.writes == [] and handler.answered == 0
    connection.resume_writing()
    assert handler.answered == 3
    assert len(transport.writes) == 1 and transport.writes[0].count(b"200 OK") == 3
    assert transport.calls[-1] == "resume_reading"


async def test_a_long_poll_answer_is_written_even_while_writes_are_paused() -> None:
    handler = Handler()
    connection, transport, _ = connected(handler)
    connection.data_received(b"GET /wait HTTP/1.1\r\n\r\n" + GET)
    connection.pause_writing()
    handler.release()
    await asyncio.sleep(0)
    assert [w.endswith(b"woken") for w in transport.writes] == [True]  # the poll's answer only
    assert handler.answered == 0
    connection.resume_writing()
    assert handler.answered == 1


async def test_a_connection_lost_releases_what_it_held() -> None:
    handler = Handler()
    connection, _, server = connected(handler)
    connection.data_received(b"GET /wait HTTP/1.1\r\n\r\n" + post(1000) + post(5000)[:3000])
    assert server.buffered_bytes()["request_bodies"] > 1000
    connection.connection_lost(None)
    assert server.buffered_bytes() == {"request_bodies": 0, "unparsed_input": 0, "unsent_replies": 0}
    assert server.peer_buffered("10.0.0.2") == 0


async def test_the_servers_figures_are_prometheus_metrics(served: Served) -> None:
    metrics = Metrics()
    metrics.watch_runtime_api(served.server)
    loop = asyncio.get_running_loop()
    socks = [raw_connection(served.port) for _ in range(MAX_CONNECTIONS_PER_PEER + 1)]
    await loop.sock_sendall(socks[0], b"GET /wait HTTP/1.1\r\n\r\n" + post(1000))
    await served.handler.polled.wait()
    assert await loop.sock_recv(socks[-1], 1) == b""  # the ninth is accepted, then closed
    sample = metrics.registry.get_sample_value
    assert sample("fnplat_runtime_api_connections_refused_total", {"reason": "too_many_connections"}) == 1
    assert sample("fnplat_runtime_api_buffered_bytes", {"kind": "request_bodies"}) == 1000
    assert sample("fnplat_runtime_api_read_pauses_total", {"reason": "unread_replies"}) == 0
    for sock in socks:
        sock.close()
