"""The gateway's `Invoker` in a cluster: each invocation goes to its home controller (rendezvous
hashing over the live nodes, fnplat.cluster.placement), and on to the next ones in the function's
own order when a node is full or cannot be reached (bounded tries), as OpenWhisk's sharding
balancer does.

Failure semantics:
- a node that refuses the connection never got the invocation: the next node gets it, and the
  node is routed around at once (until it beats again);
- a node that goes away after the invocation was sent (connection reset, cut short): the caller
  gets 502 NodeLost naming the node; the invocation may or may not have run, so it is not retried;
- no live node: 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from types import TracebackType

import aiohttp

from fnplat.cluster import wire
from fnplat.cluster.members import MembershipView
from fnplat.config import Settings
from fnplat.errors import (
    BadRequest,
    EngineError,
    FnplatError,
    InvalidParameter,
    NodeLost,
    NotFound,
    RequestTooLarge,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
)
from fnplat.invocation import InvocationRequest, InvocationResult

log = logging.getLogger(__name__)

# Beyond the function's own timeout: the controller's bounded wait for a task, a cold start.
CALL_MARGIN_S = 30.0
CONNECT_TIMEOUT_S = 3.0
NO_NODE_RETRY_AFTER_S = 5

_BY_NAME: dict[str, type[FnplatError]] = {
    cls.__name__: cls
    for cls in (BadRequest, EngineError, InvalidParameter, NotFound, RequestTooLarge, ServiceError)
}


class RemoteInvoker:
    def __init__(self, members: MembershipView, settings: Settings) -> None:
        self._members = members
        self._settings = settings
        self._secret = settings.cluster.secret or ""
        self._tries = settings.cluster.placement_tries
        self._session: aiohttp.ClientSession | None = None
        self._draining = False
        self._in_flight: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> RemoteInvoker:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": f"Bearer {self._secret}"},
            skip_auto_headers=("User-Agent",),
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- Invoker ------------------------------------------------------------------------------
    async def invoke(self, request: InvocationRequest) -> InvocationResult:
        if self._draining:
            raise ServiceUnavailable("the gateway is shutting down; retry", retry_after_s=1)
        session = self._require_session()
        candidates = self._members.placement.candidates(request.function.key, self._tries)
        if not candidates:
            raise ServiceUnavailable(
                "no controller is available to run functions right now; retry shortly",
                retry_after_s=NO_NODE_RETRY_AFTER_S,
            )
        headers = wire.request_headers(request)
        timeout = aiohttp.ClientTimeout(
            total=request.function.timeout + CALL_MARGIN_S, sock_connect=CONNECT_TIMEOUT_S
        )
        refused: FnplatError | None = None
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            for node_id in candidates:
                node = self._members.node(node_id)
                if node is None:
                    continue
                try:
                    return await self._call(session, node.address, node_id, request.payload, headers, timeout)
                except _TryNext as next_node:
                    refused = next_node.error
            raise refused or ServiceUnavailable(
                "no controller could take the invocation; retry shortly", retry_after_s=NO_NODE_RETRY_AFTER_S
            )
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def retire(self, function_name: str, keep_version: int | None = None) -> None:
        """Controllers retire old versions' tasks themselves when they learn of a deploy."""

    # ---- draining (fnplat.shutdown.Drainable) --------------------------------------------------
    def begin_drain(self) -> None:
        self._draining = True

    def end_in_flight(self) -> int:
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        return len(tasks)

    # ---- the tasks of every node -------------------------------------------------------------------
    async def list_tasks(self) -> list[Mapping[str, object]]:
        session = self._require_session()
        nodes = self._members.routable()

        async def one(address: str) -> list[Mapping[str, object]]:
            try:
                async with session.get(
                    address + wire.TASKS_PATH, timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    body = await resp.json()
                    node = body.get("node")
                    return [{**t, "node": node} for t in body.get("tasks", [])]
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("listing the tasks of %s failed: %s", address, exc)
                return []

        listings = await asyncio.gather(*(one(n.address) for n in nodes))
        return [task for listing in listings for task in listing]

    # ---- one node -----------------------------------------------------------------------------
    async def _call(
        self,
        session: aiohttp.ClientSession,
        address: str,
        node_id: str,
        payload: bytes,
        headers: Mapping[str, str],
        client_timeout: aiohttp.ClientTimeout,
    ) -> InvocationResult:
        try:
            async with session.post(
                address + wire.INVOKE_PATH, data=payload, headers=headers, timeout=client_timeout
            ) as resp:
                body = await resp.read()
                if resp.status == 200:
                    return wire.parse_result(resp.headers, body)
                raise self._refusal(resp.status, resp.headers, body, node_id)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Never connected: the invocation was not handed over, so another node may take it.
            self._members.mark_unreachable(node_id)
            raise _TryNext(
                ServiceUnavailable(f"controller {node_id} is unreachable", retry_after_s=1)
            ) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            self._members.mark_unreachable(node_id)
            raise NodeLost(
                f"the controller running this invocation (node {node_id}) went away before it answered;"
                " the invocation may or may not have run"
            ) from exc
        except TimeoutError as exc:
            raise NodeLost(
                f"the controller running this invocation (node {node_id}) did not answer in time"
            ) from exc

    @staticmethod
    def _refusal(status: int, headers: Mapping[str, str], body: bytes, node_id: str) -> Exception:
        message = _message(body)
        kind = headers.get(wire.H_ERROR_KIND, "")
        if status == 429:
            error = TooManyRequests(
                message, headers.get("fnplat-reason", "ConcurrentInvocationLimitExceeded")
            )
            return _TryNext(error) if headers.get(wire.H_THROTTLE) == "node" else error
        if status == 503:  # draining or not started: not handed to a task
            return _TryNext(ServiceUnavailable(message, retry_after_s=1))
        if status == 401:
            return ServiceError(f"controller {node_id} refused this gateway's cluster secret")
        cls = _BY_NAME.get(kind)
        if cls is not None:
            return cls(message)
        return ServiceError(f"controller {node_id} answered {status}: {message}")

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise ServiceError("the gateway's invoker is not started")
        return self._session


class _TryNext(Exception):
    """This node did not take the invocation; the next candidate may."""

    def __init__(self, error: FnplatError) -> None:
        super().__init__(error.message)
        self.error = error


def _message(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    return str(value.get("message", "")) if isinstance(value, dict) else str(value)
