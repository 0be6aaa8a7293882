"""Run inside a network namespace by test_task_network.py: the "elsewhere" a task may or may not
reach. Listens on each LISTEN address (connections are accepted and closed) and forwards each
PROXY address to its target, until stdin closes. Prints "ready" once every socket is bound.

    python netns_stand_ins.py --listen 198.51.100.71:4000 --proxy 10.254.71.20:5432=172.17.0.2:5432
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def _forwarder(target: tuple[str, int]):  # type: ignore[no-untyped-def]
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    return forward


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--proxy", action="append", default=[])
    args = parser.parse_args()
    servers = [await asyncio.start_server(_close_at_once, *_split(a)) for a in args.listen]
    for spec in args.proxy:
        address, target = spec.split("=", 1)
        servers.append(await asyncio.start_server(_forwarder(_split(target)), *_split(address)))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
