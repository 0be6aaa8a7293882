"""Prometheus metrics of one platform process, on a registry owned by the process (not global).

Every component gets the same `Metrics` object; `/metrics` renders `metrics.registry`.
The per-request series are updated through `request_done` and `invocation_done`, which keep the
labelled children: `labels()` takes a lock and hashes its labels on every call.
"""

from __future__ import annotations

from typing import Any

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
        # Client connections (gateway/connection_limits.py): the gauge reads the live count when
        # scraped, so opening and closing a connection costs nothing here.
        self.gateway_open_connections = Gauge(
            "fnplat_gateway_open_connections", "Open client connections of the gateway", registry=r
        )
        self.gateway_refused_connections = Counter(
            "fnplat_gateway_refused_connections",
            "Client connections closed at once because the gateway was at its connection cap",
            registry=r,
        )
        self.gateway_timeouts = Counter(
            "fnplat_gateway_timeouts",
            "Client requests answered 408 and closed because their head or body was too slow",
            ["phase"],  # head | body
            registry=r,
        )
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._invocation_counters: dict[tuple[str, str], Any] = {}
        self._duration_children: dict[str, Any] = {}

    def request_done(self, kind: str, status: int, seconds: float) -> None:
        """One gateway request of `kind` answered with `status` after `seconds`."""
        children = self._request_children.get((kind, status))
        if children is None:
            children = (self.http_requests.labels(kind, str(status)), self.http_duration.labels(kind))
            self._request_children[(kind, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def invocation_done(self, function: str, outcome: str, seconds: float | None = None) -> None:
        """One invocation of `function` ended with `outcome`; `seconds` it ran, when it ran."""
        counter = self._invocation_counters.get((function, outcome))
        if counter is None:
            counter = self.invocations.labels(function, outcome)
            self._invocation_counters[(function, outcome)] = counter
        counter.inc()
        if seconds is not None:
            duration = self._duration_children.get(function)
            if duration is None:
                duration = self._duration_children[function] = self.invocation_duration.labels(function)
            duration.observe(seconds)
