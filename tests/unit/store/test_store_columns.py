"""Timestamps: aware in, UTC out, naive rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from fnplat.store.columns import UtcDateTime

DIALECT = sqlite.dialect()


def test_aware_values_are_stored_as_utc() -> None:
    paris = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    stored = UtcDateTime().process_bind_param(paris, DIALECT)
    assert stored == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert stored is not None and stored.utcoffset() == timedelta(0)


def test_naive_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), DIALECT)


def test_naive_results_from_sqlite_come_back_as_utc() -> None:
    loaded = UtcDateTime().process_result_value(datetime(2026, 1, 1, 11, 0), DIALECT)
    assert loaded == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert loaded is not None and loaded.tzinfo is UTC
