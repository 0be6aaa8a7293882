"""Micro-benchmark: what the gateway's connection limits add to each read of a request head.

`python -m bench.gateway_reads` feeds a whole request head to aiohttp's protocol and to ours
(gateway/connection_limits.py) on an idle keep-alive connection, the warm path's case, and prints
the time per read. No sockets: the transport is a stub, so the figures are the protocol's own.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from fnplat.gateway.connection_limits import ConnectionGate, GatedRequestHandler
from fnplat.metrics import Metrics

HEAD = b"POST /fn HTTP/1.1\r\nHost: x\r\nx-api-key: abc\r\nContent-Length: 2\r\n\r\n{}"
READS = 100_000
ROUNDS = 9


class StubTransport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _per_read_ns(handler: Any, loop: asyncio.AbstractEventLoop) -> float:
    started = time.perf_counter()
    for _ in range(READS):
        handler._waiter = loop.create_future()  # idle, waiting for its next request
        handler.data_received(HEAD)
        handler._messages.clear()  # as the handler loop would take the request
    return (time.perf_counter() - started) / READS * 1e9


async def _main() -> None:
    loop = asyncio.get_running_loop()
    server = web.Server(lambda request: None)  # type: ignore[arg-type,return-value]
    plain = RequestHandler(server, loop=loop, access_log=None)
    gated = GatedRequestHandler(server, ConnectionGate(10, 20.0, Metrics()), loop=loop, access_log=None)
    for handler in (plain, gated):
        handler.connection_made(StubTransport())
        if handler._task_handler is not None:  # the request loop: not wanted here
            handler._task_handler.cancel()
    gated.data_received(b"GET / HTTP/1.1\r\n\r\n")  # its first head: the per-connection timer ends
    gated._messages.clear()
    results: dict[str, list[float]] = {"aiohttp": [], "fnplat": []}
    for _ in range(ROUNDS):
        results["aiohttp"].append(_per_read_ns(plain, loop))
        results["fnplat"].append(_per_read_ns(gated, loop))
    for name, values in results.items():
        print(f"{name:8} ns per head read: min {min(values):.0f}, median {statistics.median(values):.0f}")


if __name__ == "__main__":
    asyncio.run(_main())
