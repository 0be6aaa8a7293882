"""Resources of a process, started in order and closed in reverse, with every failure gathered.

A server role is a list of resources (the database engine, the Docker client, the recorder, the
Runtime API server, HTTP sites, background loops): each an async context manager. `ResourceStack`
enters them one by one; when one fails to start, the ones already started are closed in reverse
order, so a half-started process never leaks. On the way out every resource is closed even when
an earlier close failed, and all failures are raised together as one `ExceptionGroup`
(aiohttp's cleanup_ctx model: a failing close must not keep the others open).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class ResourceStack:
    """`async with ResourceStack("gateway") as stack: db = await stack.enter("store", open_store(...))`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._open: list[tuple[str, AbstractAsyncContextManager[Any]]] = []

    async def enter(self, name: str, resource: AbstractAsyncContextManager[T]) -> T:
        """Start `resource` and keep it open until the stack closes; returns what it yields."""
        value = await resource.__aenter__()
        self._open.append((name, resource))
        log.debug("%s: %s started", self.name, name)
        return value

    def callback(self, name: str, close: Callable[[], Awaitable[None] | None]) -> None:
        """Register a close function (plain or async) of something already started."""
        self._open.append((name, _Callback(close)))

    async def __aenter__(self) -> ResourceStack:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        failures: list[Exception] = []
        while self._open:
            name, resource = self._open.pop()
            try:
                await resource.__aexit__(exc_type, exc, tb)
            except Exception as failure:  # keep closing the others; report all at the end
                log.error("%s: closing %s failed: %s", self.name, name, failure, exc_info=failure)
                failure.add_note(f"while closing {name} of {self.name}")
                failures.append(failure)
        if failures:
            raise ExceptionGroup(f"{self.name}: {len(failures)} resource(s) failed to close", failures)


class _Callback:
    def __init__(self, close: Callable[[], Awaitable[None] | None]) -> None:
        self._close = close

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        result = self._close()
        if inspect.isawaitable(result):
            await result
