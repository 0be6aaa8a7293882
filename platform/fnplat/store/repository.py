"""Data access for the metadata store.

Every function takes an open `Session` (the caller owns the transaction, see
`fnplat.store.db.transaction`) and returns `fnplat.domain` dataclasses, never ORM rows.
Database constraint violations surface as `fnplat.errors` exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from fnplat.domain import (
    LATEST,
    ApiKey,
    AuthMode,
    FunctionSpec,
    FunctionVersion,
    KeyScope,
    NetworkMode,
    Route,
    RouteSpec,
    Runtime,
    frozen_map,
)
from fnplat.errors import Conflict, InvalidParameter, NotFound, ServiceError
from fnplat.route_grammar import InvalidRoute, route_shape
from fnplat.sealing import EnvironmentCipher

# Records and logs live in their own module; callers reach every store function through this one.
from fnplat.store.artifact_blobs import get_artifact_blob, has_artifact_blob, put_artifact_blob
from fnplat.store.columns import utcnow
from fnplat.store.db import CIPHER_INFO_KEY
from fnplat.store.models import ApiKeyRow, ArtifactRow, FunctionRow, FunctionVersionRow, RouteRow
from fnplat.store.sqlhelpers import (
    check_aware,
    check_name,
    check_sha256,
    conflicts_as,
    insert_ignoring_duplicates,
)
from fnplat.store.telemetry import (
    FunctionStats,
    HourlyUsage,
    add_invocation_records,
    add_log_events,
    function_stats,
    get_invocation_records,
    hourly_usage,
    recent_log_events,
)

__all__ = [
    "FunctionStats",
    "FunctionSummary",
    "HourlyUsage",
    "add_api_key",
    "add_invocation_records",
    "add_log_events",
    "artifact_exists",
    "create_version",
    "delete_function",
    "function_stats",
    "get_api_key",
    "get_artifact_blob",
    "get_invocation_records",
    "get_latest_version",
    "get_version",
    "has_artifact_blob",
    "has_sealed_environments",
    "hourly_usage",
    "list_api_keys",
    "list_functions",
    "list_routes",
    "put_artifact_blob",
    "recent_log_events",
    "record_artifact",
    "replace_routes",
    "revoke_api_key",
    "seal_environments",
]


@dataclass(frozen=True, slots=True)
class FunctionSummary:
    """One line of `fnctl ls`: a function and its latest version's configuration."""

    name: str
    latest_version: int
    runtime: Runtime
    memory: int
    timeout: int
    updated_at: datetime


def _cipher(s: Session) -> EnvironmentCipher:
    cipher = s.info.get(CIPHER_INFO_KEY)
    if not isinstance(cipher, EnvironmentCipher):
        raise ServiceError(
            "function environments are encrypted: open the store with make_sessionmaker(engine, cipher)"
        )
    return cipher


def _environment_of(s: Session, row: FunctionVersionRow) -> Mapping[str, str]:
    if row.environment_sealed is None:  # written before encryption, not yet sealed at start-up
        return frozen_map(row.environment)
    return frozen_map(_cipher(s).open(row.environment_sealed))


def _to_version(row: FunctionVersionRow, environment: Mapping[str, str]) -> FunctionVersion:
    return FunctionVersion(
        function_name=row.function_name,
        version=row.version,
        runtime=cast(Runtime, row.runtime),
        handler=row.handler,
        memory=row.memory,
        timeout=row.timeout,
        environment=environment,
        code_sha256=row.code_sha256,
        image=row.image,
        created_at=row.created_at,
        network=cast(NetworkMode, row.network),
    )


def _to_route(row: RouteRow) -> Route:
    return Route(
        method=row.method,
        path=row.path,
        function_name=row.function_name,
        qualifier=row.qualifier,
        auth=cast(AuthMode, row.auth),
    )


def _to_api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        scope=cast(KeyScope, row.scope),
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
    )


# --- functions and versions -------------------------------------------------------------------


def create_version(s: Session, spec: FunctionSpec, code_sha256: str, image: str | None) -> FunctionVersion:
    """Record a deploy: the function row if new, the next version number, and $LATEST moved to it."""
    check_name(spec.name)
    check_sha256(code_sha256)
    now = utcnow()
    insert_ignoring_duplicates(
        s, FunctionRow, [{"name": spec.name, "latest_version": 0, "created_at": now, "updated_at": now}]
    )
    # The row lock (Postgres) serialises concurrent deploys of one function; on SQLite the
    # insert above already holds the database's write lock. The unique constraint backs both.
    function = s.execute(
        select(FunctionRow)
        .where(FunctionRow.name == spec.name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    version = function.latest_version + 1
    environment = frozen_map(spec.environment)
    row = FunctionVersionRow(
        function_name=spec.name,
        version=version,
        runtime=spec.runtime,
        handler=spec.handler,
        memory=spec.memory,
        timeout=spec.timeout,
        environment={},
        environment_sealed=_cipher(s).seal(environment),
        code_sha256=code_sha256,
        image=image,
        created_at=now,
        network=spec.network,
    )
    s.add(row)
    function.latest_version = version
    function.updated_at = now
    with conflicts_as(f"version {version} of function {spec.name} was created concurrently; retry"):
        s.flush()
    return _to_version(row, environment)


def get_version(s: Session, name: str, version: int) -> FunctionVersion | None:
    row = s.execute(
        select(FunctionVersionRow).where(
            FunctionVersionRow.function_name == name, FunctionVersionRow.version == version
        )
    ).scalar_one_or_none()
    return _to_version(row, _environment_of(s, row)) if row else None


def get_latest_version(s: Session, name: str) -> FunctionVersion | None:
    row = s.execute(
        select(FunctionVersionRow)
        .join(FunctionRow, FunctionRow.name == FunctionVersionRow.function_name)
        .where(FunctionRow.name == name, FunctionVersionRow.version == FunctionRow.latest_version)
    ).scalar_one_or_none()
    return _to_version(row, _environment_of(s, row)) if row else None


def list_functions(s: Session) -> list[FunctionSummary]:
    rows = s.execute(
        select(
            FunctionRow.name,
            FunctionRow.latest_version,
            FunctionVersionRow.runtime,
            FunctionVersionRow.memory,
            FunctionVersionRow.timeout,
            FunctionRow.updated_at,
        )
        .join(
            FunctionVersionRow,
            (FunctionVersionRow.function_name == FunctionRow.name)
            & (FunctionVersionRow.version == FunctionRow.latest_version),
        )
        .order_by(FunctionRow.name)
    ).all()
    return [
        FunctionSummary(
            name=r.name,
            latest_version=r.latest_version,
            runtime=cast(Runtime, r.runtime),
            memory=r.memory,
            timeout=r.timeout,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class SealCounts:
    sealed: int  # plaintext rows (written before encryption) now encrypted
    resealed: int  # rows under a retired key now under the current key
    checked: int  # rows already under the current key


def has_sealed_environments(s: Session) -> bool:
    """Whether any version's environment is encrypted (then a new key cannot be made up)."""
    found = s.execute(
        select(FunctionVersionRow.id).where(FunctionVersionRow.environment_sealed.is_not(None)).limit(1)
    ).first()
    return found is not None


def seal_environments(s: Session) -> SealCounts:
    """Bring every stored environment under the current key: encrypt plaintext rows, re-encrypt
    rows under a retired key. Raises SecretKeyError when a row opens with none of the keys."""
    cipher = _cipher(s)
    rows = s.execute(
        select(
            FunctionVersionRow.id, FunctionVersionRow.environment, FunctionVersionRow.environment_sealed
        ).with_for_update()
    ).all()
    sealed = resealed = checked = 0
    for row_id, plain, token in rows:
        if token is None:
            token, sealed = cipher.seal(plain or {}), sealed + 1
        elif not cipher.is_current(token):
            token, resealed = cipher.reseal(token), resealed + 1
        else:
            checked += 1
            continue
        s.execute(
            update(FunctionVersionRow)
            .where(FunctionVersionRow.id == row_id)
            .values(environment={}, environment_sealed=token)
            .execution_options(synchronize_session=False)
        )
    return SealCounts(sealed, resealed, checked)


def delete_function(s: Session, name: str) -> bool:
    """Remove a function; its versions and routes go with it (ON DELETE CASCADE). False if unknown."""
    result = s.execute(delete(FunctionRow).where(FunctionRow.name == name))
    return bool(getattr(result, "rowcount", 0))


# --- routes -----------------------------------------------------------------------------------


# Serialises route changes across processes sharing a Postgres store, so the conflict check below
# sees every committed route; the unique shape constraint backs it (and SQLite, which has one writer).
_ROUTES_LOCK_KEY = 0x666E706C7274  # "fnplrt"


def replace_routes(
    s: Session,
    function_name: str,
    routes: Sequence[RouteSpec],
    auth: AuthMode,
    qualifier: str = LATEST,
) -> list[Route]:
    """Make `routes` the function's complete route set.

    Routes are compared by their conflict shape (fnplat.route_grammar): `GET /a/{x}` and
    `GET /a/{y}` are one route. Raises Conflict (naming the owner) when a shape belongs to another
    function, also when a concurrent transaction claimed it first, InvalidParameter for invalid
    or duplicate routes, and NotFound for an unknown function; nothing is written in any case.
    """
    shapes: dict[str, RouteSpec] = {}
    for r in routes:
        try:
            shape = route_shape(r.method, r.path)
        except InvalidRoute as exc:
            raise InvalidParameter(str(exc)) from None
        if shape in shapes:
            raise InvalidParameter(
                f"duplicate routes for {function_name}: {shapes[shape].route_key} and {r.route_key}"
            )
        shapes[shape] = r
    if auth not in ("api_key", "none"):
        raise InvalidParameter(f"invalid auth mode {auth!r}")
    if s.get(FunctionRow, function_name) is None:
        raise NotFound(f"function {function_name} not found")
    if shapes:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(_ROUTES_LOCK_KEY)))
        taken = (
            s.execute(
                select(RouteRow).where(RouteRow.shape.in_(shapes), RouteRow.function_name != function_name)
            )
            .scalars()
            .all()
        )
        if taken:
            clashes = "; ".join(
                f"route '{shapes[row.shape].route_key}' clashes with '{_to_route(row).route_key}' "
                f"of function '{row.function_name}'"
                for row in taken
            )
            raise Conflict(clashes)
    # A Core DELETE runs now; an ORM delete would be flushed after the inserts below and trip
    # the unique constraint for routes that are kept.
    s.execute(delete(RouteRow).where(RouteRow.function_name == function_name))
    rows = [
        RouteRow(
            method=r.method,
            path=r.path,
            shape=shape,
            function_name=function_name,
            qualifier=qualifier,
            auth=auth,
        )
        for shape, r in shapes.items()
    ]
    s.add_all(rows)
    with conflicts_as(f"route conflict: another deploy claimed one of {function_name}'s routes; retry"):
        s.flush()
    return [_to_route(r) for r in rows]


def list_routes(s: Session) -> list[Route]:
    rows = s.execute(select(RouteRow).order_by(RouteRow.path, RouteRow.method)).scalars().all()
    return [_to_route(r) for r in rows]


# --- artifacts --------------------------------------------------------------------------------


def record_artifact(s: Session, sha256: str, size: int, unzipped_size: int) -> None:
    """Note that an artifact is stored; recording the same content again is a no-op."""
    check_sha256(sha256)
    if size < 0 or unzipped_size < 0:
        raise InvalidParameter("artifact sizes cannot be negative")
    insert_ignoring_duplicates(
        s,
        ArtifactRow,
        [{"sha256": sha256, "size": size, "unzipped_size": unzipped_size, "created_at": utcnow()}],
    )


def artifact_exists(s: Session, sha256: str) -> bool:
    return s.get(ArtifactRow, sha256) is not None


# --- API keys ---------------------------------------------------------------------------------


def add_api_key(s: Session, key: ApiKey) -> None:
    if key.scope not in ("admin", "invoke"):
        raise InvalidParameter(f"invalid key scope {key.scope!r}")
    check_sha256(key.secret_hash)
    check_aware(key.created_at, "created_at")
    s.add(
        ApiKeyRow(
            key_id=key.key_id,
            name=key.name,
            scope=key.scope,
            secret_hash=key.secret_hash,
            created_at=key.created_at,
            revoked_at=key.created_at if key.revoked else None,
        )
    )
    with conflicts_as(f"API key {key.key_id} already exists"):
        s.flush()


def list_api_keys(s: Session) -> list[ApiKey]:
    rows = s.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)).scalars().all()
    return [_to_api_key(r) for r in rows]


def get_api_key(s: Session, key_id: str) -> ApiKey | None:
    row = s.get(ApiKeyRow, key_id)
    return _to_api_key(row) if row else None


def revoke_api_key(s: Session, key_id: str) -> bool:
    """Revoke a key; idempotent (the first revocation time is kept). False if the key is unknown."""
    if s.get(ApiKeyRow, key_id) is None:
        return False
    s.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return True
