"""What a cluster role needs before it starts anything: refused with a clear message otherwise."""

from __future__ import annotations

import socket

from fnplat.config import Settings
from fnplat.errors import InvalidParameter
from fnplat.roles.store import require_postgres

MIN_SECRET_LENGTH = 16


def check_cluster_settings(settings: Settings, role: str) -> None:
    require_postgres(settings, role)
    secrets = settings.secrets
    if not (secrets.key or secrets.key_file):
        raise InvalidParameter(
            f"fnctl server {role} needs the key that encrypts function environments, the same for every "
            "gateway and controller: set FNPLAT_SECRET_KEY (or FNPLAT_SECRET_KEY_FILE)"
        )
    if role in ("gateway", "controller"):
        secret = settings.cluster.secret or ""
        if len(secret) < MIN_SECRET_LENGTH:
            raise InvalidParameter(
                f"fnctl server {role} needs FNPLAT_CLUSTER_SECRET, at least {MIN_SECRET_LENGTH} characters, "
                "the same for every gateway and controller (it authenticates gateways to controllers)"
            )
    cluster = settings.cluster
    if cluster.heartbeat_interval_s <= 0 or cluster.missed_beats < 1:
        raise InvalidParameter("FNPLAT_HEARTBEAT_INTERVAL must be > 0 and FNPLAT_HEARTBEAT_MISSED >= 1")
    if cluster.placement_tries < 1:
        raise InvalidParameter("FNPLAT_PLACEMENT_TRIES must be at least 1")


def node_id(settings: Settings) -> str:
    return settings.cluster.node_id or socket.gethostname()


def node_address(settings: Settings, port: int) -> str:
    """The URL gateways use for this controller's node API."""
    host = settings.cluster.node_address or _first_ipv4() or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _first_ipv4() -> str | None:
    """The address of the interface with the default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a route lookup only
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address
