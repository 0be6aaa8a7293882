"""Per-function output budgets and the notices of what was dropped (controller/output_limits.py),
and the gate that applies them between the reading threads and the loop (output_gate.py)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from fnplat.config import OutputSettings
from fnplat.controller.docker_log_lines import TRUNCATED
from fnplat.controller.output_gate import OutputGate
from fnplat.controller.output_limits import (
    BACKLOG,
    RATE_LIMIT,
    DropLedger,
    DropNotice,
    OutputBudget,
    OutputLimits,
)


def limits(lines: float = 10, bytes_: float = 1000, burst: float = 1.0, max_line: int = 100) -> OutputLimits:
    return OutputLimits(lines_per_s=lines, bytes_per_s=bytes_, burst_s=burst, max_line_bytes=max_line)


def test_the_defaults_come_from_the_settings() -> None:
    got = OutputLimits.from_settings(OutputSettings())
    assert got == OutputLimits(1000.0, 1048576.0, 10.0, 262144)
    assert (got.line_capacity, got.byte_capacity) == (10_000, 10 * 1048576)


def test_a_budget_allows_a_burst_then_the_rate() -> None:
    budget = OutputBudget(limits(lines=10, burst=2.0), now=0.0)
    assert sum(budget.take(1, 0.0) for _ in range(50)) == 20  # two seconds' worth at once
    assert not budget.take(1, 0.0)
    assert sum(budget.take(1, 0.5) for _ in range(50)) == 5  # then 10 lines/s
    assert sum(budget.take(1, 100.0) for _ in range(50)) == 20  # refilled to the burst, no more


def test_bytes_are_budgeted_too_and_a_refused_line_costs_nothing() -> None:
    budget = OutputBudget(limits(lines=1000, bytes_=1000, max_line=100), now=0.0)
    assert sum(budget.take(100, 0.0) for _ in range(50)) == 10
    assert not budget.take(100, 0.0)
    assert budget.take(50, 0.05)  # 50 bytes came back; the refused line took none


def test_a_longest_line_always_fits_however_low_the_byte_rate() -> None:
    slow = limits(bytes_=10, max_line=1000)
    longest = 1000 + len(TRUNCATED % 1000)
    assert slow.byte_capacity == longest
    assert OutputBudget(slow, now=0.0).take(longest, 0.0)


def test_zero_means_no_limit() -> None:
    budget = OutputBudget(limits(lines=0, bytes_=0), now=0.0)
    assert all(budget.take(10**6, 0.0) for _ in range(10_000))


def test_drops_are_counted_in_one_notice_per_function_and_reason_until_it_is_due() -> None:
    ledger = DropLedger(after_s=1.0)
    assert ledger.dropped("fn", RATE_LIMIT, "c1", 10, 100.0, now=5.0)  # opens a notice
    assert not ledger.dropped("fn", RATE_LIMIT, "c2", 20, 100.5, now=5.5)
    assert ledger.dropped("fn", BACKLOG, "c2", 7, 100.6, now=5.6)
    assert ledger.dropped("other", RATE_LIMIT, "c9", 1, 100.7, now=5.7)
    assert ledger.due(5.9) == ([], 6.0)
    ready, next_due = ledger.due(6.0)
    assert ready == [DropNotice("fn", RATE_LIMIT, "c1", 100.0, 5.0, lines=2, bytes=30)]
    assert next_due == pytest.approx(6.6)
    assert len(ledger) == 2
    assert {n.function for n in ledger.close_all()} == {"fn", "other"}
    assert ledger.due(100.0) == ([], None)


def test_the_notice_says_how_many_lines_were_dropped_and_why() -> None:
    rate = DropNotice("fn", RATE_LIMIT, "c1", 1.0, 1.0, lines=1234, bytes=56789)
    assert rate.text(limits(lines=1000, bytes_=1048576)) == (
        "[fnplat: 1234 lines dropped (56789 bytes): this function's output went over 1000 lines/s"
        " or 1048576 bytes/s]"
    )
    backlog = DropNotice("fn", BACKLOG, "c1", 1.0, 1.0, lines=3, bytes=30)
    assert "3 lines dropped" in backlog.text(limits()) and "fast enough" in backlog.text(limits())


# -- the gate -------------------------------------------------------------------------------------


@dataclass
class Sink:
    lines: list[tuple[str, str, float]] = field(default_factory=list)
    notices: list[tuple[DropNotice, str]] = field(default_factory=list)
    noticed: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0  # lines_in is set once this many lines arrived
    lines_in: asyncio.Event = field(default_factory=asyncio.Event)

    def on_line(self, container_id: str, line: str, timestamp: float) -> None:
        self.lines.append((container_id, line, timestamp))
        if len(self.lines) == self.expected:
            self.lines_in.set()

    def on_dropped(self, notice: DropNotice, text: str) -> None:
        self.notices.append((notice, text))
        self.noticed.set()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(sink: Sink, clock: Clock, lim: OutputLimits, **kwargs: object) -> OutputGate:
    return OutputGate(
        lim,
        asyncio.get_running_loop(),
        on_line=sink.on_line,
        on_dropped=sink.on_dropped,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_lines_reach_the_loop_decoded_in_order_at_most_a_batch_per_turn() -> None:
    sink = Sink()
    output = gate(sink, Clock(), limits(lines=0, bytes_=0), batch=100)
    for i in range(1000):  # offered before the loop gets a turn
        output.offer("fn", "c1", b"line %d \xff" % i, 1.5)
    assert sink.lines == [] and output.backlog()[0] == 1000
    await asyncio.sleep(0)
    assert len(sink.lines) == 100  # one batch, then the loop's other callbacks
    await asyncio.sleep(0)
    assert len(sink.lines) == 200
    for _ in range(8):
        await asyncio.sleep(0)
    assert [line for _, line, _ in sink.lines] == [f"line {i} \ufffd" for i in range(1000)]
    assert output.backlog() == (0, 0)


async def test_lines_from_threads_are_handed_over_once_per_batch() -> None:
    sink = Sink(expected=4000)
    loop = asyncio.get_running_loop()
    output = gate(sink, Clock(), limits(lines=0, bytes_=0))
    wakes = 0
    real = loop.call_soon_threadsafe

    def counting(callback, *args):  # type: ignore[no-untyped-def]
        nonlocal wakes
        wakes += 1
        return real(callback, *args)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        writers = [
            threading.Thread(target=lambda c=c: [output.offer("fn", c, b"x", 1.0) for _ in range(2000)])
            for c in ("c1", "c2")
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            await asyncio.to_thread(writer.join)
        await sink.lines_in.wait()
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]
    assert len(sink.lines) == 4000
    assert wakes < 4000 / 10  # the loop is woken per batch, not per line


async def test_a_function_over_its_budget_loses_lines_and_gets_a_notice() -> None:
    sink, clock = Sink(), Clock()
    output = gate(sink, clock, limits(lines=10, bytes_=0, burst=1.0), notice_after_s=0.01)
    for i in range(50):
        output.offer("loud", "c1" if i < 30 else "c2", b"%d" % i, 100.0 + i)
    output.offer("quiet", "c3", b"fine", 200.0)  # another function's budget is its own
    clock.now += 1.0  # the notice is due; the budget has refilled
    await sink.noticed.wait()
    delivered = [line for _, line, _ in sink.lines]
    assert delivered == [str(i) for i in range(10)] + ["fine"]
    ((notice, text),) = sink.notices
    assert (notice.function, notice.reason, notice.lines) == ("loud", RATE_LIMIT, 40)
    assert (notice.container_id, notice.timestamp) == ("c1", 110.0)  # the first line dropped
    assert text.startswith("[fnplat: 40 lines dropped (")
    output.offer("loud", "c1", b"back", 300.0)
    await asyncio.sleep(0)
    assert sink.lines[-1][1] == "back"


async def test_lines_the_loop_has_not_taken_in_yet_are_bounded() -> None:
    sink, clock = Sink(), Clock()
    output = gate(sink, clock, limits(lines=0, bytes_=0), outbox_lines=5, notice_after_s=0.01)
    for i in range(20):  # the loop gets no turn in between: it is "not keeping up"
        output.offer("fn", "c1", b"%d" % i, 1.0)
    assert output.backlog() == (5, 5)
    clock.now += 1.0
    await sink.noticed.wait()
    assert [line for _, line, _ in sink.lines] == ["0", "1", "2", "3", "4"]
    assert [(n.reason, n.lines) for n, _ in sink.notices] == [(BACKLOG, 15)]


async def test_bytes_the_loop_has_not_taken_in_yet_are_bounded() -> None:
    sink = Sink()
    output = gate(sink, Clock(), limits(lines=0, bytes_=0), outbox_bytes=1000)
    for _ in range(5):
        output.offer("fn", "c1", b"x" * 300, 1.0)
    assert output.backlog() == (3, 900)


async def test_close_writes_the_notices_still_open_and_forget_resets_a_budget() -> None:
    sink, clock = Sink(), Clock()
    output = gate(sink, clock, limits(lines=1, bytes_=0, burst=1.0))
    for _ in range(3):
        output.offer("fn", "c1", b"x", 1.0)
    output.forget("fn")
    output.offer("fn", "c1", b"x", 1.0)  # a full budget again
    output.close()
    assert [(n.function, n.lines) for n, _ in sink.notices] == [("fn", 2)]
    await asyncio.sleep(0)
    assert len(sink.lines) == 2


async def test_offers_after_the_loop_closed_are_ignored() -> None:
    sink = Sink()
    loop = asyncio.new_event_loop()
    output = OutputGate(limits(), loop, on_line=sink.on_line, on_dropped=sink.on_dropped)
    loop.close()
    output.offer("fn", "c1", b"late", 1.0)  # a reading thread at shutdown: no error
