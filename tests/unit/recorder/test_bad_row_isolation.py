"""Isolating bad rows by splitting a batch: every good row written, only the bad ones rejected,
and a store failure stops the splitting with the unwritten rows handed back in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DataError, OperationalError

from fnplat.bad_rows import Batch, StoreFailed, write_isolating
from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store.calls import StoreTimeout

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def line(i: int) -> LogEvent:
    return LogEvent("fn", f"r{i}", T0, f"line {i}")


def record(i: int) -> InvocationRecord:
    return InvocationRecord(f"r{i}", "fn", 1, "$LATEST", T0, 1.0, 1, 128, None, None, None)


class Store:
    def __init__(
        self, bad: set[str], down_after: int | None = None, timeout_after: int | None = None
    ) -> None:
        self.bad = bad
        self.down_after = down_after
        self.timeout_after = timeout_after
        self.transactions = 0
        self.lines: list[str] = []
        self.records: list[str] = []
        self.rejected: list[str] = []

    async def write(self, batch: Batch) -> None:
        self.transactions += 1
        if self.down_after is not None and self.transactions > self.down_after:
            raise OperationalError("INSERT", {}, ConnectionResetError("server closed the connection"))
        if self.timeout_after is not None and self.transactions > self.timeout_after:
            raise StoreTimeout("no answer")
        if any(e.message in self.bad for e in batch.events) or any(
            r.request_id in self.bad for r in batch.records
        ):
            raise DataError("INSERT", {}, ValueError("refused"))
        self.lines += [e.message for e in batch.events]
        self.records += [r.request_id for r in batch.records]

    def reject(self, entry: LogEvent | InvocationRecord, exc: BaseException) -> None:
        self.rejected.append(entry.message if isinstance(entry, LogEvent) else entry.request_id)


def batch(n: int) -> Batch:
    return Batch([line(i) for i in range(n)], [record(i) for i in range(n)])


def test_split_keeps_order_and_sizes() -> None:
    left, right = batch(5).split()
    assert [e.message for e in left.events] == ["line 0", "line 1", "line 2", "line 3", "line 4"]
    assert [r.request_id for r in left.records] == []
    assert len(left) == 5 and len(right) == 5
    left, right = Batch([line(0)], [record(0), record(1), record(2)]).split()
    assert (len(left.events), len(left.records), len(right.events), len(right.records)) == (1, 1, 0, 2)


async def test_one_bad_row_costs_a_few_transactions_and_only_itself() -> None:
    store = Store(bad={"line 300"})
    rejected = await write_isolating(store.write, batch(500), store.reject)
    assert rejected == 1 and store.rejected == ["line 300"]
    assert store.lines == [f"line {i}" for i in range(500) if i != 300]
    assert store.records == [f"r{i}" for i in range(500)]
    assert store.transactions <= 2 * 10 + 1  # about 2 log2(1000)


async def test_several_bad_rows_of_both_kinds() -> None:
    store = Store(bad={"line 0", "r7", "line 9"})
    assert await write_isolating(store.write, batch(10), store.reject) == 3
    assert sorted(store.rejected) == ["line 0", "line 9", "r7"]
    assert store.lines == [f"line {i}" for i in range(1, 9)]
    assert store.records == [f"r{i}" for i in range(10) if i != 7]


async def test_a_store_failure_while_splitting_hands_back_the_rest_in_order() -> None:
    store = Store(bad={"line 1"}, down_after=3)
    with pytest.raises(StoreFailed) as failed:
        await write_isolating(store.write, batch(4), store.reject)
    written = len(store.lines) + len(store.records) + len(store.rejected)
    assert failed.value.written == written
    assert failed.value.in_doubt is None
    unwritten = failed.value.unwritten
    assert written + len(unwritten) == 8
    assert store.rejected == [] or store.rejected == ["line 1"]
    # Nothing is both written and handed back, and the order is kept.
    assert not set(store.records) & {r.request_id for r in unwritten.records}
    assert [r.request_id for r in unwritten.records] == sorted(r.request_id for r in unwritten.records)


async def test_a_timed_out_part_is_in_doubt_not_unwritten() -> None:
    store = Store(bad={"line 1"}, timeout_after=1)
    with pytest.raises(StoreFailed) as failed:
        await write_isolating(store.write, batch(4), store.reject)
    assert failed.value.in_doubt is not None and len(failed.value.in_doubt) == 4  # the left half
    assert len(failed.value.unwritten) == 4  # the right half, not tried
