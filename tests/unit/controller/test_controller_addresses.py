"""Task address allocation: skips reserved addresses, round robin, exhaustion, the isolated part
for `network: none` tasks, bad input."""

from __future__ import annotations

import ipaddress

import pytest

from fnplat.controller.addresses import AddressAllocator, AddressesExhausted, isolated_range

# 10.0.0.0/28: default part .1-.11 (gateway .1), isolated part (last quarter) .12-.14, broadcast .15.
SUBNET = "10.0.0.0/28"


def test_skips_network_gateway_and_broadcast() -> None:
    allocator = AddressAllocator(SUBNET, "10.0.0.1")
    got = [allocator.allocate() for _ in range(10)]
    assert got == [f"10.0.0.{n}" for n in range(2, 12)]
    with pytest.raises(AddressesExhausted, match="the task network"):
        allocator.allocate()
    isolated = [allocator.allocate(isolated=True) for _ in range(3)]
    assert isolated == ["10.0.0.12", "10.0.0.13", "10.0.0.14"]  # never .15, the broadcast address
    with pytest.raises(AddressesExhausted, match="isolated part"):
        allocator.allocate(isolated=True)


def test_gateway_in_the_middle_is_skipped() -> None:
    allocator = AddressAllocator(SUBNET, "10.0.0.3")
    assert [allocator.allocate() for _ in range(4)] == ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"]


def test_isolated_tasks_get_addresses_only_from_the_isolated_range() -> None:
    subnet = "172.31.252.0/22"
    allocator = AddressAllocator(subnet, "172.31.252.1")
    isolated = ipaddress.ip_network(isolated_range(subnet))
    assert str(isolated) == "172.31.255.0/24"
    taken = [ipaddress.ip_address(allocator.allocate(isolated=True)) for _ in range(254)]
    assert all(address in isolated for address in taken)
    others = [ipaddress.ip_address(allocator.allocate()) for _ in range(766)]
    assert not any(address in isolated for address in others)
    assert allocator.in_use == 254 + 766


def test_a_released_address_is_not_reused_at_once() -> None:
    allocator = AddressAllocator(SUBNET, "10.0.0.1")
    first = allocator.allocate()
    allocator.release(first)
    fresh = [allocator.allocate() for _ in range(9)]  # fresh addresses go first
    assert first not in fresh
    assert allocator.allocate() == first  # only when nothing fresh is left
    assert allocator.in_use == 10


def test_released_addresses_come_back_oldest_first_to_their_own_part() -> None:
    allocator = AddressAllocator(SUBNET, "10.0.0.1")
    addresses = [allocator.allocate() for _ in range(10)]
    isolated = [allocator.allocate(isolated=True) for _ in range(3)]
    allocator.release(addresses[3])
    allocator.release(isolated[1])
    allocator.release(addresses[1])
    assert [allocator.allocate(), allocator.allocate()] == [addresses[3], addresses[1]]
    assert allocator.allocate(isolated=True) == isolated[1]


def test_bad_input() -> None:
    allocator = AddressAllocator(SUBNET, "10.0.0.1")
    with pytest.raises(ValueError, match="not allocated"):
        allocator.release("10.0.0.2")
    with pytest.raises(ValueError, match="not in"):
        AddressAllocator(SUBNET, "10.0.1.1")
    with pytest.raises(ValueError, match="too small"):
        AddressAllocator("10.0.0.0/29", "10.0.0.1")
    with pytest.raises(ValueError):
        AddressAllocator("not-a-subnet", "10.0.0.1")
