"""What to ask Docker for, and what its answers mean: the Docker engine's pure decisions.

No I/O and no docker SDK here (docker_engine.py is the only module that imports it): the
values built below are plain data that docker_engine.py hands to the SDK, so each decision is
unit-tested without Docker.
"""

from __future__ import annotations

import collections
import ipaddress
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fnplat.controller.engine import (
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_TASK,
    ContainerState,
    NetworkInfo,
    TaskDefinition,
)
from fnplat.errors import EngineError

ICC_OPTION = "com.docker.network.bridge.enable_icc"
LOG_MAX_SIZE = "1m"  # the controller reads lines as they come; the file is only a buffer
BUILD_TIMEOUT_S = 1800  # seconds without build output before we give up (apt steps are slow)
BUILD_LOG_TAIL = 20
CGROUP_ROOT = Path("/sys/fs/cgroup")
_FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# CFS period of tasks' CPU limits. Docker's default (100 ms) lets a 0.25-vCPU task that used its
# 25 ms stall for up to 75 ms; 20 ms bounds that stall to 15 ms. The kernel wants quotas of at
# least 1 ms, so the smallest limit is 0.05 vCPU.
CPU_PERIOD_US = 20_000
MIN_CPU_QUOTA_US = 1_000


def image_hint(image: str) -> str:
    """What a person should do about a missing image."""
    if image.startswith("fnplat/"):
        return "run scripts/build-images.sh"
    return "build or load it on this host first (no registry is used)"


# ---- the task network -----------------------------------------------------------------------


def gateway_of(subnet: str) -> str:
    return str(next(ipaddress.ip_network(subnet).hosts()))


def check_existing_network(name: str, subnet: str, attrs: Mapping[str, Any]) -> NetworkInfo:
    """Accept an existing network only if it is ours and has the subnet we asked for."""
    labels = attrs.get("Labels") or {}
    if labels.get(LABEL_MANAGED) != "true":
        raise EngineError(f"network {name} exists but was not created by fnplat (no {LABEL_MANAGED} label)")
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    if not configs or not configs[0].get("Subnet"):
        raise EngineError(f"network {name} exists but has no IPv4 subnet")
    have = ipaddress.ip_network(configs[0]["Subnet"])
    if have != ipaddress.ip_network(subnet):
        raise EngineError(
            f"network {name} exists with subnet {have}, not {subnet}: remove it or change the setting"
        )
    return NetworkInfo(
        name=name, subnet=str(have), gateway_ip=configs[0].get("Gateway") or gateway_of(subnet)
    )


def find_overlap(subnet: str, networks: list[Mapping[str, Any]]) -> str | None:
    """Name and subnet of the first existing network whose subnet overlaps ours, if any."""
    wanted = ipaddress.ip_network(subnet)
    for net in networks:
        for config in (net.get("IPAM") or {}).get("Config") or []:
            other = config.get("Subnet")
            if not other:
                continue
            try:
                other_net = ipaddress.ip_network(other)
            except ValueError:
                continue
            if other_net.version == wanted.version and other_net.overlaps(wanted):
                return f"{net.get('Name')} ({other_net})"
    return None


# ---- containers -----------------------------------------------------------------------------


def container_labels(taskdef: TaskDefinition, instance_id: str) -> dict[str, str]:
    return {**taskdef.labels, LABEL_MANAGED: "true", LABEL_INSTANCE: instance_id}


def container_environment(taskdef: TaskDefinition, environment: Mapping[str, str]) -> list[str]:
    merged = {**taskdef.environment, **environment}
    return [f"{key}={value}" for key, value in merged.items()]


def host_config_args(
    taskdef: TaskDefinition, network: str, volumes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The sandbox: everything `create_host_config` gets for a task (see product.md, sandboxes).

    `volumes` are the paths the image declares as VOLUMEs: each gets a size-limited tmpfs owned
    by the task's user instead of the host-backed anonymous volume Docker would create (writable
    host disk outside every limit, and leaked unless removed with the container)."""
    # exec: Lambda lets functions run programs they unpack into /tmp.
    tmpfs = {"/tmp": f"rw,exec,size={taskdef.tmp_size_mb}m,mode=1777"}
    for path in volume_mounts(volumes, taskdef):
        # runc keeps the mode of the image's directory; the owner is the task's user.
        tmpfs[path] = f"rw,exec,size={taskdef.tmp_size_mb}m" + _owner_options(taskdef.user)
    args: dict[str, Any] = {
        "network_mode": network,  # the task network only, never the default bridge
        "read_only": True,
        "tmpfs": tmpfs,
        # Tasks' bridges are IPv4 only; no IPv6 at all means no path to the host's link-local
        # IPv6 addresses around the IPv4 firewall (Docker 20.10 sets this too; newer may not).
        "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": taskdef.pids_limit,
        "mem_limit": f"{taskdef.memory_mb}m",
        "memswap_limit": f"{taskdef.memory_mb}m",  # equal to mem_limit: no swap
        "init": True,  # reap zombies the function leaves behind
        "auto_remove": False,  # we need the exit state (exit code, OOMKilled) after it dies
        # A plain dict: the SDK turns it into its LogConfig (keeps the SDK out of this module).
        "log_config": {"type": "json-file", "config": {"max-size": LOG_MAX_SIZE, "max-file": "1"}},
    }
    if taskdef.cpu_shares is not None:
        args["cpu_shares"] = taskdef.cpu_shares
    if taskdef.cpus is not None and not taskdef.cpu_limit_after_init:
        args.update(cpu_limit_args(taskdef.cpus))
    if taskdef.code_dir is not None:
        args["binds"] = {str(taskdef.code_dir): {"bind": "/var/task", "mode": "ro"}}
    return args


def cpu_limit_args(cpus: float) -> dict[str, int]:
    """CFS period and quota for a CPU limit in vCPUs (create_host_config and update_container)."""
    return {"cpu_period": CPU_PERIOD_US, "cpu_quota": max(MIN_CPU_QUOTA_US, round(cpus * CPU_PERIOD_US))}


def volume_mounts(volumes: tuple[str, ...], taskdef: TaskDefinition) -> list[str]:
    """The declared VOLUME paths that need a tmpfs: normalised, absolute, not already mounted."""
    taken = {"/tmp"} | ({"/var/task"} if taskdef.code_dir is not None else set())
    paths: list[str] = []
    for volume in volumes:
        path = posixpath.normpath(volume)
        if path.startswith("/") and path != "/" and path not in taken and path not in paths:
            paths.append(path)
    return paths


def _owner_options(user: str) -> str:
    uid, _, gid = user.partition(":")
    return f",uid={uid},gid={gid}" if uid.isdigit() and gid.isdigit() else ""


def image_volumes(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """The VOLUME paths an image declares, from `inspect_image`."""
    declared = (attrs.get("Config") or {}).get("Volumes") or {}
    return tuple(sorted(str(path) for path in declared))


def managed_filters(instance_id: str) -> dict[str, list[str]]:
    """The container-list filter for every container of one controller instance, running or not."""
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance_id}"]}


def exit_event_filters(instance_id: str) -> dict[str, Any]:
    """The events filter for deaths and OOM kills of one controller instance's containers."""
    return {"type": "container", "label": f"{LABEL_INSTANCE}={instance_id}", "event": ["die", "oom"]}


def container_state(
    container_id: str, state: Mapping[str, Any], labels: Mapping[str, str] | None
) -> ContainerState:
    """Our view of a container from the `State` of its inspection and its labels."""
    try:
        code = int(state.get("ExitCode", -1))
    except (TypeError, ValueError):
        code = -1
    return ContainerState(
        container_id=container_id,
        running=bool(state.get("Running")),
        exit_code=code,
        oom_killed=bool(state.get("OOMKilled")),
        task_id=(labels or {}).get(LABEL_TASK),
    )


def parse_exit_event(event: Mapping[str, Any]) -> tuple[str, str, int]:
    """(action, container id, exit code) of a container event; exit code -1 when absent."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = str(event.get("Action") or event.get("status") or "")
    container_id = str(actor.get("ID") or event.get("id") or "")
    try:
        code = int(attributes.get("exitCode", -1))
    except (TypeError, ValueError):
        code = -1
    return action, container_id, code


def cgroup_peak_files(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where the kernel keeps a container's peak memory, for each cgroup version and driver."""
    if not _FULL_ID_RE.match(container_id):
        return []  # never build a path from anything but a full container id
    return [
        root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",  # v1, cgroupfs
        root / "memory" / "system.slice" / f"docker-{container_id}.scope" / "memory.max_usage_in_bytes",
        root / "docker" / container_id / "memory.peak",  # v2, cgroupfs
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak",  # v2, systemd
    ]


# ---- images ---------------------------------------------------------------------------------


def build_failure(tag: str, error: str, tail: collections.deque[str]) -> str:
    message = f"image build of {tag} failed: {error.strip()}"
    if tail:
        message += "\n--- last lines of the build log ---\n" + "\n".join(tail)
    return message
