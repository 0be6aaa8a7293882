"""How the one-host server stops: within one bound, FNPLAT_SHUTDOWN_TIMEOUT, from SIGTERM to exit.

1. The gateway stops accepting connections at once; an invocation arriving on a connection that
   is already open gets 503 (ServiceUnavailable, Retry-After).
2. Requests in flight drain for up to two thirds of the bound. Invocations still running a second
   before the end of the drain are ended: their tasks are stopped and their callers get 503 rather
   than a dropped connection; any other request still running at the end is cancelled.
3. Tasks stop (their containers are killed, one at a time: see DockerEngine.kill) for up to the
   rest of the bound less a second kept for closing the recorder and the store. A container still
   there after that is removed by its labels when the platform starts again.
4. The process exits. A watchdog thread ends it at the bound whatever hangs (a stuck store, a
   worker thread blocked in a driver).

`fnctl down` waits the bound plus DOWN_MARGIN_S for the process to be gone; a container runtime
stopping the platform's image should wait as long (`docker run --stop-timeout`): 35 s by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # `fnctl down` imports this module; aiohttp is for the server only
    from aiohttp import web

log = logging.getLogger(__name__)

DRAIN_SHARE = 2 / 3
CLOSE_RESERVE_S = 1.0  # kept at the end of the bound for the recorder, the store and the exit
ANSWER_GRACE_S = 1.0  # ended invocations write their 503 within this, before aiohttp cancels
DOWN_MARGIN_S = 5.0  # fnctl down (and a container runtime) waits this much past the bound
WATCHDOG_EXIT_CODE = 70  # EX_SOFTWARE: the shutdown did not finish within its bound


@dataclass(frozen=True, slots=True)
class ShutdownBudget:
    total_s: float  # SIGTERM to exit
    drain_s: float  # requests in flight finish
    stop_tasks_s: float  # containers are killed

    @classmethod
    def of(cls, total_s: float) -> ShutdownBudget:
        total = max(total_s, 0.0)
        drain = total * DRAIN_SHARE
        return cls(total, drain, max(total - drain - CLOSE_RESERVE_S, 0.0))


def down_wait_s(total_s: float) -> float:
    """How long `fnctl down` waits for a server whose bound is `total_s`."""
    return max(total_s, 0.0) + DOWN_MARGIN_S


class Drainable(Protocol):
    def begin_drain(self) -> None:
        """Refuse new invocations (503) from now on."""
        ...

    def end_in_flight(self) -> int:
        """End the invocations still running (their callers get 503); how many there were."""
        ...


async def stop_gateway(runner: web.AppRunner, controller: Drainable, drain_s: float) -> None:
    """Steps 1 and 2. The runner must have been made with shutdown_timeout=drain_s."""
    controller.begin_drain()
    # Stops listening at once, closes idle keep-alive connections, waits up to drain_s for
    # handlers, then cancels what is left.
    cleanup = asyncio.ensure_future(runner.cleanup())
    done, _ = await asyncio.wait({cleanup}, timeout=max(drain_s - ANSWER_GRACE_S, 0.0))
    if not done:
        ended = controller.end_in_flight()
        if ended:
            log.warning("ended %d invocations still running after the %.0f s drain", ended, drain_s)
    await cleanup


class ExitWatchdog:
    """Ends the process `bound_s` after start() unless it has exited by then."""

    def __init__(self, bound_s: float) -> None:
        self._bound_s = bound_s

    def start(self) -> None:
        threading.Thread(target=self._run, name="fnplat-exit-watchdog", daemon=True).start()

    def _run(self) -> None:
        time.sleep(self._bound_s)  # a daemon thread: it dies with the process if that exits first
        log.error(
            "shutting down took longer than %.0f s (FNPLAT_SHUTDOWN_TIMEOUT): exiting now", self._bound_s
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
                stream.flush()
        os._exit(WATCHDOG_EXIT_CODE)
