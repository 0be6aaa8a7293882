"""Code artifacts' bytes in the store (Postgres clusters): written once with their `artifacts`
row, read by sha256 by any controller. Re-exported by `fnplat.store.repository`."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fnplat.errors import ServiceError
from fnplat.store.models import ArtifactChunkRow
from fnplat.store.sqlhelpers import check_sha256

CHUNK_BYTES = 1024 * 1024  # bytea values of 1 MiB: no single huge value in a row or a message


def has_artifact_blob(s: Session, sha256: str) -> bool:
    check_sha256(sha256)
    return s.execute(select(func.count()).where(ArtifactChunkRow.sha256 == sha256)).scalar_one() > 0


def put_artifact_blob(s: Session, sha256: str, data: bytes) -> bool:
    """Store the bytes of artifact `sha256` unless they are there; True when written. The
    artifact's `artifacts` row must exist (record_artifact) in the same transaction."""
    check_sha256(sha256)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ServiceError(f"artifact bytes do not hash to {sha256}")
    if has_artifact_blob(s, sha256):
        return False
    s.add_all(
        ArtifactChunkRow(sha256=sha256, chunk=index, data=data[start : start + CHUNK_BYTES])
        for index, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))
    )
    s.flush()
    return True


def get_artifact_blob(s: Session, sha256: str) -> bytes | None:
    """The artifact's bytes, verified against its sha256; None when the store has none."""
    check_sha256(sha256)
    chunks = s.execute(
        select(ArtifactChunkRow.data)
        .where(ArtifactChunkRow.sha256 == sha256)
        .order_by(ArtifactChunkRow.chunk)
    ).scalars()
    data = b"".join(chunks)
    if not data:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ServiceError(f"the stored bytes of artifact {sha256} are corrupt")
    return data
