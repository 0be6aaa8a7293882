"""The background job that keeps stored data bounded: retention, then garbage collection.

One job per process, every `housekeeping_interval_s` (the first run one interval after start):

1. Retention (store/retention.py): invocation records and log lines older than
   `retention_days`, or past `max_invocation_records` / `max_log_lines`, deleted in short
   chunks. Where several processes share Postgres only one runs it at a time (advisory lock).
2. Garbage collection of this node's files and images: an artifact no function version
   references and nobody stored or used for `gc_grace_s` loses its zip, its row, its unpacked
   code dir and, for `runtime: image`, its function image (`fnplat-fn/<name>:<sha[:12]>`).
   The grace period and the claim-by-rename in ArtifactStore keep a deploy in flight safe.
   Leftovers of interrupted writes (`.tmp-*`, `.gc-*`) older than the grace period go too.

The blocking work runs on daemon threads (store/calls.py): a frozen database holds neither the
loop nor shutdown. close() asks a run in progress to stop between two chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fnplat.artifacts import ArtifactStore
from fnplat.config import TelemetrySettings
from fnplat.controller.engine import ContainerEngine
from fnplat.errors import FnplatError
from fnplat.metrics import Metrics
from fnplat.packaging import spec_from_zip
from fnplat.store import retention
from fnplat.store.calls import start_blocking
from fnplat.store.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_WAIT_S = 5.0  # for the chunk in progress; after that its daemon thread is left to finish


def function_image_tag(function_name: str, sha256: str) -> str:
    """The tag a deploy gives a `runtime: image` function's image (fnplat/deployments.py)."""
    return f"fnplat-fn/{function_name.lower()}:{sha256[:12]}"


class Housekeeper:
    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        artifacts: ArtifactStore,
        containers: ContainerEngine | None,
        settings: TelemetrySettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._artifacts = artifacts
        self._containers = containers
        self._settings = settings
        self._metrics = metrics.telemetry
        self._clock = clock
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Future[Any] | None = None  # the blocking step in progress

    async def start(self) -> None:
        if self._settings.housekeeping_interval_s > 0:
            self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        running = self._running
        if running is not None and not running.done():
            # The retention run stops between two chunks; after CLOSE_WAIT_S its thread is left.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(running), CLOSE_WAIT_S)
            if not running.done():
                running.add_done_callback(_retrieve)

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._settings.housekeeping_interval_s)
            try:
                await self.run_once()
            except Exception:  # the next run tries again
                log.exception("housekeeping failed")

    async def run_once(self) -> None:
        """Retention, then garbage collection; counted in fnplat_housekeeping_runs."""
        try:
            ran = await self._blocking(self._retention)
            await self.collect_garbage()
        except retention.Stopped:
            return
        except Exception:
            self._metrics.housekeeping_runs.labels("failed").inc()
            raise
        self._metrics.housekeeping_runs.labels("ok" if ran else "skipped").inc()
        self._metrics.housekeeping_last_success.set(self._clock())

    # ---- retention -------------------------------------------------------------------------

    def _retention(self) -> bool:
        s = self._settings
        policy = retention.RetentionPolicy(
            max_age=timedelta(days=s.retention_days),
            max_records=s.max_invocation_records,
            max_lines=s.max_log_lines,
        )
        with retention.exclusive_run(self._engine) as held:
            if not held:
                log.info("retention skipped: another process sharing the database runs it")
                return False
            try:
                deleted = retention.expire(
                    self._sessions,
                    policy,
                    datetime.fromtimestamp(self._clock(), UTC),
                    time.sleep,
                    lambda: self._stopping,
                )
            except retention.Stopped as stopped:
                self._count(stopped.deleted)
                raise
            self._count(deleted)
        return True

    def _count(self, deleted: retention.Deleted) -> None:
        for (table, reason), n in deleted.counts.items():
            self._metrics.retention_deleted.labels(table, reason).inc(n)
        if deleted.counts:
            done = ", ".join(f"{n} {table} ({reason})" for (table, reason), n in deleted.counts.items())
            log.info("retention deleted %s", done)

    # ---- garbage collection ----------------------------------------------------------------

    async def collect_garbage(self) -> None:
        older_than = self._clock() - self._settings.gc_grace_s
        removed = await self._blocking(lambda: self._artifacts.gc_temporaries(older_than))
        if removed:
            self._metrics.gc_removed.labels("temp").inc(removed)
        on_disk = await self._blocking(self._artifacts.gc_candidates)
        rows, referenced, images = await self._blocking(self._store_view)
        for sha in sorted((set(on_disk) | set(rows)) - referenced):
            if self._stopping:
                return
            first_recorded = rows.get(sha)
            if first_recorded is not None and first_recorded.timestamp() >= older_than:
                continue
            if on_disk.get(sha, 0.0) >= older_than:
                continue
            try:
                await self._collect(sha, older_than, images)
            except Exception:  # one artifact's trouble must not stop the others
                log.exception("garbage collection of artifact %s failed", sha)

    def _store_view(self) -> tuple[dict[str, datetime], set[str], set[str]]:
        with transaction(self._sessions) as s:
            rows = retention.artifact_rows(s)
            return rows, retention.referenced_artifacts(s), retention.referenced_images(s)

    async def _collect(self, sha: str, older_than: float, referenced_images: set[str]) -> None:
        claimed = await self._blocking(lambda: self._artifacts.gc_claim(sha, older_than))
        if claimed is None and await self._blocking(lambda: self._artifacts.zip_path(sha).exists()):
            return  # stored or used again within the grace period
        collected = False
        try:
            if not await self._blocking(lambda: self._forget(sha)):
                return  # a deploy references it now
            if claimed is not None:
                tag = await self._blocking(lambda: _image_tag_in(claimed, sha))
                if tag is not None and tag not in referenced_images:
                    if await self._blocking(lambda: self._artifacts.gc_restored(sha)):
                        return
                    await self._remove_image(tag)
            # A deploy that stored the zip again after the claim is using this code dir.
            if await self._blocking(lambda: self._artifacts.gc_restored(sha)):
                return
            if await self._blocking(lambda: self._artifacts.gc_remove_code(sha)):
                self._metrics.gc_removed.labels("code_dir").inc()
            collected = True
        finally:
            if claimed is not None:
                if collected:
                    claimed.unlink(missing_ok=True)
                    self._metrics.gc_removed.labels("artifact").inc()
                else:
                    self._artifacts.gc_release(sha, claimed)
        log.info("collected unreferenced artifact %s", sha)

    def _forget(self, sha: str) -> bool:
        """Drop the artifact's row; False (and nothing changed) when a version references it."""
        with transaction(self._sessions) as s:
            if retention.is_referenced(s, sha):
                return False
            retention.forget_artifact(s, sha)
            return True

    async def _remove_image(self, tag: str) -> None:
        if self._containers is None:
            return
        await self._containers.remove_image(tag)  # EngineError (in use): kept, tried next run
        self._metrics.gc_removed.labels("image").inc()
        log.info("removed unreferenced function image %s", tag)

    async def _blocking(self, fn: Callable[[], T]) -> T:
        """Run fn on a daemon thread, remembered so close() can wait for it a little."""
        future = start_blocking(fn, name="fnplat-housekeeping")
        self._running = future
        return await asyncio.shield(future)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _image_tag_in(zip_path: Path, sha: str) -> str | None:
    """The image tag of an artifact's function when it is a `runtime: image` one."""
    try:
        spec = spec_from_zip(zip_path.read_bytes())
    except (FnplatError, OSError) as exc:
        log.warning("%s: cannot read its function.yaml (%s); its image, if any, is kept", zip_path, exc)
        return None
    return function_image_tag(spec.name, sha) if spec.runtime == "image" else None
