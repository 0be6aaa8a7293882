"""The bare aiohttp proxy hop baseline: `python -m bench.hop PORT UPSTREAM_URL`.

An aiohttp server on 127.0.0.1 (uvloop, like the platform) that forwards every request over one
keep-alive ClientSession and returns the answer: the cost of one Python HTTP hop with no logic.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import uvloop
from aiohttp import web


async def serve(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with session.request(request.method, upstream + request.path_qs, data=body or None) as resp:
            payload = await resp.read()
            return web.Response(body=payload, status=resp.status, content_type=resp.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"hop listening on 127.0.0.1:{port} -> {upstream}", flush=True)
    try:
        await asyncio.Event().wait()  # until the parent terminates us
    finally:
        await runner.cleanup()
        await session.close()


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    uvloop.run(serve(port, upstream))


if __name__ == "__main__":
    main()
