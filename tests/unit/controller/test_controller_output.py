"""A function's output on its way to the log: budgets per function, the drop notice attributed to
the invocation that was running, and the metric (controller/service.py with the output gate)."""

from __future__ import annotations

from controller_harness import Harness, make_request, make_version, settle

from fnplat.config import OutputSettings
from fnplat.controller.fake_engine import FakeContext, FakeFunction


async def test_output_over_the_budget_is_dropped_with_a_notice_and_a_metric(harness: Harness) -> None:
    async def chatty(event: bytes, ctx: FakeContext) -> bytes:
        for i in range(50):
            ctx.print(f"line {i}")
        return b"{}"

    harness.engine.register("fn", FakeFunction(handler=chatty))
    controller = await harness.start(output=OutputSettings(lines_per_s=5, burst_s=1.0))
    request = make_request(make_version())
    await controller.invoke(request)
    await settle(lambda: len(harness.logs) == 5)
    assert [e.message for e in harness.logs] == [f"line {i}" for i in range(5)]
    await controller.close()  # writes the notices still open
    notice = harness.logs[-1]
    assert notice.message.startswith("[fnplat: 45 lines dropped (")
    assert (notice.function_name, notice.request_id) == ("fn", request.request_id)
    assert harness.metric("fnplat_log_lines_dropped_total", function="fn", reason="rate_limit") == 45
