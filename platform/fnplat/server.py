"""Running a role in the foreground: logging, uvloop, the open-files limit, signals, the exit
watchdog. What each role starts is in `fnplat.roles`.

`serve(settings)` is `fnctl up` (gateway and controller in one process); `serve_role(role,
settings)` is `fnctl server gateway|controller|migrate`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fnplat.config import Settings
from fnplat.gateway.open_files import raise_open_files_limit
from fnplat.roles.one_host import running_platform
from fnplat.shutdown import ExitWatchdog

log = logging.getLogger("fnplat")

__all__ = ["running_platform", "serve", "serve_role"]

RoleFactory = Callable[[Settings], AbstractAsyncContextManager[str]]


def serve(settings: Settings) -> None:
    """`fnctl up`: run the one-host platform until SIGINT/SIGTERM."""
    _run(settings, running_platform, f"fnplat is up at {{}} (data dir {settings.data_dir}); Ctrl-C stops it")


def serve_role(role: str, settings: Settings) -> None:
    """`fnctl server ROLE`: run a cluster role until SIGINT/SIGTERM (migrate runs once and returns)."""
    from fnplat.roles import controller, gateway, migrate

    if role == "migrate":
        _setup_logging()
        asyncio.run(migrate.run(settings))
        return
    factories: dict[str, RoleFactory] = {
        "gateway": gateway.running_gateway,
        "controller": controller.running_controller_node,
    }
    _run(settings, factories[role], f"fnplat {role} is up at {{}}; SIGTERM stops it")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run(settings: Settings, factory: RoleFactory, ready_line: str) -> None:
    _setup_logging()
    soft, hard = raise_open_files_limit()
    log.info("open files limit: %d (hard limit %d)", soft, hard)
    try:
        import uvloop

        uvloop.install()
    except (
        ImportError
    ):  # pragma: no cover - uvloop is a declared dependency; this keeps odd platforms working
        pass
    asyncio.run(_main(settings, factory, ready_line))


async def _main(settings: Settings, factory: RoleFactory, ready_line: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with factory(settings) as address:
        print(ready_line.format(address), flush=True)
        await stop.wait()
        ExitWatchdog(settings.shutdown.timeout_s).start()  # the process is gone by then, whatever hangs
        print("fnplat is stopping", flush=True)
    print("fnplat stopped", flush=True)
