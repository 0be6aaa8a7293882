"""The docker engine's pure decisions: sandbox options, network checks, event and log parsing,
cgroup paths, error mapping. These need no Docker (not marked `docker`; they belong in tests/unit/)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from fnplat.controller.docker_decisions import (
    cgroup_peak_files,
    check_existing_network,
    container_environment,
    container_labels,
    cpu_limit_args,
    find_overlap,
    host_config_args,
    image_volumes,
    parse_exit_event,
)
from fnplat.controller.docker_engine import DockerEngine, _engine_error
from fnplat.controller.docker_log_lines import LogLines, parse_timestamp_ns
from fnplat.controller.engine import TaskDefinition
from fnplat.domain import frozen_map
from fnplat.errors import EngineError

FULL_ID = "a" * 64


def taskdef(**overrides: object) -> TaskDefinition:
    values: dict[str, object] = {
        "family": "f",
        "revision": 2,
        "image": "img",
        "command": None,
        "memory_mb": 256,
    }
    values.update(overrides)
    return TaskDefinition(**values)  # type: ignore[arg-type]


def stamp(seconds: int, nanos: int, message: str) -> bytes:
    return f"2024-05-01T10:20:{seconds:02d}.{nanos:09d}Z {message}".encode()


def test_host_config_is_the_locked_down_sandbox(tmp_path: Path) -> None:
    args = host_config_args(
        taskdef(code_dir=tmp_path, cpu_shares=512, tmp_size_mb=64, pids_limit=99), "tasks"
    )

    assert args["network_mode"] == "tasks"
    assert args["read_only"] is True and args["init"] is True and args["auto_remove"] is False
    assert args["cap_drop"] == ["ALL"] and args["security_opt"] == ["no-new-privileges"]
    assert args["mem_limit"] == args["memswap_limit"] == "256m"
    assert args["tmpfs"] == {"/tmp": "rw,exec,size=64m,mode=1777"}
    assert args["pids_limit"] == 99 and args["cpu_shares"] == 512
    # IPv4 only: no IPv6 path to the host's link-local addresses around the firewall.
    assert args["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert args["binds"] == {str(tmp_path): {"bind": "/var/task", "mode": "ro"}}
    assert "port_bindings" not in args and "privileged" not in args


def test_host_config_leaves_out_unset_options() -> None:
    args = host_config_args(taskdef(), "tasks")
    assert "binds" not in args and "cpu_shares" not in args and "cpu_quota" not in args


def test_the_cpu_limit_is_a_cfs_quota_on_a_20_ms_period() -> None:
    args = host_config_args(taskdef(cpus=0.25), "tasks")
    assert (args["cpu_period"], args["cpu_quota"]) == (20_000, 5_000)
    assert cpu_limit_args(5.789) == {"cpu_period": 20_000, "cpu_quota": 115_780}
    assert cpu_limit_args(0.01)["cpu_quota"] == 1_000  # the kernel's smallest quota
    # Set later by limit_cpu() when the task is ready: init runs unthrottled.
    later = host_config_args(taskdef(cpus=0.25, cpu_limit_after_init=True), "tasks")
    assert "cpu_quota" not in later and "cpu_period" not in later


def test_declared_volumes_become_tmpfs_owned_by_the_task_user(tmp_path: Path) -> None:
    attrs = {"Config": {"Volumes": {"/data": {}, "/var/cache/app/": {}, "/tmp": {}, "/var/task": {}}}}
    volumes = image_volumes(attrs)
    assert volumes == ("/data", "/tmp", "/var/cache/app/", "/var/task")
    image_task = taskdef(tmp_size_mb=32, user="993:990")
    assert host_config_args(image_task, "tasks", volumes)["tmpfs"] == {
        "/tmp": "rw,exec,size=32m,mode=1777",  # already a tmpfs
        "/data": "rw,exec,size=32m,uid=993,gid=990",
        "/var/cache/app": "rw,exec,size=32m,uid=993,gid=990",
        "/var/task": "rw,exec,size=32m,uid=993,gid=990",  # no code bind for image functions
    }
    zip_task = taskdef(code_dir=tmp_path, tmp_size_mb=32)
    assert "/var/task" not in host_config_args(zip_task, "tasks", ("/var/task",))["tmpfs"]  # the bind
    assert image_volumes({"Config": {"Volumes": None}}) == () == image_volumes({})


def test_our_labels_cannot_be_overridden_and_task_env_wins() -> None:
    labels = container_labels(taskdef(labels=frozen_map({"fnplat.instance": "forged", "x": "1"})), "me")
    assert labels == {"fnplat.instance": "me", "fnplat.managed": "true", "x": "1"}
    env = container_environment(taskdef(environment=frozen_map({"A": "td", "B": "td"})), {"B": "task"})
    assert env == ["A=td", "B=task"]


def network(name: str, subnet: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Name": name,
        "Labels": labels if labels is not None else {"fnplat.managed": "true"},
        "IPAM": {"Config": [{"Subnet": subnet, "Gateway": "10.0.0.1"}]},
    }


def test_existing_network_is_accepted_only_when_ours_with_the_same_subnet() -> None:
    info = check_existing_network("t", "10.0.0.0/24", network("t", "10.0.0.0/24"))
    assert (info.subnet, info.gateway_ip) == ("10.0.0.0/24", "10.0.0.1")
    with pytest.raises(EngineError, match="not created by fnplat"):
        check_existing_network("t", "10.0.0.0/24", network("t", "10.0.0.0/24", labels={}))
    with pytest.raises(EngineError, match=r"exists with subnet 10\.0\.1\.0/24"):
        check_existing_network("t", "10.0.0.0/24", network("t", "10.0.1.0/24"))
    with pytest.raises(EngineError, match="no IPv4 subnet"):
        check_existing_network("t", "10.0.0.0/24", {"Labels": {"fnplat.managed": "true"}, "IPAM": {}})


def test_overlap_is_found_by_subnet_not_by_name() -> None:
    existing: list[Mapping[str, Any]] = [network("bridge", "172.17.0.0/16"), {"Name": "host", "IPAM": {}}]
    assert find_overlap("172.17.5.0/24", existing) == "bridge (172.17.0.0/16)"
    assert find_overlap("172.18.0.0/24", existing) is None


def test_exit_events_are_parsed() -> None:
    event = {"Action": "die", "Actor": {"ID": FULL_ID, "Attributes": {"exitCode": "137"}}}
    assert parse_exit_event(event) == ("die", FULL_ID, 137)
    assert parse_exit_event({"status": "oom", "id": FULL_ID}) == ("oom", FULL_ID, -1)
    assert parse_exit_event({"Action": "die", "Actor": {"Attributes": {"exitCode": "x"}}})[2] == -1


def test_timestamps_keep_nanoseconds() -> None:
    assert parse_timestamp_ns("1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert parse_timestamp_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_timestamp_ns("yesterday") is None


def test_log_lines_joins_partial_frames_and_keeps_unterminated_output() -> None:
    lines = LogLines()
    first = lines.feed(stamp(1, 5, "first\nsecond\n"))
    assert [text for text, _ in first] == [b"first", b"second"]
    assert all(ts == pytest.approx(1714558801.000000005) for _, ts in first)
    assert lines.feed(stamp(2, 0, "x" * 10)) == []  # a 16 KiB part: same timestamp continues it
    assert [text for text, _ in lines.feed(stamp(2, 0, "y" * 10 + "\n"))] == [b"x" * 10 + b"y" * 10]
    assert lines.feed(stamp(3, 0, "no-newline")) == []
    assert [text for text, _ in lines.feed(stamp(4, 0, "next\n"))] == [b"no-newline", b"next"]
    assert lines.feed(stamp(5, 0, "tail")) == []
    assert [text for text, _ in lines.flush()] == [b"tail"]
    assert lines.flush() == []


def test_log_lines_replay_skips_what_was_delivered() -> None:
    lines = LogLines()
    assert lines.since() is None
    lines.feed(stamp(1, 0, "a\n"))
    lines.feed(stamp(2, 0, "b\n"))
    lines.feed(stamp(2, 0, "c\n"))  # same timestamp as b
    assert lines.since() == 1714558802
    lines.begin_replay()
    replayed = [
        stamp(1, 0, "a\n"),
        stamp(2, 0, "b\n"),
        stamp(2, 0, "c\n"),
        stamp(2, 0, "d\n"),
        stamp(3, 0, "e"),
    ]
    delivered = [text for frame in replayed for text, _ in lines.feed(frame, replay=True)]
    assert delivered + [text for text, _ in lines.flush()] == [b"d", b"e"]


def test_cgroup_paths_only_for_full_ids(tmp_path: Path) -> None:
    assert cgroup_peak_files("../../etc/passwd", tmp_path) == []
    assert cgroup_peak_files(FULL_ID[:12], tmp_path) == []
    paths = cgroup_peak_files(FULL_ID, tmp_path)
    assert tmp_path / "memory" / "docker" / FULL_ID / "memory.max_usage_in_bytes" in paths
    assert tmp_path / "system.slice" / f"docker-{FULL_ID}.scope" / "memory.peak" in paths


async def test_max_memory_used_reads_the_peak_file_without_docker(tmp_path: Path) -> None:
    engine = DockerEngine("unit", cgroup_root=tmp_path)
    try:
        assert engine.max_memory_used_mb(FULL_ID) is None
        v2 = tmp_path / "system.slice" / f"docker-{FULL_ID}.scope"
        v2.mkdir(parents=True)
        (v2 / "memory.peak").write_text(f"{50 * 1024 * 1024 + 1}\n")
        assert engine.max_memory_used_mb(FULL_ID) == 51  # rounded up, as Lambda reports it
    finally:
        await engine.close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            requests.exceptions.ConnectionError("refused"),
            "Docker engine not reachable at .*: is dockerd running",
        ),
        (requests.exceptions.ReadTimeout("slow"), "did not answer in time to start container t"),
        (ValueError("odd"), "unexpected failure trying to start container t: ValueError: odd"),
    ],
)
def test_every_failure_maps_to_one_clear_engine_error(exc: BaseException, expected: str) -> None:
    error = _engine_error(exc, "start container t")
    assert isinstance(error, EngineError)
    assert re.search(expected, error.message), error.message
