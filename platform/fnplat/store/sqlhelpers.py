"""Validation and SQL helpers shared by the store's data-access modules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fnplat.domain import FUNCTION_NAME_RE
from fnplat.errors import Conflict, InvalidParameter
from fnplat.store.models import Base

SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def check_name(name: str) -> None:
    if not FUNCTION_NAME_RE.fullmatch(name):
        raise InvalidParameter(f"invalid function name {name!r}: 1-64 letters, digits, '-' or '_'")


def check_sha256(value: str) -> None:
    if not SHA256_HEX_RE.fullmatch(value):
        raise InvalidParameter(f"invalid sha256 {value!r}: 64 lower-case hex digits expected")


def check_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None:
        raise InvalidParameter(f"{what} must be timezone-aware, got {value.isoformat()}")


@contextmanager
def conflicts_as(message: str) -> Iterator[None]:
    """Turn a unique/foreign-key violation at flush into a Conflict the caller can show."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(message) from exc


def dialect_insert(s: Session, model: type[Base]) -> Any:
    """The backend's own INSERT, which has ON CONFLICT (both backends speak it)."""
    module: Any = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(model.__table__)


def insert_ignoring_duplicates(s: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING as one executemany: the statement is compiled once and
    cached, whatever the batch size."""
    if not rows:
        return
    s.execute(dialect_insert(s, model).on_conflict_do_nothing(), list(rows))
