"""What tasks and image builds may reach, as iptables rules: pure construction, no I/O.

netfilter.py is the only module that runs iptables; everything it applies is built here, so every
rule is unit-tested without root. Two paths matter for a container on one of our bridges:

- INPUT: packets to any address of this host (its bridge gateway, eth0, docker0, addresses on
  `lo`): refused except the Runtime API port on the bridge's gateway address, replies to
  connections the host opened, and DNS to a resolver that happens to be a host address.
- FORWARD (through Docker's DOCKER-USER chain, which Docker keeps first in FORWARD): packets
  routed elsewhere. Refused: the metadata store's host:port, link-local (cloud metadata),
  private ranges unless an operator allowed a CIDR, and everything from the isolated part of the
  task subnet (`network: none`). The rest (the internet) passes on to Docker's own rules.

DNS: Docker's embedded resolver (127.0.0.11 in each container) forwards queries from inside the
container's network namespace, so they cross FORWARD with the container's address; the host's
upstream resolvers are often private addresses, hence their explicit exception (port 53 only).

Each controller instance has chains of its own (per role: tasks, builds), jumped to from INPUT and
DOCKER-USER by source subnet, and applied in one `iptables-restore --noflush` transaction: a
chain is declared (created or flushed) and filled atomically, stale jumps of ours are deleted and
missing ones inserted first in their chain, so re-applying is idempotent and never leaves a
window without rules.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fnplat.errors import InvalidParameter

INPUT = "INPUT"
DOCKER_USER = "DOCKER-USER"
CHAIN_PREFIX = "FNPLAT-"
MAX_CHAIN_NAME = 28  # iptables' limit (29 with the terminating NUL)

LINK_LOCAL = "169.254.0.0/16"
# Never reachable unless allowed: RFC 1918, CGNAT (RFC 6598), loopback, "this network",
# multicast and reserved.
PRIVATE_RANGES: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
REJECT = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]

_TAG_RE = re.compile(r"^[A-Za-z0-9_]{1,12}$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str  # IPv4
    port: int


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """What the containers on one bridge subnet may reach."""

    role: str  # "T" (tasks) or "B" (builds): part of the chain names
    subnet: str
    gateway_ip: str
    runtime_api_port: int | None  # the one port of the host they may reach; None: no port
    isolated: str | None  # part of the subnet that reaches nothing else (network: none)
    allow: tuple[str, ...]  # private CIDRs an operator opened
    blocked: tuple[Endpoint, ...]  # always refused, even inside an allowed CIDR (metadata store)
    resolvers: tuple[str, ...]  # upstream DNS servers of Docker's embedded resolver


@dataclass(frozen=True, slots=True)
class Chains:
    input: str
    forward: str


@dataclass(frozen=True, slots=True)
class Jump:
    builtin: str
    spec: tuple[str, ...]  # what follows `-A <builtin>` in `iptables -S`

    def line(self, action: str) -> str:
        return " ".join((action, self.builtin, *self.spec))


# ---- names and inputs ------------------------------------------------------------------------


def instance_tag(instance_id: str) -> str:
    """A chain-name-safe tag for a controller instance (its id, or a hash of it)."""
    if _TAG_RE.match(instance_id):
        return instance_id
    return hashlib.sha256(instance_id.encode()).hexdigest()[:12]


def chain_names(tag: str, role: str) -> Chains:
    chains = Chains(f"{CHAIN_PREFIX}{role}-IN-{tag}", f"{CHAIN_PREFIX}{role}-FWD-{tag}")
    if len(chains.forward) > MAX_CHAIN_NAME:
        raise ValueError(f"chain name {chains.forward} is longer than {MAX_CHAIN_NAME} characters")
    return chains


def parse_allowed_cidrs(values: Iterable[str]) -> tuple[str, ...]:
    """Operator-allowed CIDRs, normalised; InvalidParameter names the bad one."""
    allowed = []
    for value in values:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise InvalidParameter(f"FNPLAT_TASK_ALLOW_CIDRS: {value!r} is not a CIDR: {exc}") from None
        if network.version != 4:
            raise InvalidParameter(f"FNPLAT_TASK_ALLOW_CIDRS: {value!r}: tasks have no IPv6")
        allowed.append(str(network))
    return tuple(allowed)


def database_target(url: str) -> tuple[str, int] | None:
    """(host, port) of the metadata store a database URL names; None for a file or a socket."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() == "sqlite" or not parsed.host or parsed.host.startswith("/"):
        return None
    port = parsed.port or DEFAULT_PORTS.get(parsed.get_backend_name())
    return (parsed.host, port) if port else None


def resolvers_from(resolv_conf: str) -> tuple[str, ...]:
    """IPv4 nameservers of a resolv.conf that Docker forwards to (it skips loopback ones)."""
    found = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.ip_address(fields[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback and str(address) not in found:
                found.append(str(address))
    return tuple(found)


# ---- the rules -------------------------------------------------------------------------------


def input_rules(policy: NetworkPolicy) -> list[list[str]]:
    """The INPUT chain: packets from the subnet to any address of this host."""
    rules = [
        ["-i", "lo", "-j", "RETURN"],  # the host talking to its own gateway address, not a container
        ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ]
    if policy.runtime_api_port is not None:
        rules.append(_tcp_to(policy.gateway_ip, policy.runtime_api_port, ["-j", "ACCEPT"]))
    if policy.isolated is not None:
        rules.append(["-s", policy.isolated, *REJECT])
    rules.extend(_dns_rules(policy.resolvers, "ACCEPT"))
    rules.append(REJECT)
    return rules


def forward_rules(policy: NetworkPolicy) -> list[list[str]]:
    """The DOCKER-USER chain: packets from the subnet routed elsewhere; RETURN lets Docker decide."""
    rules: list[list[str]] = []
    if policy.isolated is not None:
        rules.append(["-s", policy.isolated, *REJECT])
    rules.append(["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"])
    rules.extend(_tcp_to(endpoint.address, endpoint.port, REJECT) for endpoint in policy.blocked)
    rules.append(["-d", LINK_LOCAL, *REJECT])
    rules.extend(_dns_rules(policy.resolvers, "RETURN"))
    rules.extend(["-d", cidr, "-j", "RETURN"] for cidr in policy.allow)
    rules.extend(["-d", cidr, *REJECT] for cidr in PRIVATE_RANGES)
    return rules


def _tcp_to(address: str, port: int, verdict: list[str]) -> list[str]:
    return ["-d", f"{address}/32", "-p", "tcp", "-m", "tcp", "--dport", str(port), *verdict]


def _dns_rules(resolvers: Sequence[str], verdict: str) -> list[list[str]]:
    return [
        ["-d", f"{resolver}/32", "-p", proto, "-m", proto, "--dport", "53", "-j", verdict]
        for resolver in resolvers
        for proto in ("udp", "tcp")
    ]


def jumps(policy: NetworkPolicy, chains: Chains) -> list[Jump]:
    source = str(ipaddress.ip_network(policy.subnet, strict=False))
    return [
        Jump(INPUT, ("-s", source, "-j", chains.input)),
        Jump(DOCKER_USER, ("-s", source, "-j", chains.forward)),
    ]


# ---- what is there, and the transaction that makes it what we want ------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """The parts of `iptables-save -t filter` that concern one instance's chains."""

    chains: frozenset[str]  # every chain of the filter table
    jumps: tuple[Jump, ...]  # jumps from INPUT or DOCKER-USER to a chain of this instance


def parse_listing(save_output: str, tag: str) -> Listing:
    chains: set[str] = set()
    found: list[Jump] = []
    for line in save_output.splitlines():
        if line.startswith(":"):
            chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            fields = line.split()
            if fields[1] in (INPUT, DOCKER_USER) and _is_ours(_target(fields), tag):
                found.append(Jump(fields[1], tuple(fields[2:])))
    return Listing(frozenset(chains), tuple(found))


def _target(fields: Sequence[str]) -> str:
    for index, field in enumerate(fields[:-1]):
        if field in ("-j", "--jump"):
            return fields[index + 1]
    return ""


def _is_ours(chain: str, tag: str) -> bool:
    return chain.startswith(CHAIN_PREFIX) and chain.endswith(f"-{tag}")


def apply_script(policies: Sequence[NetworkPolicy], tag: str, listing: Listing) -> str:
    """One iptables-restore --noflush transaction: our chains as `policies` say, jumps to them
    (stale ones deleted, missing ones inserted first), chains of ours no policy wants removed."""
    if DOCKER_USER not in listing.chains:
        raise ValueError(
            f"the filter table has no {DOCKER_USER} chain: is dockerd running and managing iptables?"
        )
    lines = ["*filter"]
    wanted_chains: list[str] = []
    wanted_jumps: list[Jump] = []
    body: list[str] = []
    for policy in policies:
        chains = chain_names(tag, policy.role)
        wanted_chains += [chains.input, chains.forward]
        wanted_jumps += jumps(policy, chains)
        body += [" ".join(["-A", chains.input, *rule]) for rule in input_rules(policy)]
        body += [" ".join(["-A", chains.forward, *rule]) for rule in forward_rules(policy)]
    lines += [f":{chain} - [0:0]" for chain in wanted_chains]  # created, or flushed if there
    lines += body
    lines += [jump.line("-D") for jump in listing.jumps if jump not in wanted_jumps]
    for jump in wanted_jumps:
        if jump not in listing.jumps:
            lines.append(" ".join(("-I", jump.builtin, "1", *jump.spec)))
    for chain in sorted(c for c in listing.chains if _is_ours(c, tag) and c not in wanted_chains):
        lines += [f"-F {chain}", f"-X {chain}"]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def removal_script(tag: str, listing: Listing) -> str | None:
    """The transaction that removes every jump to and chain of this instance; None if none is there."""
    ours = sorted(c for c in listing.chains if _is_ours(c, tag))
    if not ours and not listing.jumps:
        return None
    lines = ["*filter"]
    lines += [jump.line("-D") for jump in listing.jumps]
    for chain in ours:
        lines += [f"-F {chain}", f"-X {chain}"]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
