"""The Lambda Runtime API (2018-06-01) that our tasks' runtimes talk to.

One listener on the task network's gateway address (the HTTP layer is runtime_http.py). A caller
is identified only by its source address: every task has its own fixed address on the isolated
network and no capability to spoof another, so a task can only fetch and answer its own
invocations.

This is the hot path: no database, no logging, no allocation that can be avoided per request.
Status codes and error types follow the AWS Runtime Interface Emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import unquote

from fnplat import ids
from fnplat.controller import outcomes
from fnplat.controller.runtime_http import HttpServer, Pending, Reply, Request
from fnplat.controller.task import Invocation, Task
from fnplat.domain import RESPONSE_PAYLOAD_LIMIT

PREFIX = "/2018-06-01"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"  # request header names arrive lower-cased
NEXT = f"{PREFIX}/runtime/invocation/next"
INVOCATION = f"{PREFIX}/runtime/invocation/"  # + {request_id}/response | {request_id}/error
INIT_ERROR = f"{PREFIX}/runtime/init/error"
PING = f"{PREFIX}/ping"

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


_ACCEPTED_REPLY = Reply(202, _ACCEPTED)
_FORBIDDEN_REPLY = Reply(403, _FORBIDDEN)
_BAD_STATE_REPLY = Reply(403, _BAD_STATE)
_BAD_ID_REPLY = Reply(400, _BAD_ID)
_STOPPING_REPLY = Reply(500, _STOPPING)
_TOO_LARGE_REPLY = Reply(413, _TOO_LARGE)
_PONG = Reply(200, b"pong", content_type="text/plain")
_NOT_FOUND = Reply(404, b'{"errorMessage":"No such Runtime API path","errorType":"NotFound"}')
_NOT_ALLOWED = Reply(405, b'{"errorMessage":"Method not allowed","errorType":"MethodNotAllowed"}')


class RuntimeApi:
    """The handlers. `tasks_by_ip` is the fleet's live map: a stopping task is no longer in it."""

    def __init__(self, tasks_by_ip: Mapping[str, Task], hooks: RuntimeHooks) -> None:
        self._tasks = tasks_by_ip
        self._hooks = hooks

    def __call__(self, request: Request, peer: str) -> Reply | Pending:
        path, method = request.path, request.method
        if path == NEXT:
            return self.next_invocation(peer) if method == "GET" else _NOT_ALLOWED
        if path.startswith(INVOCATION):
            request_id, _, action = path[len(INVOCATION) :].rpartition("/")
            if action not in ("response", "error") or not request_id or "/" in request_id:
                return _NOT_FOUND
            if method != "POST":
                return _NOT_ALLOWED
            request_id = unquote(request_id) if "%" in request_id else request_id
            if action == "response":
                return self.invocation_response(request, peer, request_id)
            return self.invocation_error(request, peer, request_id)
        if path == INIT_ERROR:
            return self.init_error(request, peer) if method == "POST" else _NOT_ALLOWED
        if path == PING:
            return _PONG if method == "GET" else _NOT_ALLOWED
        return _NOT_FOUND

    def next_invocation(self, peer: str) -> Reply | Pending:
        task = self._tasks.get(peer)
        if task is None:
            return _FORBIDDEN_REPLY
        if task.ready_at is None:
            self._hooks.on_first_next(task)
        invocation = task.current
        if invocation is not None:
            if invocation.delivered:
                return _BAD_STATE_REPLY  # `next` again without answering the current event
            return self._deliver(invocation)
        if task.next_waiter is not None and not task.next_waiter.done():
            return _BAD_STATE_REPLY  # one `next` at a time per task
        # Long poll: no server-side timeout, as Lambda.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task.next_waiter = waiter

        def resume() -> Reply:
            if task.next_waiter is waiter:
                task.next_waiter = None
            current = task.current
            if current is None or self._tasks.get(peer) is not task:
                return _STOPPING_REPLY
            if current.delivered:
                return _BAD_STATE_REPLY
            return self._deliver(current)

        def abandon() -> None:
            if task.next_waiter is waiter:
                task.next_waiter = None
            waiter.cancel()

        return Pending(waiter, resume, abandon)

    @staticmethod
    def _deliver(invocation: Invocation) -> Reply:
        invocation.delivered = True
        event = invocation.request
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", event.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", event.invoked_function_arn),
            ("Lambda-Runtime-Trace-Id", event.trace_id or ids.trace_id()),
        ]
        if event.client_context:
            headers.append(("Lambda-Runtime-Client-Context", event.client_context))
        return Reply(200, event.payload, tuple(headers))

    def _caller_of(self, peer: str, request_id: str) -> tuple[Task | None, Reply | None]:
        """The calling task if it may answer `request_id`, else the refusal."""
        task = self._tasks.get(peer)
        if task is None:
            return None, _FORBIDDEN_REPLY
        invocation = task.current
        if invocation is None or not invocation.delivered:
            return None, _BAD_STATE_REPLY  # nothing in flight for this task
        if request_id != invocation.request.request_id:
            return None, _BAD_ID_REPLY
        return task, None

    def invocation_response(self, request: Request, peer: str, request_id: str) -> Reply:
        task, refusal = self._caller_of(peer, request_id)
        if task is None or task.current is None:
            return refusal or _BAD_STATE_REPLY
        if request.oversize is not None:
            # The runtime is told and the caller gets Function.ResponseSizeTooLarge; the task is
            # replaced, as runtimes exit on a refused POST.
            task.complete(outcomes.response_too_large(task.current, request.oversize), unhealthy=True)
            return _TOO_LARGE_REPLY
        task.complete(outcomes.success(task.current, request.body))
        return _ACCEPTED_REPLY

    def invocation_error(self, request: Request, peer: str, request_id: str) -> Reply:
        task, refusal = self._caller_of(peer, request_id)
        if task is None or task.current is None:
            return refusal or _BAD_STATE_REPLY
        # An oversized error body: keep the type from the header.
        body = b"" if request.oversize is not None else request.body
        task.complete(outcomes.function_error(task.current, body, request.headers.get(ERROR_TYPE_HEADER)))
        return _ACCEPTED_REPLY

    def init_error(self, request: Request, peer: str) -> Reply:
        task = self._tasks.get(peer)
        if task is None:
            return _FORBIDDEN_REPLY
        body = b"" if request.oversize is not None else request.body
        if not self._hooks.on_init_error(task, body, request.headers.get(ERROR_TYPE_HEADER)):
            return _BAD_STATE_REPLY
        return _ACCEPTED_REPLY


class RuntimeApiServer:
    """Binds the Runtime API on one address; port 0 picks a free port (read it back from start())."""

    def __init__(self, api: RuntimeApi) -> None:
        # The largest body a runtime may post is Lambda's response limit; past it, 413.
        self._http = HttpServer(api, max_body=RESPONSE_PAYLOAD_LIMIT)

    async def start(self, host: str, port: int) -> int:
        return await self._http.start(host, port)

    @property
    def figures(self) -> HttpServer:
        """What the server holds and has refused, for the metrics (fnplat.metrics)."""
        return self._http

    async def close(self) -> None:
        await self._http.close()
