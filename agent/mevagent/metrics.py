"""The agent's Prometheus metrics: every name in `metrics_names.all_metrics()`, registered in one place.

The engine, executor and risk gate call the small helpers here instead of touching prometheus_client,
so a series can only exist if `metrics_names` defines it (alert rules and dashboards rely on that).
Label children are cached: `.labels()` costs a lock and a dict build per call, too much per pool update.
Counters a part keeps anyway (the strategies' hot-path stats) are not copied on the hot path at all:
`sample` registers a reader that a collector calls when Prometheus scrapes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric as Family

from mevagent import metrics_names as names
from mevagent.core import Outcome, Status

# Stages run in tens of microseconds (one pool update) up to seconds (a builder round trip).
_LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BUCKETS = {
    names.LATENCY.name: _LATENCY_BUCKETS,
    names.ENDPOINT_LATENCY.name: _LATENCY_BUCKETS,
    names.MEVBOOST_CHECK_SECONDS.name: _LATENCY_BUCKETS,
    names.NODE_BLOCK_IMPORT.name: (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
}
CONTENT_TYPE = CONTENT_TYPE_LATEST
_SUCCESS_WINDOW = 100  # mev_execution_success_rate: share of the last 100 executions

log = logging.getLogger(__name__)


def _register(metric: names.Metric, registry: CollectorRegistry) -> Any:
    if metric.kind == "counter":
        return Counter(metric.name, metric.help, metric.labels, registry=registry)
    if metric.kind == "gauge":
        return Gauge(metric.name, metric.help, metric.labels, registry=registry)
    buckets = _BUCKETS.get(metric.name, Histogram.DEFAULT_BUCKETS)
    return Histogram(metric.name, metric.help, metric.labels, registry=registry, buckets=buckets)


class _Sampled:
    """A prometheus_client collector of every `sampled` metric: its readers are called at scrape time."""

    def __init__(self) -> None:
        self.readers: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[[], Sequence[float]]] = {}
        self.metrics = [m for m in names.all_metrics() if m.sampled]

    @staticmethod
    def _family(metric: names.Metric) -> Family:
        if metric.kind == "counter":
            return CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
        return GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)

    def describe(self) -> list[Family]:
        # Lets the registry check names at registration without calling any reader.
        return [self._family(m) for m in self.metrics]

    def collect(self) -> Iterator[Family]:
        families = {m.name: self._family(m) for m in self.metrics}
        for (metrics, labels), read in list(self.readers.items()):
            try:
                samples = list(zip(metrics, read(), strict=True))
            except Exception:
                # One broken reader must not take every other series off /metrics: only its own series
                # go missing, and the log says why.
                log.exception("metrics: reading %s for %s failed", ", ".join(metrics), "/".join(labels))
                continue
            for name, value in samples:
                families[name].add_metric(list(labels), value)
        yield from families.values()


class AgentMetrics:
    """Every agent metric on its own registry (tests and several agents in one process do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # Sampled metrics have no family to update: `child` refuses them, `sample` exports them.
        registered = [m for m in names.all_metrics() if not m.sampled]
        self._families: dict[str, Any] = {m.name: _register(m, self.registry) for m in registered}
        self._sampled = _Sampled()
        self.registry.register(self._sampled)
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._recent: dict[tuple[str, str], deque[bool]] = {}

    def child(self, metric: names.Metric, *labels: str) -> Any:
        key = (metric.name, labels)
        found = self._children.get(key)
        if found is None:
            family = self._families[metric.name]
            found = family.labels(*labels) if labels else family
            self._children[key] = found
        return found

    def sample(
        self, metrics: Sequence[names.Metric], labels: Sequence[str], read: Callable[[], Sequence[float]]
    ) -> None:
        """Export `metrics` (sampled ones) with these label values from `read()`, one value per metric in
        order, called at every scrape. A counter's reader must never go back (a restart of the process is
        the only reset Prometheus expects)."""
        values = tuple(labels)
        for metric in metrics:
            if not metric.sampled or metric.kind == "histogram":
                raise ValueError(f"{metric.name}: not a sampled counter or gauge; it has its own helper")
            if len(values) != len(metric.labels):
                raise ValueError(f"{metric.name}: labels {metric.labels} but {len(values)} value(s) given")
        taken = {(name, known) for exported, known in self._sampled.readers for name in exported}
        for metric in metrics:
            if (metric.name, values) in taken:
                raise ValueError(f"{metric.name}: {'/'.join(values)} already has a reader (it would count twice)")
        self._sampled.readers[(tuple(m.name for m in metrics), values)] = read

    def render(self) -> bytes:
        """The text exposition of every metric (what /metrics serves)."""
        return generate_latest(self.registry)

    # The engine
    def stage(self, chain: str, stage: str, elapsed_ns: int) -> None:
        self.child(names.LATENCY, chain, stage).observe(elapsed_ns / 1e9)

    def queue_depth(self, queue: str, depth: int) -> None:
        self.child(names.QUEUE_DEPTH, queue).set(depth)

    def queue_dropped(self, queue: str, reason: str, count: int = 1) -> None:
        self.child(names.QUEUE_DROPPED, queue, reason).inc(count)

    def opportunity_found(self, chain: str, strategy: str, count: int = 1) -> None:
        self.child(names.OPPORTUNITIES_FOUND, chain, strategy).inc(count)

    # The executor
    def outcome(self, outcome: Outcome) -> None:
        opp = outcome.opportunity
        chain, strategy = opp.chain, opp.strategy
        if outcome.status is Status.REJECTED:
            return  # the risk gate counts its refusals (mev_risk_rejections)
        self.child(names.EXECUTIONS, chain, strategy, outcome.status.value).inc()
        if outcome.status is Status.DRY_RUN:
            return  # nothing was spent or earned: dry runs stay out of money and success-rate series
        if outcome.status is Status.LANDED and outcome.realized_profit_usd > 0:
            self.child(names.PROFIT_TOTAL, chain, strategy).inc(outcome.realized_profit_usd)
        if outcome.gas_cost_usd > 0:
            self.child(names.GAS_COSTS, chain, strategy).inc(outcome.gas_cost_usd)
        window = self._recent.setdefault((chain, strategy), deque(maxlen=_SUCCESS_WINDOW))
        window.append(outcome.status is Status.LANDED)
        self.child(names.EXECUTION_SUCCESS_RATE, chain, strategy).set(sum(window) / len(window))

    def endpoint(self, chain: str, endpoint: str, seconds: float | None, status: str, ok: bool) -> None:
        """One submission to one builder/relay: `status` is the HTTP code, "timeout" or "error"."""
        if seconds is not None:
            self.child(names.ENDPOINT_LATENCY, chain, endpoint).observe(seconds)
        self.child(names.ENDPOINT_REQUESTS, chain, endpoint, status).inc()
        self.child(names.ENDPOINT_UP, chain, endpoint).set(1 if ok else 0)

    def endpoint_result(self, chain: str, result: Any) -> None:
        """One executor.bundles.EndpointResult, as RelayStatus records it (its `observer`)."""
        self.endpoint(chain, result.endpoint, result.latency_s, result.status, result.accepted)

    def mev_boost(self, chain: str, status: str, seconds: float, consecutive_failures: int) -> None:
        """One mev-boost status check (executor.mevboost): `status` is ok, no_relays, error or timeout."""
        self.child(names.MEVBOOST_CHECK_SECONDS, chain).observe(seconds)
        self.child(names.MEVBOOST_CHECKS, chain, status).inc()
        self.child(names.MEVBOOST_UP, chain).set(1 if status == "ok" else 0)
        self.child(names.MEVBOOST_CONSECUTIVE_FAILURES, chain).set(consecutive_failures)

    # The collector and pool store
    def reorg(self, chain: str) -> None:
        self.child(names.REORGS, chain).inc()

    def pool_state_age(self, chain: str, seconds: float) -> None:
        self.child(names.POOL_STATE_AGE, chain).set(seconds)

    def node(self, chain: str, *, up: bool, head_lag_s: float | None = None, peers: int | None = None) -> None:
        self.child(names.NODE_UP, chain).set(1 if up else 0)
        if head_lag_s is not None:
            self.child(names.NODE_HEAD_LAG, chain).set(head_lag_s)
        if peers is not None:
            self.child(names.NODE_PEERS, chain).set(peers)

    def block_import(self, chain: str, seconds: float) -> None:
        self.child(names.NODE_BLOCK_IMPORT, chain).observe(seconds)

    def ready(self, chain: str, ready: bool) -> None:
        self.child(names.AGENT_READY, chain).set(1 if ready else 0)

    # The risk gate
    def risk_rejection(self, chain: str, limit: str) -> None:
        self.child(names.RISK_REJECTIONS, chain, limit).inc()

    def exposure(self, chain: str, usd: float) -> None:
        self.child(names.RISK_EXPOSURE, chain).set(usd)

    def daily_pnl(self, chain: str, usd: float) -> None:
        self.child(names.DAILY_PNL, chain).set(usd)

    def drawdown(self, usd: float) -> None:
        self.child(names.RISK_DRAWDOWN).set(usd)

    def consecutive_failures(self, chain: str, count: int) -> None:
        self.child(names.CONSECUTIVE_FAILED_EXECUTIONS, chain).set(count)

    def breaker(self, chain: str, state: int) -> None:
        self.child(names.CIRCUIT_BREAKER_STATE, chain).set(state)

    def emergency_stop(self, engaged: bool) -> None:
        self.child(names.EMERGENCY_STOP).set(1 if engaged else 0)

    def strategy_paused(self, strategy: str, paused: bool) -> None:
        self.child(names.STRATEGY_PAUSED, strategy).set(1 if paused else 0)

    def daily_profit_target(self, usd: float) -> None:
        self.child(names.DAILY_PROFIT_TARGET).set(usd)

    def value(self, metric: names.Metric, *labels: str, suffix: str = "") -> float | None:
        """A sample's current value (for /stats and tests): `suffix` picks _total, _count, _sum."""
        return self.registry.get_sample_value(metric.name + suffix, dict(zip(metric.labels, labels, strict=True)))
