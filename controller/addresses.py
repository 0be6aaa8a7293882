"""Task addresses on the isolated task network.

Every task gets its own fixed address: the Runtime API identifies the caller by source IP, so an
address must not be handed to a new task the moment an old one released it (a late request from
the dying container would be taken for the newcomer's). Fresh addresses are used first, then
released ones oldest first (round robin).

The subnet has two parts: the last quarter holds the tasks of `network: none` functions, so one
static firewall rule (netfilter_rules.py) refuses them every destination but the Runtime API,
whatever address a task gets; the rest holds every other task.
"""

from __future__ import annotations

import ipaddress
from collections import deque

from fnplat.errors import ServiceError

MIN_PREFIX = 28  # a quarter of a /28 still has 4 addresses


class AddressesExhausted(ServiceError):
    """Every address of the task subnet (or of its isolated part) is in use."""


def isolated_range(subnet: str) -> str:
    """The part of the task subnet where `network: none` tasks live: its last quarter."""
    network = ipaddress.IPv4Network(subnet, strict=False)
    if network.prefixlen > MIN_PREFIX:
        raise ValueError(f"task subnet {subnet} is too small (at most /{MIN_PREFIX})")
    return str(list(network.subnets(prefixlen_diff=2))[-1])


class _Range:
    """One contiguous run of addresses, handed out fresh first, then released ones oldest first."""

    def __init__(self, first: int, last: int, skip: int) -> None:
        self._next_fresh = first
        self._last = last
        self._skip = skip  # the gateway: never a task's
        self._released: deque[int] = deque()

    def take(self) -> int | None:
        if self._next_fresh == self._skip:
            self._next_fresh += 1
        if self._next_fresh <= self._last:
            address = self._next_fresh
            self._next_fresh += 1
            return address
        return self._released.popleft() if self._released else None

    def give_back(self, address: int) -> None:
        self._released.append(address)


class AddressAllocator:
    def __init__(self, subnet: str, gateway_ip: str) -> None:
        network = ipaddress.IPv4Network(subnet, strict=False)
        if network.prefixlen > MIN_PREFIX:
            raise ValueError(f"task subnet {subnet} is too small (at most /{MIN_PREFIX})")
        gateway = int(ipaddress.IPv4Address(gateway_ip))
        if gateway not in range(int(network.network_address), int(network.broadcast_address) + 1):
            raise ValueError(f"gateway {gateway_ip} is not in {subnet}")
        isolated = ipaddress.IPv4Network(isolated_range(subnet))
        self._isolated_first = int(isolated.network_address)
        # Neither the network nor the broadcast address is ever a task's.
        self._default = _Range(int(network.network_address) + 1, self._isolated_first - 1, gateway)
        self._isolated = _Range(self._isolated_first, int(network.broadcast_address) - 1, gateway)
        self._in_use: set[int] = set()

    def allocate(self, isolated: bool = False) -> str:
        """A free address: in the isolated part for a `network: none` task."""
        address = (self._isolated if isolated else self._default).take()
        if address is None:
            part = "the isolated part of the task network" if isolated else "the task network"
            raise AddressesExhausted(f"no free address on {part}")
        self._in_use.add(address)
        return str(ipaddress.IPv4Address(address))

    def release(self, ip: str) -> None:
        address = int(ipaddress.IPv4Address(ip))
        if address not in self._in_use:
            raise ValueError(f"{ip} is not allocated")
        self._in_use.remove(address)
        (self._isolated if address >= self._isolated_first else self._default).give_back(address)

    @property
    def in_use(self) -> int:
        return len(self._in_use)
