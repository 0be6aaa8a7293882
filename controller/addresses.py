"""Task addresses on the isolated task network.

Every task gets its own fixed address: the Runtime API identifies the caller by source IP, so an
address must not be handed to a new task the moment an old one released it (a late request from
the dying container would be taken for the newcomer's). Fresh addresses are used first, then
released ones oldest first (round robin).
"""

from __future__ import annotations

import ipaddress
from collections import deque

from fnplat.errors import ServiceError


class AddressesExhausted(ServiceError):
    """Every address of the task subnet is in use."""


class AddressAllocator:
    def __init__(self, subnet: str, gateway_ip: str) -> None:
        network = ipaddress.IPv4Network(subnet, strict=False)
        if network.num_addresses < 4:
            raise ValueError(f"task subnet {subnet} is too small")
        self._gateway = int(ipaddress.IPv4Address(gateway_ip))
        if self._gateway not in range(int(network.network_address), int(network.broadcast_address) + 1):
            raise ValueError(f"gateway {gateway_ip} is not in {subnet}")
        self._next_fresh = int(network.network_address) + 1  # skip the network address
        self._last = int(network.broadcast_address) - 1  # skip the broadcast address
        self._released: deque[int] = deque()
        self._in_use: set[int] = set()

    def allocate(self) -> str:
        address = self._take_fresh()
        if address is None:
            if not self._released:
                raise AddressesExhausted("no free address on the task network")
            address = self._released.popleft()
        self._in_use.add(address)
        return str(ipaddress.IPv4Address(address))

    def release(self, ip: str) -> None:
        address = int(ipaddress.IPv4Address(ip))
        if address not in self._in_use:
            raise ValueError(f"{ip} is not allocated")
        self._in_use.remove(address)
        self._released.append(address)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def _take_fresh(self) -> int | None:
        if self._next_fresh == self._gateway:
            self._next_fresh += 1
        if self._next_fresh > self._last:
            return None
        address = self._next_fresh
        self._next_fresh += 1
        return address
