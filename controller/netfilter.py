"""The controller's firewall: installs, re-asserts and removes the iptables rules that confine its
tasks and image builds. The only module that runs iptables; the rules come from netfilter_rules.py.

Installed at controller start (before any task runs), re-asserted by `ensure()` (a dockerd
restart or a firewall reload may drop jumps or chains), removed at shutdown after the last task is
gone. A controller that cannot install them does not start: without them a task reaches every
service of the host, link-local addresses (cloud metadata) and private networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from fnplat.config import ControllerSettings, SandboxSettings
from fnplat.controller.addresses import isolated_range
from fnplat.controller.engine import NetworkInfo
from fnplat.controller.netfilter_rules import (
    Endpoint,
    Listing,
    NetworkPolicy,
    apply_script,
    database_target,
    instance_tag,
    parse_allowed_cidrs,
    parse_listing,
    removal_script,
    resolvers_from,
)
from fnplat.errors import ServiceError

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0
RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
_DISABLED_RISK = (
    "tasks and image builds can reach every service of this host, link-local addresses (cloud "
    "metadata), private networks and the metadata store"
)

CommandRunner = Callable[[Sequence[str], str | None], Awaitable[str]]  # (argv, stdin) -> stdout


class FirewallError(ServiceError):
    """The task firewall could not be installed, re-asserted or removed."""


class Firewall(Protocol):
    async def install(self, tasks: NetworkInfo, runtime_api_port: int, builds: NetworkInfo | None) -> None:
        """Confine the task network (and the build network): only the Runtime API on the host."""
        ...

    async def ensure(self) -> None:
        """Re-apply what install() applied (idempotent; after a dockerd restart, say)."""
        ...

    async def remove(self) -> None:
        """Remove every rule and chain of this controller instance."""
        ...


class DisabledFirewall:
    """FNPLAT_TASK_FIREWALL=false: no rules (unprivileged development set-ups only)."""

    async def install(self, tasks: NetworkInfo, runtime_api_port: int, builds: NetworkInfo | None) -> None:
        log.warning("FNPLAT_TASK_FIREWALL is off: %s", _DISABLED_RISK)

    async def ensure(self) -> None:
        return None

    async def remove(self) -> None:
        return None


async def run_command(argv: Sequence[str], stdin: str | None) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise FirewallError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT_S
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise FirewallError(f"{argv[0]} did not finish within {COMMAND_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        raise FirewallError(f"{' '.join(argv)} failed ({process.returncode}): {err.decode().strip()}")
    return out.decode()


class IptablesFirewall:
    def __init__(
        self,
        instance_id: str,
        settings: SandboxSettings,
        database_url: str | None,
        *,
        run: CommandRunner = run_command,
        is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
        which: Callable[[str], str | None] = shutil.which,
        resolv_confs: Sequence[Path] = RESOLV_CONFS,
    ) -> None:
        self._tag = instance_tag(instance_id)
        self._allow = parse_allowed_cidrs(settings.allow_cidrs)  # a bad CIDR fails here, at start
        self._database_url = database_url
        self._run = run
        self._is_root = is_root
        self._which = which
        self._resolv_confs = resolv_confs
        self._policies: tuple[NetworkPolicy, ...] | None = None
        self._lock = asyncio.Lock()

    async def install(self, tasks: NetworkInfo, runtime_api_port: int, builds: NetworkInfo | None) -> None:
        self._preflight()
        blocked = await self._metadata_store_endpoints()
        resolvers = await asyncio.to_thread(self._resolvers)
        policies = [
            NetworkPolicy(
                "T",
                tasks.subnet,
                tasks.gateway_ip,
                runtime_api_port,
                isolated_range(tasks.subnet),
                self._allow,
                blocked,
                resolvers,
            )
        ]
        if builds is not None:
            policies.append(
                NetworkPolicy(
                    "B", builds.subnet, builds.gateway_ip, None, None, self._allow, blocked, resolvers
                )
            )
        async with self._lock:
            self._policies = tuple(policies)
            await self._apply()
        log.info(
            "task firewall installed (chains FNPLAT-*-%s): tasks reach the Runtime API on %s:%d%s",
            self._tag,
            tasks.gateway_ip,
            runtime_api_port,
            f", allowed CIDRs {', '.join(self._allow)}" if self._allow else "",
        )

    async def ensure(self) -> None:
        async with self._lock:
            if self._policies is not None:
                await self._apply()

    async def remove(self) -> None:
        async with self._lock:
            if self._policies is None:
                return
            listing = await self._listing()
            script = removal_script(self._tag, listing)
            if script is not None:
                await self._run(["iptables-restore", "-w", "--noflush"], script)
            self._policies = None

    async def _apply(self) -> None:
        assert self._policies is not None
        listing = await self._listing()
        try:
            script = apply_script(self._policies, self._tag, listing)
        except ValueError as exc:
            raise FirewallError(f"cannot install the task firewall: {exc}") from None
        await self._run(["iptables-restore", "-w", "--noflush"], script)

    async def _listing(self) -> Listing:
        try:
            saved = await self._run(["iptables-save", "-t", "filter"], None)
        except FirewallError as exc:
            if self._is_root():
                raise
            # Not root: the platform image gives its iptables binary CAP_NET_ADMIN instead, which
            # works only when the container was granted it.
            raise FirewallError(
                "the task firewall needs root, or CAP_NET_ADMIN for iptables (the platform image: "
                f"docker run --cap-add NET_ADMIN), or FNPLAT_TASK_FIREWALL=false on an unprivileged "
                f"dev set-up, where {_DISABLED_RISK}; iptables said: {exc.message}"
            ) from None
        return parse_listing(saved, self._tag)

    def _preflight(self) -> None:
        missing = [tool for tool in ("iptables-save", "iptables-restore") if self._which(tool) is None]
        if missing:
            raise FirewallError(
                f"the task firewall needs {' and '.join(missing)} (Debian package iptables; "
                f"scripts/ensure-tools.sh installs it), or FNPLAT_TASK_FIREWALL=false on an "
                f"unprivileged dev set-up, where {_DISABLED_RISK}"
            )

    async def _metadata_store_endpoints(self) -> tuple[Endpoint, ...]:
        target = database_target(self._database_url) if self._database_url else None
        if target is None:
            return ()
        host, port = target
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=socket.AF_INET, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            # Private ranges stay blocked anyway; only an allowed or public address would be open.
            log.warning("cannot resolve the metadata store host %s to block it for tasks: %s", host, exc)
            return ()
        addresses = sorted({str(info[4][0]) for info in infos})
        # Loopback is the task's own: the host's loopback is unreachable from a container anyway.
        return tuple(Endpoint(a, port) for a in addresses if not ipaddress.ip_address(a).is_loopback)

    def _resolvers(self) -> tuple[str, ...]:
        # Docker reads the host's resolv.conf, or systemd-resolved's upstream list when the host's
        # only names the local stub (127.0.0.53).
        for path in self._resolv_confs:
            try:
                found = resolvers_from(path.read_text())
            except OSError:
                continue
            if found:
                return found
        return ()


def firewall_for(settings: ControllerSettings, database_url: str | None) -> Firewall:
    """The firewall the settings ask for: iptables rules, or none (FNPLAT_TASK_FIREWALL=false)."""
    if not settings.sandbox.firewall:
        return DisabledFirewall()
    return IptablesFirewall(settings.instance_id, settings.sandbox, database_url)
