"""`fnctl server migrate`: bring the shared store to this code's schema, seal what needs it, exit.

Idempotent and safe to run from several places at once (an advisory lock serialises upgrades):
the Helm chart runs it as a hook Job before gateways and controllers start or upgrade.
"""

from __future__ import annotations

import logging

from fnplat.config import Settings
from fnplat.roles.cluster_checks import check_cluster_settings
from fnplat.roles.store import open_store
from fnplat.store.db import current_revision

log = logging.getLogger(__name__)


async def run(settings: Settings) -> str:
    """Upgrade to head; returns the revision the store is at."""
    check_cluster_settings(settings, "migrate")
    async with open_store(settings, migrate=True, server_role=True) as store:
        revision = current_revision(store.engine) or "none"
    log.info("the metadata store is at revision %s", revision)
    print(f"fnplat: the metadata store is at revision {revision}", flush=True)
    return revision
