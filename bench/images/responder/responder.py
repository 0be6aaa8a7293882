"""Minimal HTTP/1.1 keep-alive responder: answers every request with 200 and a 2-byte body.

An asyncio Protocol that only finds the end of the headers and skips Content-Length bytes of body:
the cheapest honest HTTP server Python can be, so it measures the network path, not a framework.
"""

import asyncio
from typing import Any

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(RESPONSE)


async def main() -> None:
    server = await asyncio.get_running_loop().create_server(Responder, "0.0.0.0", 8080, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
