"""Stand-ins for what a task must not reach, all on this machine, removed afterwards.

- `host_addresses`: addresses added to the host's `lo` (packets to them take the INPUT path,
  like any service of the host), each with a listener the caller starts.
- `Elsewhere`: a network namespace behind a veth pair, with host routes (/32) to its addresses,
  so packets to them are forwarded as to another machine (the FORWARD path, like the internet,
  cloud metadata or a private network), and a process in it that listens or forwards.

Every route is checked to leave through the veth before anything is sent: test traffic never
leaves this machine. Only what was added here is removed (an address already present fails the
test instead of being taken over).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HELPER = Path(__file__).parent / "netns_stand_ins.py"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests add addresses, routes and a network namespace: run them as root")


@contextlib.contextmanager
def host_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """Add /32 addresses to `lo` for the duration."""
    need_root()
    added: list[str] = []
    try:
        for address in addresses:
            ip("addr", "add", f"{address}/32", "dev", "lo")
            added.append(address)
        yield
    finally:
        for address in added:
            ip("addr", "del", f"{address}/32", "dev", "lo", check=False)


@contextlib.contextmanager
def listeners(addresses: Sequence[str]) -> Iterator[dict[str, int]]:
    """A listening TCP socket on each address (any free port); the kernel completes handshakes
    up to the backlog, which is all a connect() probe needs."""
    sockets: dict[str, socket.socket] = {}
    try:
        for address in addresses:
            sockets[address] = socket.create_server((address, 0), backlog=64)
        yield {address: sock.getsockname()[1] for address, sock in sockets.items()}
    finally:
        for sock in sockets.values():
            sock.close()


@dataclass
class Elsewhere:
    """A namespace with `addresses`, reached from the host through `link` (a /30)."""

    addresses: Sequence[str]
    link: str = "10.254.70.0/30"
    name: str = field(default_factory=lambda: f"fnplat-t-{uuid.uuid4().hex[:6]}")

    @property
    def host_side(self) -> str:
        return f"fnt{self.name[-6:]}h"

    @property
    def ns_side(self) -> str:
        return f"fnt{self.name[-6:]}n"

    @contextlib.contextmanager
    def running(self, listen: Sequence[str], proxy: Sequence[str] = ()) -> Iterator[None]:
        """Set the namespace up, start its listeners ("addr:port") and forwarders
        ("addr:port=target:port"), and tear everything down afterwards."""
        need_root()
        network = ipaddress.ip_network(self.link)
        host_ip, ns_ip = (str(a) for a in list(network.hosts())[:2])
        process: subprocess.Popen[str] | None = None
        ip("netns", "add", self.name)
        try:
            ip("link", "add", self.host_side, "type", "veth", "peer", "name", self.ns_side)
            ip("link", "set", self.ns_side, "netns", self.name)
            ip("addr", "add", f"{host_ip}/{network.prefixlen}", "dev", self.host_side)
            ip("link", "set", self.host_side, "up")
            ip("-n", self.name, "addr", "add", f"{ns_ip}/{network.prefixlen}", "dev", self.ns_side)
            ip("-n", self.name, "link", "set", self.ns_side, "up")
            ip("-n", self.name, "link", "set", "lo", "up")
            ip("-n", self.name, "route", "add", "default", "via", host_ip)
            for address in self.addresses:
                ip("-n", self.name, "addr", "add", f"{address}/32", "dev", "lo")
                ip("route", "add", f"{address}/32", "via", ns_ip, "dev", self.host_side)
                route = ip("route", "get", address).stdout
                assert f"dev {self.host_side}" in route, f"{address} would not stay on this machine: {route}"
            command = [sys.executable, str(HELPER)]
            command += [f"--listen={a}" for a in listen] + [f"--proxy={p}" for p in proxy]
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            _wait_for_ready(process)
            yield
        finally:
            if process is not None:
                process.kill()
                process.wait(timeout=30)
            # The veth pair and the routes through it go with the namespace.
            ip("netns", "del", self.name, check=False)
            ip("link", "del", self.host_side, check=False)


def _wait_for_ready(process: subprocess.Popen[str], within_s: float = 30.0) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + within_s
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.strip() == "ready":
                return
            if not line and process.poll() is not None:
                break
            seen.append(line)
    raise AssertionError("the stand-ins in the namespace did not start:\n" + "".join(seen))
