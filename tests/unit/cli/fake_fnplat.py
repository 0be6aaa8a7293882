"""A scripted fnplat HTTP server on 127.0.0.1 for CLI and client tests.

Real HTTP (a ThreadingHTTPServer), so the client's headers, bodies, streaming and error mapping
are exercised as they are against the real gateway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_KEY = "fnp_admin01_secretsecret"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def error_reply(status: int, error_type: str, message: str) -> Reply:
    kind = "User" if status < 500 else "Service"
    return json_reply(
        status, {"Type": kind, "message": message, "errorType": error_type}, {"x-amzn-ErrorType": error_type}
    )


Responder = Callable[[Recorded], Reply]


class FakeFnplat:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], Responder] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                recorded = Recorded(
                    self.command,
                    unquote(parts.path),
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                fake.requests.append(recorded)
                responder = fake._routes.get((self.command, recorded.path))
                reply = responder(recorded) if responder else json_reply(404, {"message": "Not Found"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the loop to notice it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def on(self, method: str, path: str, reply: Reply | Responder) -> None:
        if isinstance(reply, Reply):
            fixed = reply

            def reply(_: Recorded) -> Reply:
                return fixed

        self._routes[(method, path)] = reply

    def only(self, method: str, path: str) -> Recorded:
        matching = [r for r in self.requests if r.method == method and r.path == path]
        assert len(matching) == 1, f"expected one {method} {path}, got {self.requests}"
        return matching[0]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def running() -> Iterator[FakeFnplat]:
    fake = FakeFnplat()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
