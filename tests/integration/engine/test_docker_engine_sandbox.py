"""The sandbox a task runs in: locked down, and unable to reach other tasks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from engine_harness import WAIT_S, Harness, docker_cli

pytestmark = pytest.mark.docker

PROBES = r"""
echo uid=$(id -u)
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
touch /rootfile 2>/dev/null && echo rootwrite=ok || echo rootwrite=denied
echo hi > /tmp/small && echo tmpwrite=ok || echo tmpwrite=denied
dd if=/dev/zero of=/tmp/big bs=1M count=16 2>/dev/null && echo tmpbig=ok || echo tmpbig=full
rm -f /tmp/big
test -e /var/run/docker.sock && echo dockersock=present || echo dockersock=absent
echo code=$(cat /var/task/handler.txt)
touch /var/task/new 2>/dev/null && echo codewrite=ok || echo codewrite=denied
echo env=$FROM_TASKDEF,$FROM_RUN,$OVERRIDDEN
echo memlimit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
echo memswlimit=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)
echo interfaces=$(ls /sys/class/net | tr '\n' ' ')
echo address=$(hostname -I)
echo pid1=$(cat /proc/1/comm)
perl -e 'my $n = 0; for (1..60) { my $p = fork(); last unless defined $p;
  if ($p == 0) { sleep 30; exit 0 } $n++ } print "forked=$n\n"'
echo END
"""


async def test_task_runs_locked_down(harness: Harness, code_dir: Path) -> None:
    handle = await harness.run(
        PROBES,
        env={"FROM_RUN": "run", "OVERRIDDEN": "by-run"},
        environment={"FROM_TASKDEF": "taskdef", "OVERRIDDEN": "by-taskdef"},
        code_dir=code_dir,
        memory_mb=64,
        tmp_size_mb=8,
        pids_limit=20,
    )
    found = await harness.recorder.output_until_end(handle.container_id)

    assert found["uid"] != "0"
    assert found["CapEff"] == found["CapPrm"] == found["CapBnd"] == "0000000000000000"
    assert found["NoNewPrivs"] == "1"
    assert found["rootwrite"] == "denied"
    assert found["tmpwrite"] == "ok"
    assert found["tmpbig"] == "full"  # 16 MB into an 8 MB /tmp
    assert found["dockersock"] == "absent"
    assert found["code"] == "handler-code"
    assert found["codewrite"] == "denied"
    assert found["env"] == "taskdef,run,by-run"  # per-task values win over the task definition
    assert int(found["memlimit"]) == 64 * 1024 * 1024
    assert int(found["memswlimit"]) == 64 * 1024 * 1024  # memory + swap = memory: no swap
    assert found["interfaces"].split() == ["eth0", "lo"]  # the task network only
    assert found["address"].strip() == handle.ip
    assert found["pid1"] == "docker-init"  # an init reaps the function's zombies
    assert 0 < int(found["forked"]) < 20  # the pids limit stops a fork bomb

    exit_ = await harness.recorder.exit_of(handle.container_id)
    assert exit_.exit_code == 0 and not exit_.oom_killed


async def test_container_carries_our_labels_and_no_published_ports(harness: Harness) -> None:
    handle = await harness.run("sleep 300")
    attrs = json.loads(docker_cli("inspect", handle.container_id).stdout)[0]

    labels = attrs["Config"]["Labels"]
    assert labels["fnplat.managed"] == "true"
    assert labels["fnplat.instance"] == harness.instance_id
    host = attrs["HostConfig"]
    assert host["PortBindings"] in ({}, None)
    assert host["AutoRemove"] is False
    assert host["LogConfig"]["Type"] == "json-file"
    assert "max-size" in host["LogConfig"]["Config"]
    assert list(attrs["NetworkSettings"]["Networks"]) == [harness.network.name]


async def _serve_once(host: str) -> tuple[asyncio.Server, int]:
    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"pong\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(pong, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def test_tasks_reach_the_gateway_but_not_each_other(harness: Harness) -> None:
    listener = await harness.run(
        "perl -MIO::Socket::INET -e '"
        "$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1)"
        ' or die "listen: $!"; print "listening\\n"; $| = 1;'
        ' while ($c = $s->accept) { print $c "from-b\\n"; close $c }\''
    )
    await harness.recorder.wait_line(listener.container_id, "listening")

    # Control: the listener is reachable from the host, so a failure below is the isolation.
    reader, writer = await asyncio.wait_for(asyncio.open_connection(listener.ip, 8080), WAIT_S)
    assert await asyncio.wait_for(reader.readline(), WAIT_S) == b"from-b\n"
    writer.close()

    server, port = await _serve_once(harness.network.gateway_ip)
    async with server:
        prober = await harness.run(
            f"if timeout 3 bash -c 'exec 3<>/dev/tcp/{listener.ip}/8080 && cat <&3'; "
            "then echo peer=reachable; else echo peer=unreachable; fi\n"
            f"timeout 10 bash -c 'exec 3<>/dev/tcp/{harness.network.gateway_ip}/{port}; echo ping >&3;"
            " read -r line <&3; echo gateway=$line'\n"
            "echo END"
        )
        found = await harness.recorder.output_until_end(prober.container_id)

    assert found["gateway"] == "pong"
    assert found["peer"] == "unreachable"
