"""Prometheus metrics of one platform process, on a registry owned by the process (not global).

Every component gets the same `Metrics` object; `/metrics` renders `metrics.registry`.
The per-request series are updated through `request_done` and `invocation_done`, which keep the
labelled children: `labels()` takes a lock and hashes its labels on every call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

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
        self.telemetry = TelemetryMetrics(r)
        self.log_lines_dropped = Counter(
            "fnplat_log_lines_dropped",
            "Function output lines dropped before the log",
            ["function", "reason"],
            registry=r,
        )  # reason: rate_limit (the function's budget) | backlog (the loop did not keep up)
        self._runtime_api = _RuntimeApiCollector()
        r.register(self._runtime_api)
        self.engine_resyncs = Counter(
            "fnplat_engine_resyncs",
            "Times the controller re-checked its tasks after Docker's event stream broke",
            registry=r,
        )
        self.tasks_found_dead = Counter(
            "fnplat_tasks_found_dead",
            "Tasks whose container died while Docker's events were missed (found by a re-check)",
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

    def watch_runtime_api(self, figures: RuntimeApiFigures) -> None:
        """Report the Runtime API server's figures (read at scrape time, never on its hot path)."""
        self._runtime_api.figures = figures

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

    def forget_function(self, function: str) -> None:
        """Drop every series of a removed function: its label sets in each metric labelled by
        `function` (whoever declared it on this object) and the children cached here."""
        for owner in (self, self.telemetry):
            for metric in vars(owner).values():
                if isinstance(metric, MetricWrapperBase) and "function" in _label_names(metric):
                    metric.remove_by_labels({"function": function})
        self.telemetry.forget_function(function)
        for key in [k for k in self._invocation_counters if k[0] == function]:
            del self._invocation_counters[key]
        self._duration_children.pop(function, None)


_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class TelemetryMetrics:
    """The recorder (fnplat/recorder.py) and the housekeeping job (fnplat/housekeeping.py)."""

    def __init__(self, r: CollectorRegistry) -> None:
        # Gauges read by callbacks at scrape time (Gauge.set_function): nothing on the hot path.
        self.backlog = Gauge(
            "fnplat_recorder_backlog", "Rows held in memory, waiting for the store", ["kind"], registry=r
        )  # kind: records | lines
        self.journal_bytes = Gauge(
            "fnplat_recorder_journal_bytes", "Bytes of the telemetry journal waiting for replay", registry=r
        )
        self.write_duration = Histogram(
            "fnplat_recorder_write_duration_seconds",
            "One transaction of records and lines",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        self.write_failures = Counter(
            "fnplat_recorder_write_failures", "Failed telemetry transactions", ["reason"], registry=r
        )  # reason: unavailable (retried) | timeout (retried after it ends) | row (batch split)
        self.rejected_rows = Counter(
            "fnplat_recorder_rejected_rows",
            "Rows the store refused for their values, kept in journal/rejected.jsonl",
            ["function", "kind"],
            registry=r,
        )
        self.dropped_lines = Counter(
            "fnplat_recorder_dropped_lines",
            "Output lines dropped past the log backlog bound",
            ["function"],
            registry=r,
        )
        self.spilled_records = Counter(
            "fnplat_recorder_spilled_records", "Invocation records written to the journal", registry=r
        )
        self.replayed_rows = Counter(
            "fnplat_recorder_replayed_rows", "Journal entries written to the store", registry=r
        )
        self.retention_deleted = Counter(
            "fnplat_retention_deleted_rows", "Rows deleted by retention", ["table", "reason"], registry=r
        )  # reason: age | cap
        self.gc_removed = Counter(
            "fnplat_gc_removed", "Unreferenced things removed", ["kind"], registry=r
        )  # kind: artifact | code_dir | image | temp
        self.housekeeping_runs = Counter(
            "fnplat_housekeeping_runs", "Retention and GC runs", ["outcome"], registry=r
        )  # outcome: ok | failed | skipped (another process holds the lock)
        self.housekeeping_last_success = Gauge(
            "fnplat_housekeeping_last_success_timestamp_seconds",
            "When retention and GC last completed",
            registry=r,
        )
        self._dropped_children: dict[str, Any] = {}

    def line_dropped(self, function: str) -> None:
        child = self._dropped_children.get(function)
        if child is None:
            child = self._dropped_children[function] = self.dropped_lines.labels(function)
        child.inc()

    def forget_function(self, function: str) -> None:
        self._dropped_children.pop(function, None)


class RuntimeApiFigures(Protocol):
    """What the Runtime API server reports (controller/runtime_http.py's HttpServer)."""

    def buffered_bytes(self) -> Mapping[str, int]: ...

    def connections_refused(self) -> Mapping[str, int]: ...

    def read_pauses(self) -> Mapping[str, int]: ...


class _RuntimeApiCollector:
    def __init__(self) -> None:
        self.figures: RuntimeApiFigures | None = None

    def collect(self) -> Iterator[Metric]:
        buffered = GaugeMetricFamily(
            "fnplat_runtime_api_buffered_bytes",
            "Bytes the Runtime API holds for tasks: request bodies not answered, input not parsed,"
            " replies not sent",
            labels=["kind"],
        )
        refused = CounterMetricFamily(
            "fnplat_runtime_api_connections_refused",
            "Runtime API connections closed unserved: over the per-task limit, malformed, head too large",
            labels=["reason"],
        )
        pauses = CounterMetricFamily(
            "fnplat_runtime_api_read_pauses",
            "Times the Runtime API stopped reading a connection, by the limit it reached",
            labels=["reason"],
        )
        figures = self.figures
        if figures is not None:
            for kind, value in figures.buffered_bytes().items():
                buffered.add_metric([kind], value)
            for reason, count in figures.connections_refused().items():
                refused.add_metric([reason], count)
            for reason, count in figures.read_pauses().items():
                pauses.add_metric([reason], count)
        yield buffered
        yield refused
        yield pauses


def _label_names(metric: MetricWrapperBase) -> tuple[str, ...]:
    # prometheus_client keeps them without a public accessor; remove_by_labels reads the same.
    return tuple(getattr(metric, "_labelnames", ()))
