"""ResourceStack: resources start in order, close in reverse, and a failure never leaks the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from fnplat.roles.resources import ResourceStack


def tracked(log: list[str], name: str, *, fail_start: bool = False, fail_close: bool = False):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        if fail_start:
            raise RuntimeError(f"{name} cannot start")
        log.append(f"start {name}")
        try:
            yield name
        finally:
            log.append(f"close {name}")
            if fail_close:
                raise RuntimeError(f"{name} cannot close")

    return resource()


async def test_resources_close_in_reverse_order() -> None:
    log: list[str] = []
    async with ResourceStack("test") as stack:
        assert await stack.enter("a", tracked(log, "a")) == "a"
        await stack.enter("b", tracked(log, "b"))
        stack.callback("c", lambda: log.append("close c"))
    assert log == ["start a", "start b", "close c", "close b", "close a"]


async def test_a_resource_that_fails_to_start_closes_the_ones_before_it() -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with ResourceStack("test") as stack:
            await stack.enter("a", tracked(log, "a"))
            await stack.enter("b", tracked(log, "b", fail_start=True))
            await stack.enter("c", tracked(log, "c"))
    assert log == ["start a", "close a"]


async def test_every_resource_is_closed_and_all_close_failures_are_reported() -> None:
    log: list[str] = []
    with pytest.raises(ExceptionGroup) as raised:
        async with ResourceStack("test") as stack:
            await stack.enter("a", tracked(log, "a", fail_close=True))
            await stack.enter("b", tracked(log, "b"))
            await stack.enter("c", tracked(log, "c", fail_close=True))
    assert log == ["start a", "start b", "start c", "close c", "close b", "close a"]
    messages = sorted(str(e) for e in raised.value.exceptions)
    assert messages == ["a cannot close", "c cannot close"]


async def test_async_callbacks_are_awaited() -> None:
    log: list[str] = []

    async def close() -> None:
        log.append("closed")

    async with ResourceStack("test") as stack:
        stack.callback("x", close)
    assert log == ["closed"]
