"""Free subnets for the task networks tests create (importable from every test directory).

A test network can outlive its run: Docker 20.10 sometimes miscounts a network's endpoints when
many of its containers exit at once, and then refuses to remove it until dockerd restarts. So
tests pick the first candidate that no existing network overlaps, instead of a fixed subnet.

Several test runs may share one Docker engine (developers' worktrees side by side): a subnet
picked is also claimed with an advisory file lock until it is released (or the process exits),
so two runs never pick the same one between the check and the network's creation.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges per suite, apart from each other and from the platform's default (172.31.252.0/22)
# and the bench's (172.31.192.0/19).
ENGINE_SUBNETS = tuple(ipaddress.ip_network("172.31.240.0/21").subnets(new_prefix=24))
E2E_SUBNETS = tuple(ipaddress.ip_network("172.30.0.0/16").subnets(new_prefix=22))

_CLAIMS_DIR = Path(tempfile.gettempdir()) / "fnplat-test-subnets"
_claimed: dict[str, int] = {}  # subnet -> fd of its lock file, held while claimed


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def used_subnets() -> list[Subnet]:
    # Other suites create and remove networks concurrently: one listed may be gone when inspected.
    for attempt in range(5):
        ids = _docker("network", "ls", "-q").split()
        try:
            networks = json.loads(_docker("network", "inspect", *ids)) if ids else []
            break
        except RuntimeError as exc:
            if "not found" not in str(exc) or attempt == 4:
                raise
    return [
        ipaddress.ip_network(config["Subnet"])
        for network in networks
        for config in (network.get("IPAM") or {}).get("Config") or []
        if config.get("Subnet")
    ]


def free_subnets(candidates: Sequence[Subnet], count: int = 1) -> list[str]:
    """`count` candidates that overlap no Docker network and no other run's claim, claimed for
    this process until `release_subnets`; RuntimeError when there are not enough."""
    used = used_subnets()
    chosen: list[str] = []
    for net in candidates:
        if len(chosen) == count:
            break
        if any(net.overlaps(other) for other in used) or not _claim(str(net)):
            continue
        chosen.append(str(net))
    if len(chosen) < count:
        release_subnets(*chosen)
        raise RuntimeError(
            f"need {count} free test subnet(s) among {len(candidates)} candidates; networks in use: "
            f"{', '.join(map(str, used))} (a leaked network goes when dockerd restarts)"
        )
    return chosen


def release_subnets(*subnets: str) -> None:
    """Give back subnets claimed by `free_subnets` (their networks are gone or about to be)."""
    for subnet in subnets:
        fd = _claimed.pop(subnet, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


def _claim(subnet: str) -> bool:
    if subnet in _claimed:
        return False  # this process uses it already
    _CLAIMS_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(_CLAIMS_DIR / (subnet.replace("/", "_") + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _claimed[subnet] = fd
    return True
