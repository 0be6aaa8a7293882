"""The Lambda Runtime API (2018-06-01) that our tasks' runtimes talk to.

One aiohttp listener on the task network's gateway address. A caller is identified only by its
source address: every task has its own fixed address on the isolated network and no capability
to spoof another, so a task can only fetch and answer its own invocations.

This is the hot path: no database, no logging, no allocation that can be avoided per request.
Status codes and error types follow the AWS Runtime Interface Emulator.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from fnplat.controller import outcomes
from fnplat.controller.task import Task
from fnplat.domain import RESPONSE_PAYLOAD_LIMIT

PREFIX = "/2018-06-01"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

_JSON = "application/json"
_ACCEPTED = b'{"status":"OK"}'
_FORBIDDEN = b'{"errorMessage":"Unknown caller: not a task of this controller","errorType":"AccessDenied"}'
_BAD_STATE = b'{"errorMessage":"Invalid state transition","errorType":"InvalidStateTransition"}'
_BAD_ID = b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}'
_STOPPING = b'{"errorMessage":"The task is being stopped","errorType":"InternalServerError"}'
_TOO_LARGE = (
    b'{"errorMessage":"Exceeded maximum allowed payload size (%d bytes).",' % RESPONSE_PAYLOAD_LIMIT
    + b'"errorType":"RequestEntityTooLarge"}'
)


class RuntimeHooks(Protocol):
    def on_first_next(self, task: Task) -> None:
        """The task's runtime finished init and asked for its first event: it is ready."""
        ...

    def on_init_error(self, task: Task, body: bytes, error_type: str | None) -> bool:
        """The runtime reported a fatal init error; False if the task is past init."""
        ...


def _reply(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=_JSON)


def _trace_id() -> str:
    """An X-Ray trace header for invocations that arrived without one."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class RuntimeApi:
    """The handlers. `tasks_by_ip` is the fleet's live map: a stopping task is no longer in it."""

    def __init__(self, tasks_by_ip: Mapping[str, Task], hooks: RuntimeHooks) -> None:
        self._tasks = tasks_by_ip
        self._hooks = hooks

    def app(self) -> web.Application:
        # client_max_size: read() refuses bodies over Lambda's response limit with 413.
        app = web.Application(client_max_size=RESPONSE_PAYLOAD_LIMIT)
        app.router.add_get(f"{PREFIX}/runtime/invocation/next", self.next_invocation)
        app.router.add_post(f"{PREFIX}/runtime/invocation/{{request_id}}/response", self.invocation_response)
        app.router.add_post(f"{PREFIX}/runtime/invocation/{{request_id}}/error", self.invocation_error)
        app.router.add_post(f"{PREFIX}/runtime/init/error", self.init_error)
        app.router.add_get(f"{PREFIX}/ping", self.ping)
        return app

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def next_invocation(self, request: web.Request) -> web.Response:
        task = self._tasks.get(request.remote or "")
        if task is None:
            return _reply(403, _FORBIDDEN)
        if task.ready_at is None:
            self._hooks.on_first_next(task)
        invocation = task.current
        if invocation is None:
            if task.next_waiter is not None and not task.next_waiter.done():
                return _reply(403, _BAD_STATE)  # one `next` at a time per task
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            task.next_waiter = waiter
            try:
                await waiter  # long poll: no server-side timeout, as Lambda
            finally:
                if task.next_waiter is waiter:
                    task.next_waiter = None
            invocation = task.current
            if invocation is None or self._tasks.get(request.remote or "") is not task:
                return _reply(500, _STOPPING)
        elif invocation.delivered:
            return _reply(403, _BAD_STATE)  # `next` again without answering the current event
        invocation.delivered = True
        event = invocation.request
        headers = {
            "Lambda-Runtime-Aws-Request-Id": event.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": event.invoked_function_arn,
            "Lambda-Runtime-Trace-Id": event.trace_id or _trace_id(),
            "Content-Type": _JSON,
        }
        if event.client_context:
            headers["Lambda-Runtime-Client-Context"] = event.client_context
        return web.Response(body=event.payload, headers=headers)

    def _invocation_of(self, request: web.Request) -> tuple[Task | None, web.Response | None]:
        """The calling task if it may answer the request id in the path, else the refusal."""
        task = self._tasks.get(request.remote or "")
        if task is None:
            return None, _reply(403, _FORBIDDEN)
        invocation = task.current
        if invocation is None or not invocation.delivered:
            return None, _reply(403, _BAD_STATE)  # nothing in flight for this task
        if request.match_info["request_id"] != invocation.request.request_id:
            return None, _reply(400, _BAD_ID)
        return task, None

    async def invocation_response(self, request: web.Request) -> web.Response:
        task, refusal = self._invocation_of(request)
        if task is None:
            return refusal or _reply(403, _BAD_STATE)
        invocation = task.current
        declared = request.content_length
        oversize = declared if declared is not None and declared > RESPONSE_PAYLOAD_LIMIT else None
        body = b""
        if oversize is None:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                oversize = RESPONSE_PAYLOAD_LIMIT + 1  # a chunked body without a declared length
        if task.current is not invocation or invocation is None:
            return _reply(403, _BAD_STATE)  # finished meanwhile (deadline, exit) while we read
        if oversize is not None:
            # The runtime is told and the caller gets Function.ResponseSizeTooLarge; the task is
            # replaced, as runtimes exit on a refused POST.
            task.complete(outcomes.response_too_large(invocation, oversize), unhealthy=True)
            return _reply(413, _TOO_LARGE)
        task.complete(outcomes.success(invocation, body))
        return _reply(202, _ACCEPTED)

    async def invocation_error(self, request: web.Request) -> web.Response:
        task, refusal = self._invocation_of(request)
        if task is None:
            return refusal or _reply(403, _BAD_STATE)
        invocation = task.current
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b""  # an oversized error body: keep the type from the header
        if task.current is not invocation or invocation is None:
            return _reply(403, _BAD_STATE)
        task.complete(outcomes.function_error(invocation, body, request.headers.get(ERROR_TYPE_HEADER)))
        return _reply(202, _ACCEPTED)

    async def init_error(self, request: web.Request) -> web.Response:
        task = self._tasks.get(request.remote or "")
        if task is None:
            return _reply(403, _FORBIDDEN)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b""
        if not self._hooks.on_init_error(task, body, request.headers.get(ERROR_TYPE_HEADER)):
            return _reply(403, _BAD_STATE)
        return _reply(202, _ACCEPTED)


class RuntimeApiServer:
    """Binds the Runtime API on one address; port 0 picks a free port (read it back from start())."""

    def __init__(self, api: RuntimeApi) -> None:
        self._api = api
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        # Long polls are open while we shut down: do not wait the default minute for them.
        runner = web.AppRunner(self._api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        raise RuntimeError("the Runtime API listener has no bound address")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
