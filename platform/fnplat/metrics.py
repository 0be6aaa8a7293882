"""Prometheus metrics of one platform process, on a registry owned by the process (not global).

Every component gets the same `Metrics` object; `/metrics` renders `metrics.registry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "fnplat_invocations", "Invocations by outcome", ["function", "outcome"], registry=r
        )  # outcome: success | function_error | timeout | oom | crash | throttled
        self.invocation_duration = Histogram(
            "fnplat_invocation_duration_seconds",
            "Function run time",
            ["function"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.init_duration = Histogram(
            "fnplat_init_duration_seconds",
            "Task init (cold start to first next)",
            ["function"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.cold_starts = Counter(
            "fnplat_cold_starts", "Tasks started for a function", ["function"], registry=r
        )
        self.throttles = Counter(
            "fnplat_throttles", "Invocations rejected with 429", ["function"], registry=r
        )
        self.concurrent_executions = Gauge(
            "fnplat_concurrent_executions", "Busy tasks", ["function"], registry=r
        )
        self.tasks = Gauge("fnplat_tasks", "Tasks by state", ["function", "state"], registry=r)
        self.queue_depth = Gauge(
            "fnplat_queue_depth", "Invocations waiting for a task", ["function"], registry=r
        )
        self.http_requests = Counter(
            "fnplat_http_requests", "Gateway HTTP requests", ["kind", "status"], registry=r
        )  # kind: route | invoke | management | other
        self.http_duration = Histogram(
            "fnplat_http_request_duration_seconds",
            "Gateway request latency",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
