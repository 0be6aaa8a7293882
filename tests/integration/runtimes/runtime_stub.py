"""A stub Lambda Runtime API and a launcher that runs our bootstraps against it.

The stub hands out events queued by the test and records what the runtime posts back (response,
invocation error, init error), so tests assert on the exact wire contract of lambda-compat §1-2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from aiohttp import web

REPO = Path(__file__).resolve().parents[3]
PYTHON_BOOTSTRAP = REPO / "runtimes" / "python3.11" / "bootstrap"
NODE_BOOTSTRAP = REPO / "runtimes" / "nodejs18.x" / "bootstrap.js"
WAIT_S = 15.0  # generous upper bound for any single wait; tests finish far sooner


@dataclass(frozen=True)
class Posted:
    """One POST the runtime made: a response, an invocation error or the init error."""

    kind: str  # "response" | "error" | "init_error"
    request_id: str | None
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass
class StubEvent:
    request_id: str
    body: bytes
    headers: dict[str, str]


@dataclass
class StubRuntimeApi:
    """Serves GET next from a queue; records posts; can refuse posts to test fatal handling."""

    events: asyncio.Queue[StubEvent] = field(default_factory=asyncio.Queue)
    posted: dict[str, asyncio.Future[Posted]] = field(default_factory=dict)
    init_error: asyncio.Future[Posted] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    next_calls: int = 0
    next_waiting: asyncio.Condition = field(default_factory=asyncio.Condition)
    post_status: int = 202  # what POSTs are answered with
    close_after_post: bool = False  # answer POSTs with Connection: close (runtime must reconnect)
    address: str = ""
    _parked: set[asyncio.Task[object]] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/2018-06-01/runtime/invocation/next", self._next)
        app.router.add_post("/2018-06-01/runtime/invocation/{request_id}/response", self._response)
        app.router.add_post("/2018-06-01/runtime/invocation/{request_id}/error", self._error)
        app.router.add_post("/2018-06-01/runtime/init/error", self._init_error)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"{host}:{port}"
        return self.address

    async def stop(self) -> None:
        # Handlers still parked in GET next would hold the server's graceful shutdown for a minute.
        for task in self._parked:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def invoke(
        self,
        event: object = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        deadline_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> str:
        """Queue one event; return its request id."""
        request_id = request_id or str(uuid.uuid4())
        deadline = deadline_ms if deadline_ms is not None else int(time.time() * 1000) + 30_000
        event_headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
            "Content-Type": content_type,
            **(headers or {}),
        }
        body = raw if raw is not None else json.dumps(event).encode()
        self.posted[request_id] = asyncio.get_running_loop().create_future()
        self.events.put_nowait(StubEvent(request_id, body, event_headers))
        return request_id

    async def result(self, request_id: str, limit_s: float = WAIT_S) -> Posted:
        return await asyncio.wait_for(asyncio.shield(self.posted[request_id]), limit_s)

    async def call(self, event: object = None, **kwargs: object) -> Posted:
        """Queue an event and wait for what the runtime posts for it."""
        return await self.result(self.invoke(event, **kwargs))  # type: ignore[arg-type]

    async def wait_for_next_calls(self, count: int, limit_s: float = WAIT_S) -> None:
        async with self.next_waiting:
            await asyncio.wait_for(self.next_waiting.wait_for(lambda: self.next_calls >= count), limit_s)

    async def _next(self, request: web.Request) -> web.Response:
        async with self.next_waiting:
            self.next_calls += 1
            self.next_waiting.notify_all()
        task = asyncio.current_task()
        assert task is not None
        self._parked.add(task)
        try:
            event = await self.events.get()
        finally:
            self._parked.discard(task)
        return web.Response(body=event.body, headers=event.headers)

    async def _record(self, request: web.Request, kind: str) -> web.Response:
        body = await request.read()
        request_id = request.match_info.get("request_id")
        posted = Posted(kind, request_id, body, dict(request.headers))
        if kind == "init_error":
            if not self.init_error.done():
                self.init_error.set_result(posted)
        else:
            future = self.posted.get(request_id or "")
            if future is None or future.done():
                return web.json_response(
                    {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}, status=400
                )
            future.set_result(posted)
        if self.post_status >= 300:
            refusal = {"errorMessage": "refused", "errorType": "InvalidStateTransition"}
            return web.json_response(refusal, status=self.post_status)
        accepted = web.json_response({"status": "OK"}, status=202)
        if self.close_after_post:
            accepted.force_close()
        return accepted

    async def _response(self, request: web.Request) -> web.Response:
        return await self._record(request, "response")

    async def _error(self, request: web.Request) -> web.Response:
        return await self._record(request, "error")

    async def _init_error(self, request: web.Request) -> web.Response:
        return await self._record(request, "init_error")


class RuntimeProcess:
    """A bootstrap running as a child process, its output collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._line_added = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._line_added:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._line_added.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_exit(self, limit_s: float = WAIT_S) -> int:
        code = await asyncio.wait_for(self.process.wait(), limit_s)
        await asyncio.wait_for(self._reader, limit_s)
        return code

    async def wait_for_line(self, needle: str, limit_s: float = WAIT_S) -> str:
        """The first output line containing needle, waiting for it to be written."""

        def found() -> bool:
            return any(needle in line for line in self.lines)

        try:
            async with self._line_added:
                await asyncio.wait_for(self._line_added.wait_for(found), limit_s)
        except TimeoutError:
            raise AssertionError(f"no output line contains {needle!r}; output:\n{self.output}") from None
        return next(line for line in self.lines if needle in line)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


def function_env(api_address: str, handler: str, task_root: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]abc",
        "AWS_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_test",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TZ": ":UTC",
    }
    env.update(extra)
    return env


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


@dataclass
class Launcher:
    """Starts bootstraps against the stub; kills whatever it started at teardown."""

    api: StubRuntimeApi
    root: Path
    started: list[RuntimeProcess] = field(default_factory=list)

    async def python(self, files: Mapping[str, str], handler: str, **env: str) -> RuntimeProcess:
        python = shutil.which("python3.11") or "python3.11"
        return await self._start([python, str(PYTHON_BOOTSTRAP)], files, handler, env)

    async def node(self, files: Mapping[str, str], handler: str, **env: str) -> RuntimeProcess:
        return await self._start([shutil.which("node") or "node", str(NODE_BOOTSTRAP)], files, handler, env)

    async def _start(
        self, argv: list[str], files: Mapping[str, str], handler: str, env: Mapping[str, str]
    ) -> RuntimeProcess:
        task_root = write_files(self.root / f"task{len(self.started)}", files)
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=task_root,
            env=function_env(self.api.address, handler, task_root, **env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        runtime = RuntimeProcess(process)
        self.started.append(runtime)
        return runtime


@contextlib.asynccontextmanager
async def withholding_api() -> AsyncIterator[tuple[str, asyncio.Future[bytes]]]:
    """A Runtime API that hands out one event (request id r1), then withholds every answer until
    the runtime's result *and* its next `next` have arrived, and resolves the future with what
    came. fnplat's Runtime API answers a result and a pipelined `next` in one packet; a runtime
    that waited for the result's answer before asking for the next event would hang here."""
    both_in: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"GET /2018-06-01/runtime/invocation/next ")
        event = b'{"n": 1}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Deadline-Ms: %d\r\nContent-Length: %d\r\n\r\n%s"
            % (int(time.time() * 1000) + 30_000, len(event), event)
        )
        both_in.set_result(await reader.readuntil(b"GET /2018-06-01/runtime/invocation/next "))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", both_in
    finally:
        server.close()


async def sent_after_first_event(root: Path, start: Callable[[Launcher], Awaitable[RuntimeProcess]]) -> bytes:
    """What a runtime started by `start` sends after its first event, on a withholding_api()."""
    async with withholding_api() as (address, both_in):
        launch = Launcher(api=cast(StubRuntimeApi, SimpleNamespace(address=address)), root=root)
        try:
            await start(launch)
            return await asyncio.wait_for(both_in, WAIT_S)
        finally:
            for runtime in launch.started:
                await runtime.stop()
