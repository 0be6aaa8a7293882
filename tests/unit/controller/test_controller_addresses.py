"""Task address allocation: skips reserved addresses, round robin, exhaustion, bad input."""

from __future__ import annotations

import pytest

from fnplat.controller.addresses import AddressAllocator, AddressesExhausted


def test_skips_network_gateway_and_broadcast() -> None:
    allocator = AddressAllocator("10.0.0.0/29", "10.0.0.1")  # hosts .1-.6, gateway .1
    got = [allocator.allocate() for _ in range(5)]
    assert got == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(AddressesExhausted):
        allocator.allocate()


def test_gateway_in_the_middle_is_skipped() -> None:
    allocator = AddressAllocator("10.0.0.0/29", "10.0.0.3")
    assert [allocator.allocate() for _ in range(5)] == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.4",
        "10.0.0.5",
        "10.0.0.6",
    ]


def test_a_released_address_is_not_reused_at_once() -> None:
    allocator = AddressAllocator("10.0.0.0/29", "10.0.0.1")
    first = allocator.allocate()
    allocator.release(first)
    fresh = [allocator.allocate() for _ in range(4)]  # fresh addresses go first
    assert first not in fresh
    assert allocator.allocate() == first  # only when nothing fresh is left
    assert allocator.in_use == 5


def test_released_addresses_come_back_oldest_first() -> None:
    allocator = AddressAllocator("10.0.0.0/29", "10.0.0.1")
    addresses = [allocator.allocate() for _ in range(5)]
    allocator.release(addresses[3])
    allocator.release(addresses[1])
    assert [allocator.allocate(), allocator.allocate()] == [addresses[3], addresses[1]]


def test_bad_input() -> None:
    allocator = AddressAllocator("10.0.0.0/29", "10.0.0.1")
    with pytest.raises(ValueError, match="not allocated"):
        allocator.release("10.0.0.2")
    with pytest.raises(ValueError, match="not in"):
        AddressAllocator("10.0.0.0/29", "10.0.1.1")
    with pytest.raises(ValueError, match="too small"):
        AddressAllocator("10.0.0.0/31", "10.0.0.0")
    with pytest.raises(ValueError):
        AddressAllocator("not-a-subnet", "10.0.0.1")
