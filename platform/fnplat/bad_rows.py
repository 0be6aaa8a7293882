"""One bad row never blocks the rows behind it: a batch the store refuses for its values is split
in halves until the rows at fault are alone, and only those are rejected.

A batch is written in one transaction (all or nothing). When it fails because of a value
(`is_row_error`: a constraint, a value the column or the driver refuses), the halves are
written separately, recursively, so one bad row among n costs about 2 log2(n) extra
transactions and every good row is written. Any other failure (the store is down, hung or
locked) stops the splitting at once: the rows not yet written are handed back to be retried
as they are, never rejected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fnplat.domain import InvocationRecord, LogEvent
from fnplat.store.calls import StoreTimeout, is_row_error


@dataclass(slots=True)
class Batch:
    """Lines and records written together in one transaction."""

    events: list[LogEvent] = field(default_factory=list)
    records: list[InvocationRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.records)

    def split(self) -> tuple[Batch, Batch]:
        """Two halves of about equal size, order kept (lines and records split separately)."""
        half = len(self) // 2
        cut_events = min(len(self.events), half)
        cut_records = half - cut_events
        return (
            Batch(self.events[:cut_events], self.records[:cut_records]),
            Batch(self.events[cut_events:], self.records[cut_records:]),
        )

    def extend(self, other: Batch) -> None:
        self.events += other.events
        self.records += other.records


class StoreFailed(Exception):
    """The store failed for a reason of its own; nothing of `unwritten` is written.

    `in_doubt` is the batch whose write timed out: it may still commit on its thread, so it is
    neither written nor unwritten until that thread ends. `written` counts the rows written (or
    rejected) before the failure."""

    def __init__(self, cause: BaseException, unwritten: Batch, in_doubt: Batch | None, written: int) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.unwritten = unwritten
        self.in_doubt = in_doubt
        self.written = written


Write = Callable[[Batch], Awaitable[None]]
Reject = Callable[[LogEvent | InvocationRecord, BaseException], None]


async def write_isolating(write: Write, batch: Batch, reject: Reject) -> int:
    """Write `batch`, isolating and rejecting the rows the store refuses; return how many were
    rejected. Raises StoreFailed when the store fails for another reason."""
    pending = [batch]  # a stack: the left half is written before the right one
    rejected = written = 0
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            await write(part)
        except Exception as exc:
            if not is_row_error(exc):
                unwritten = Batch()
                in_doubt = part if isinstance(exc, StoreTimeout) else None
                if in_doubt is None:
                    unwritten.extend(part)
                for rest in reversed(pending):
                    unwritten.extend(rest)
                raise StoreFailed(exc, unwritten, in_doubt, written) from exc
            if len(part) == 1:
                reject(part.events[0] if part.events else part.records[0], exc)
                rejected += 1
                written += 1
                continue
            left, right = part.split()
            pending.append(right)
            pending.append(left)
            continue
        written += len(part)
    return rejected
