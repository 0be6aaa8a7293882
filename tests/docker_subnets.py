"""Free subnets for the task networks tests create (importable from every test directory).

A test network can outlive its run: Docker 20.10 sometimes miscounts a network's endpoints when
many of its containers exit at once, and then refuses to remove it until dockerd restarts. So
tests pick the first candidate that no existing network overlaps, instead of a fixed subnet.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges per suite, apart from each other and from the platform's default (172.31.252.0/22)
# and the bench's (172.31.192.0/19).
ENGINE_SUBNETS = tuple(ipaddress.ip_network("172.31.240.0/21").subnets(new_prefix=24))
# /24s (253 task addresses, enough for any test platform): several suites run at once on one
# engine, each holding a platform or two, and four /22s ran out.
E2E_SUBNETS = tuple(ipaddress.ip_network("172.31.224.0/20").subnets(new_prefix=24))


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
    """`count` candidates that overlap no Docker network; RuntimeError when there are not enough."""
    used = used_subnets()
    free = [str(net) for net in candidates if not any(net.overlaps(other) for other in used)]
    if len(free) < count:
        raise RuntimeError(
            f"need {count} free test subnet(s) among {len(candidates)} candidates; networks in use: "
            f"{', '.join(map(str, used))} (a leaked network goes when dockerd restarts)"
        )
    return free[:count]
