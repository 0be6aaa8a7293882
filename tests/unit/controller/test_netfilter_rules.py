"""The task firewall's rules (pure): what each path refuses and lets through, in which order, and
the iptables-restore transactions that install, re-assert and remove them."""

from __future__ import annotations

import pytest

from fnplat.controller.netfilter_rules import (
    PRIVATE_RANGES,
    Endpoint,
    Listing,
    NetworkPolicy,
    apply_script,
    chain_names,
    database_target,
    forward_rules,
    input_rules,
    instance_tag,
    parse_allowed_cidrs,
    parse_listing,
    removal_script,
    resolvers_from,
)
from fnplat.errors import InvalidParameter

REJECT = "-j REJECT --reject-with icmp-admin-prohibited"
TASKS = NetworkPolicy(
    role="T",
    subnet="172.31.252.0/22",
    gateway_ip="172.31.252.1",
    runtime_api_port=9001,
    isolated="172.31.255.0/24",
    allow=("10.1.0.0/16",),
    blocked=(Endpoint("10.1.2.3", 5432),),
    resolvers=("10.255.255.53",),
)
BUILDS = NetworkPolicy("B", "172.31.248.0/24", "172.31.248.1", None, None, (), (), ())

# What `iptables-save -t filter` prints on a Docker host with nothing of ours.
DOCKER_ONLY = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -j RETURN
COMMIT
"""


def lines(rules: list[list[str]]) -> list[str]:
    return [" ".join(rule) for rule in rules]


def position(rules: list[str], wanted: str) -> int:
    return next(index for index, rule in enumerate(rules) if rule == wanted)


# ---- the INPUT path: every address of this host ---------------------------------------------------


def test_input_accepts_only_the_runtime_api_and_replies_and_refuses_the_rest() -> None:
    rules = lines(input_rules(TASKS))
    assert rules[0] == "-i lo -j RETURN"  # the host's own traffic to its gateway address
    assert "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" in rules
    assert "-d 172.31.252.1/32 -p tcp -m tcp --dport 9001 -j ACCEPT" in rules
    assert rules[-1] == REJECT  # any other port of any host address
    # The isolated part gets no DNS, even to a resolver on the host.
    assert position(rules, f"-s 172.31.255.0/24 {REJECT}") < position(
        rules, "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j ACCEPT"
    )


def test_builds_reach_no_port_of_the_host() -> None:
    rules = lines(input_rules(BUILDS))
    assert not any("--dport" in rule and "ACCEPT" in rule for rule in rules)
    assert rules[-1] == REJECT


# ---- the FORWARD path: elsewhere -----------------------------------------------------------------


def test_forward_refuses_isolated_tasks_first_then_store_link_local_and_private_ranges() -> None:
    rules = lines(forward_rules(TASKS))
    assert rules[0] == f"-s 172.31.255.0/24 {REJECT}"  # network: none, before anything passes
    store = f"-d 10.1.2.3/32 -p tcp -m tcp --dport 5432 {REJECT}"
    link_local = f"-d 169.254.0.0/16 {REJECT}"
    allowed = "-d 10.1.0.0/16 -j RETURN"
    dns = "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN"
    # The store stays refused although its address is in an allowed CIDR; allowed CIDRs never
    # open link-local; the resolver's exception comes before its private range is refused.
    assert position(rules, store) < position(rules, allowed)
    assert position(rules, link_local) < position(rules, allowed)
    assert position(rules, dns) < position(rules, f"-d 10.0.0.0/8 {REJECT}")
    assert position(rules, allowed) < position(rules, f"-d 10.0.0.0/8 {REJECT}")
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"):
        assert f"-d {cidr} {REJECT}" in rules
    assert not any("ACCEPT" in rule for rule in rules)  # the internet: Docker's own rules decide


def test_every_private_range_is_a_network() -> None:
    for cidr in PRIVATE_RANGES:
        parse_allowed_cidrs([cidr])


# ---- inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("postgresql+psycopg://u:p@10.1.2.3:6543/db", ("10.1.2.3", 6543)),
        ("postgresql://u:p@db.internal/db", ("db.internal", 5432)),
        ("sqlite:////var/lib/fnplat/fnplat.db", None),
        ("postgresql:///db?host=/var/run/postgresql", None),
        ("not a url", None),
    ],
)
def test_the_metadata_store_comes_from_the_database_url(url: str, target: tuple[str, int] | None) -> None:
    assert database_target(url) == target


def test_resolvers_are_the_non_loopback_ipv4_nameservers() -> None:
    conf = "# comment\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::1\nsearch x\n"
    assert resolvers_from(conf) == ("10.255.255.53",)
    assert resolvers_from("nameserver 127.0.0.53\n") == ()


def test_allowed_cidrs_are_checked_and_normalised() -> None:
    assert parse_allowed_cidrs(["10.1.2.3/16", "192.168.5.0/24"]) == ("10.1.0.0/16", "192.168.5.0/24")
    with pytest.raises(InvalidParameter, match="FNPLAT_TASK_ALLOW_CIDRS: 'nope'"):
        parse_allowed_cidrs(["nope"])
    with pytest.raises(InvalidParameter, match="IPv6"):
        parse_allowed_cidrs(["fd00::/8"])


def test_chain_names_fit_iptables_and_name_the_instance() -> None:
    assert chain_names("0123456789ab", "T").forward == "FNPLAT-T-FWD-0123456789ab"
    assert len(chain_names(instance_tag("x" * 80), "B").forward) <= 28
    assert instance_tag("unit-test") != "unit-test"  # '-' would blur whose chain is whose


# ---- transactions ----------------------------------------------------------------------------


def test_first_install_declares_fills_and_jumps_in_one_transaction() -> None:
    script = apply_script([TASKS, BUILDS], "abc", parse_listing(DOCKER_ONLY, "abc")).splitlines()
    assert script[0] == "*filter" and script[-1] == "COMMIT"
    for chain in ("FNPLAT-T-IN-abc", "FNPLAT-T-FWD-abc", "FNPLAT-B-IN-abc", "FNPLAT-B-FWD-abc"):
        assert f":{chain} - [0:0]" in script  # created, or flushed and refilled when there
    assert "-I INPUT 1 -s 172.31.252.0/22 -j FNPLAT-T-IN-abc" in script
    assert "-I DOCKER-USER 1 -s 172.31.252.0/22 -j FNPLAT-T-FWD-abc" in script
    assert "-I DOCKER-USER 1 -s 172.31.248.0/24 -j FNPLAT-B-FWD-abc" in script
    assert not any(line.startswith("-D") for line in script)


def test_reapplying_keeps_present_jumps_deletes_stale_ones_and_drops_unwanted_chains() -> None:
    installed = DOCKER_ONLY.replace(
        ":DOCKER-USER - [0:0]\n",
        ":DOCKER-USER - [0:0]\n:FNPLAT-T-IN-abc - [0:0]\n:FNPLAT-T-FWD-abc - [0:0]\n"
        ":FNPLAT-B-IN-abc - [0:0]\n:FNPLAT-B-FWD-abc - [0:0]\n:FNPLAT-T-IN-other - [0:0]\n",
    ).replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-abc\n"
        "-A INPUT -s 10.9.0.0/16 -j FNPLAT-T-IN-abc\n"  # from a run with another subnet
        "-A INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-other\n"  # another controller's
        "-A DOCKER-USER -s 172.31.248.0/24 -j FNPLAT-B-FWD-abc\n"
        "-A DOCKER-USER -j RETURN\n",
    )
    listing = parse_listing(installed, "abc")
    assert len(listing.jumps) == 3
    script = apply_script([TASKS], "abc", listing).splitlines()
    assert "-I INPUT 1 -s 172.31.252.0/22 -j FNPLAT-T-IN-abc" not in script  # there already
    assert "-I DOCKER-USER 1 -s 172.31.252.0/22 -j FNPLAT-T-FWD-abc" in script  # missing: back
    assert "-D INPUT -s 10.9.0.0/16 -j FNPLAT-T-IN-abc" in script
    assert "-D DOCKER-USER -s 172.31.248.0/24 -j FNPLAT-B-FWD-abc" in script
    assert script.index("-D DOCKER-USER -s 172.31.248.0/24 -j FNPLAT-B-FWD-abc") < script.index(
        "-X FNPLAT-B-FWD-abc"
    )
    assert not any("other" in line for line in script)  # never another instance's


def test_without_docker_user_nothing_is_applied() -> None:
    listing = Listing(chains=frozenset({"INPUT", "FORWARD"}), jumps=())
    with pytest.raises(ValueError, match="DOCKER-USER"):
        apply_script([TASKS], "abc", listing)


def test_removal_deletes_jumps_before_their_chains_and_only_ours() -> None:
    installed = DOCKER_ONLY.replace(
        ":DOCKER-USER - [0:0]\n",
        ":DOCKER-USER - [0:0]\n:FNPLAT-T-IN-abc - [0:0]\n:FNPLAT-T-IN-zabc - [0:0]\n",
    ).replace(
        "-A DOCKER-USER -j RETURN\n",
        "-A INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-abc\n-A INPUT -s 172.31.0.0/22 -j FNPLAT-T-IN-zabc\n",
    )
    script = removal_script("abc", parse_listing(installed, "abc"))
    assert script is not None
    assert script.splitlines() == [
        "*filter",
        "-D INPUT -s 172.31.252.0/22 -j FNPLAT-T-IN-abc",
        "-F FNPLAT-T-IN-abc",
        "-X FNPLAT-T-IN-abc",
        "COMMIT",
    ]
    assert removal_script("abc", parse_listing(DOCKER_ONLY, "abc")) is None
