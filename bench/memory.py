"""Controller memory: RSS of the platform process with 0 and then more idle warm tasks."""

from __future__ import annotations

from bench.cold import BURST_FN, COLD_FN, HELLO_FN
from bench.context import NODE_FN, PYTHON_FN, Context
from bench.report import INFO, Row

IDLE_FN = "bench-idle"


def memory(ctx: Context) -> None:
    platform = ctx.platform
    for name in (PYTHON_FN, NODE_FN, COLD_FN, BURST_FN, HELLO_FN, IDLE_FN):
        platform.delete(name)  # retires its tasks; unknown names answer 404, which is fine here
    platform.wait_tasks(None, 0, timeout_s=300)
    platform.deploy("noop-python", IDLE_FN)
    previous: tuple[int, float] | None = None
    for step in ctx.mode.idle_steps:
        reached = ctx.grow_tasks(IDLE_FN, step) if step else 0
        rss = platform.rss_mb()
        derived = ""
        if previous is not None and reached > previous[0]:
            per_task_kb = (rss - previous[1]) * 1024 / (reached - previous[0])
            derived = f"{per_task_kb:+.0f} KB per task ({previous[0]} -> {reached})"
        ctx.report.add(
            Row(
                f"controller RSS with {step} idle warm tasks",
                f"{rss:.1f} MB",
                "",
                derived,
                "",
                INFO,
                f"{reached} live tasks" if step else "after all functions were removed",
            )
        )
        previous = (reached, rss)
