"""Fixtures of the controller unit tests (the helpers live in controller_harness.py).

Every test here runs on asyncio's own loop and on uvloop, which `fnctl up` runs on: the Runtime
API's protocol code meets both kinds of transport.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
import uvloop
from controller_harness import harness

__all__ = ["harness"]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
