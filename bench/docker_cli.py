"""The few Docker CLI calls the bench makes (the bench is a client of Docker like any user)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

BENCH_LABEL = "fnplat.bench"  # every container the bench starts itself carries it (value: run id)


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout: float = 300.0, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:3])}... failed: {done.stderr.strip()}")
    return done.stdout.strip()


def image_label(image: str, label: str) -> str:
    return docker(
        "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', image, check=False
    )


def context_hash(directory: Path, base_image: str) -> str:
    """sha256 of the build context's relative paths and contents plus the base image id."""
    digest = hashlib.sha256(docker("image", "inspect", "--format", "{{.Id}}", base_image).encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_if_changed(directory: Path, tag: str, base_image: str) -> bool:
    """Build `tag` from `directory` unless its label says the inputs are unchanged; True if built."""
    want = context_hash(directory, base_image)
    if image_label(tag, "fnplat.inputs-sha256") == want:
        return False
    docker(
        "build", "--quiet", "--label", f"fnplat.inputs-sha256={want}", "-t", tag, str(directory), timeout=600
    )
    return True


def container_ip(container: str) -> str:
    ip = docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container)
    first = ip.split()
    if not first:
        raise DockerError(f"container {container} has no bridge address")
    return first[0]


def remove_labelled(label: str, value: str) -> None:
    ids = docker("ps", "-aq", "--filter", f"label={label}={value}", check=False).split()
    if ids:
        docker("rm", "-f", *ids, check=False, timeout=600)


def server_version() -> str:
    return docker("version", "--format", "{{.Server.Version}}", check=False) or "unknown"


def used_subnets() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    ids = docker("network", "ls", "-q").split()
    networks = json.loads(docker("network", "inspect", *ids)) if ids else []
    return [
        ipaddress.ip_network(config["Subnet"])
        for network in networks
        for config in (network.get("IPAM") or {}).get("Config") or []
        if config.get("Subnet")
    ]


def free_subnet(candidates: Sequence[str]) -> str:
    """The first candidate overlapping no Docker network. A network can outlive its run: Docker
    20.10 sometimes miscounts endpoints when many containers exit at once and then refuses to
    remove the network until dockerd restarts."""
    used = used_subnets()
    for candidate in candidates:
        net = ipaddress.ip_network(candidate)
        if not any(net.overlaps(other) for other in used):
            return candidate
    raise DockerError(f"no free subnet for the bench's task network among {', '.join(candidates)}")
