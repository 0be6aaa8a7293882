"""The firewall's side of iptables (with a recording stand-in for the commands): refuses to start
without iptables or root, installs, re-asserts and removes in transactions, derives the
metadata store and the resolvers; the controller installs it before any task and removes it
after the last."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from controller_harness import Harness, invoke, make_version

from fnplat.config import ControllerSettings, SandboxSettings
from fnplat.controller.engine import NetworkInfo
from fnplat.controller.netfilter import (
    DisabledFirewall,
    FirewallError,
    IptablesFirewall,
    firewall_for,
)

TASKS = NetworkInfo("fnplat-tasks", "172.31.252.0/22", "172.31.252.1")
BUILDS = NetworkInfo("fnplat-builds", "172.31.248.0/24", "172.31.248.1")
EMPTY = "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\nCOMMIT\n"


@dataclass
class FakeIptables:
    """Answers iptables-save with `table`; records every restore script."""

    table: str = EMPTY
    scripts: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    permitted: bool = True

    async def __call__(self, argv: Sequence[str], stdin: str | None) -> str:
        self.commands.append(argv[0])
        if not self.permitted:
            raise FirewallError(f"{argv[0]} failed (1): Permission denied (you must be root)")
        if argv[0] == "iptables-save":
            return self.table
        assert argv[0] == "iptables-restore" and stdin is not None
        self.scripts.append(stdin)
        return ""


def firewall(
    fake: FakeIptables,
    tmp_path: Path,
    database_url: str | None = None,
    *,
    root: bool = True,
    tools: bool = True,
    resolv: str = "nameserver 10.255.255.53\n",
) -> IptablesFirewall:
    conf = tmp_path / "resolv.conf"
    conf.write_text(resolv)
    return IptablesFirewall(
        "0123456789ab",
        SandboxSettings(allow_cidrs=("10.7.0.0/16",)),
        database_url,
        run=fake,
        is_root=lambda: root,
        which=lambda tool: f"/usr/sbin/{tool}" if tools else None,
        resolv_confs=[tmp_path / "missing.conf", conf],
    )


async def test_install_applies_both_networks_in_one_transaction(tmp_path: Path) -> None:
    fake = FakeIptables()
    await firewall(fake, tmp_path, "postgresql://u:p@10.7.0.5:5433/db").install(TASKS, 9001, BUILDS)
    assert fake.commands == ["iptables-save", "iptables-restore"]
    (script,) = fake.scripts
    assert "-A FNPLAT-T-IN-0123456789ab -d 172.31.252.1/32 -p tcp -m tcp --dport 9001 -j ACCEPT" in script
    assert "-A FNPLAT-T-FWD-0123456789ab -s 172.31.255.0/24 -j REJECT" in script  # network: none part
    assert "-d 10.7.0.5/32 -p tcp -m tcp --dport 5433 -j REJECT" in script  # the metadata store
    assert "-A FNPLAT-B-FWD-0123456789ab -d 10.7.0.0/16 -j RETURN" in script  # allowed CIDR
    assert "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN" in script  # the 2nd resolv.conf
    assert "-I DOCKER-USER 1 -s 172.31.248.0/24 -j FNPLAT-B-FWD-0123456789ab" in script


async def test_ensure_reapplies_what_install_applied_and_nothing_before(tmp_path: Path) -> None:
    fake = FakeIptables()
    wall = firewall(fake, tmp_path)
    await wall.ensure()
    assert fake.commands == []
    await wall.install(TASKS, 9001, None)
    await wall.ensure()
    assert len(fake.scripts) == 2 and fake.scripts[0] == fake.scripts[1]


async def test_remove_deletes_what_is_there_and_is_a_no_op_when_never_installed(tmp_path: Path) -> None:
    fake = FakeIptables()
    wall = firewall(fake, tmp_path)
    await wall.remove()
    assert fake.commands == []
    await wall.install(TASKS, 9001, None)
    fake.table = EMPTY.replace(
        ":DOCKER-USER - [0:0]\n", ":DOCKER-USER - [0:0]\n:FNPLAT-T-IN-0123456789ab - [0:0]\n"
    ).replace("COMMIT", "-A INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-0123456789ab\nCOMMIT")
    await wall.remove()
    assert "-D INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-0123456789ab" in fake.scripts[-1]
    assert "-X FNPLAT-T-IN-0123456789ab" in fake.scripts[-1]
    await wall.ensure()  # removed: nothing to re-assert
    assert len(fake.scripts) == 2


async def test_start_up_fails_clearly_without_iptables(tmp_path: Path) -> None:
    fake = FakeIptables()
    with pytest.raises(FirewallError, match="needs iptables-save and iptables-restore") as failure:
        await firewall(fake, tmp_path, tools=False).install(TASKS, 9001, None)
    assert "FNPLAT_TASK_FIREWALL=false" in failure.value.message
    assert fake.commands == []


async def test_start_up_fails_clearly_without_root_or_net_admin(tmp_path: Path) -> None:
    fake = FakeIptables(permitted=False)
    with pytest.raises(FirewallError, match="needs root, or CAP_NET_ADMIN") as failure:
        await firewall(fake, tmp_path, root=False).install(TASKS, 9001, None)
    assert "FNPLAT_TASK_FIREWALL=false" in failure.value.message
    assert "Permission denied" in failure.value.message
    assert fake.scripts == []


async def test_not_root_but_permitted_installs(tmp_path: Path) -> None:
    fake = FakeIptables()  # the platform image: iptables has CAP_NET_ADMIN as a file capability
    await firewall(fake, tmp_path, root=False).install(TASKS, 9001, None)
    assert len(fake.scripts) == 1


async def test_no_docker_user_chain_is_a_clear_error(tmp_path: Path) -> None:
    fake = FakeIptables(table="*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
    with pytest.raises(FirewallError, match="no DOCKER-USER chain"):
        await firewall(fake, tmp_path).install(TASKS, 9001, None)


async def test_the_store_host_is_resolved_and_loopback_is_left_out(tmp_path: Path) -> None:
    fake = FakeIptables()
    await firewall(fake, tmp_path, "postgresql://u:p@localhost:5432/db").install(TASKS, 9001, None)
    assert "--dport 5432" not in fake.scripts[0]  # 127.0.0.1 is the task's own loopback


async def test_an_unresolvable_store_host_still_installs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIptables()
    with caplog.at_level(logging.WARNING):
        await firewall(fake, tmp_path, "postgresql://u:p@no-such-host.invalid/db").install(TASKS, 9001, None)
    assert len(fake.scripts) == 1
    assert "cannot resolve the metadata store host" in caplog.text


def test_settings_choose_the_firewall() -> None:
    on = firewall_for(ControllerSettings(instance_id="abc"), None)
    assert isinstance(on, IptablesFirewall)
    off = firewall_for(ControllerSettings(sandbox=SandboxSettings(firewall=False)), None)
    assert isinstance(off, DisabledFirewall)
    with pytest.raises(Exception, match="FNPLAT_TASK_ALLOW_CIDRS"):
        firewall_for(ControllerSettings(sandbox=SandboxSettings(allow_cidrs=("bad",))), None)


async def test_the_disabled_firewall_says_what_it_risks(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        await DisabledFirewall().install(TASKS, 9001, None)
    assert "link-local" in caplog.text and "metadata store" in caplog.text


# ---- the controller's use of it ------------------------------------------------------------------


async def test_the_controller_installs_before_serving_and_removes_after_its_tasks(harness: Harness) -> None:
    controller = await harness.start()
    assert harness.firewall.calls == ["install"]
    assert harness.firewall.installed is not None
    tasks, port, builds = harness.firewall.installed
    assert controller.runtime_api_address == f"{tasks.gateway_ip}:{port}"  # the bound port
    assert builds is not None and builds.name == "fnplat-builds"
    await invoke(controller, make_version())
    await controller.ensure_firewall()
    assert harness.firewall.calls == ["install", "ensure"]
    await controller.close()
    assert harness.firewall.calls == ["install", "ensure", "remove"]
    assert harness.engine.running() == []  # removed only once no task was left


async def test_network_none_tasks_live_in_the_isolated_part(harness: Harness) -> None:
    controller = await harness.start()
    await invoke(controller, make_version("open"))
    await invoke(controller, make_version("closed", network="none"))
    addresses = {task.function_name: task.ip for task in controller.tasks()}
    assert addresses["open"].startswith("127.0.0.")
    assert addresses["closed"].startswith("127.0.192.")  # the last quarter of 127.0.0.0/16
