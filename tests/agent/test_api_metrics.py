"""The metrics registry: every name in metrics_names is exported, once, with the helpers' semantics."""

import dataclasses
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mevagent import metrics_names as names
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.metrics import AgentMetrics
from mevagent.strategies.dex_arb import COUNTERS as DEX_ARB_COUNTERS
from mevagent.strategies.dex_arb import DexArbStats


def _opp(chain: str = "ethereum", strategy: str = "dex_arb") -> Opportunity:
    a, b = "0x" + "aa" * 20, "0x" + "bb" * 20
    return Opportunity(chain, strategy, 1, (Hop("0x" + "01" * 20, "v2", a, b),), 1, 2, 1, 1, 0, 1.0, 1.0, 0.1, 0)


def test_every_defined_metric_is_registered_once_with_its_kind_and_labels() -> None:
    metrics = AgentMetrics()
    for metric in names.all_metrics():  # plug-ins declare theirs in their own modules
        labels = tuple("x" for _ in metric.labels)
        if metric.sampled:
            metrics.sample([metric], labels, lambda: [1])
            continue
        child = metrics.child(metric, *labels)
        if metric.kind == "histogram":
            child.observe(0.001)
        elif metric.kind == "counter":
            child.inc()
        else:
            child.set(1)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    for metric in names.all_metrics():  # plug-ins declare theirs in their own modules
        family_name = metric.name.removesuffix("_total") if metric.kind == "counter" else metric.name
        family = families[family_name]
        assert family.type == metric.kind, metric.name
        samples = {s.name for s in family.samples}
        assert set(metric.series) <= samples, (metric.name, samples)
        for sample in family.samples:
            if sample.name in metric.series:
                assert set(sample.labels) - {"le"} == set(metric.labels), metric.name
    exported = {s.name for f in families.values() for s in f.samples if s.name.startswith("mev_")}
    # _created samples are prometheus_client's own bookkeeping, not series the rules may use.
    assert {n for n in exported if not n.endswith("_created")} == names.series_names()


def test_outcomes_feed_profit_gas_executions_and_the_success_rate() -> None:
    metrics = AgentMetrics()
    opp = _opp()
    for status, profit, gas in [
        (Status.LANDED, 12.5, 1.5),
        (Status.REVERTED, 0.0, 2.0),
        (Status.DRY_RUN, 30.0, 0.0),
        (Status.REJECTED, 0.0, 0.0),
        (Status.LANDED, 7.5, 0.5),
    ]:
        metrics.outcome(Outcome(opp, status, realized_profit_usd=profit, gas_cost_usd=gas))
    value = metrics.value
    assert value(names.PROFIT_TOTAL, "ethereum", "dex_arb") == 20.0  # landed only; dry runs earn nothing
    assert value(names.GAS_COSTS, "ethereum", "dex_arb", suffix="_total") == 4.0
    assert value(names.EXECUTIONS, "ethereum", "dex_arb", "landed", suffix="_total") == 2
    assert value(names.EXECUTIONS, "ethereum", "dex_arb", "dry_run", suffix="_total") == 1
    assert value(names.EXECUTIONS, "ethereum", "dex_arb", "rejected", suffix="_total") is None
    assert value(names.EXECUTION_SUCCESS_RATE, "ethereum", "dex_arb") == 2 / 3


def test_success_rate_is_over_the_last_100() -> None:
    metrics = AgentMetrics()
    opp = _opp()
    for _ in range(100):
        metrics.outcome(Outcome(opp, Status.FAILED))
    for _ in range(25):
        metrics.outcome(Outcome(opp, Status.LANDED))
    assert metrics.value(names.EXECUTION_SUCCESS_RATE, "ethereum", "dex_arb") == 0.25


def test_endpoint_and_pipeline_helpers() -> None:
    metrics = AgentMetrics()
    metrics.endpoint("ethereum", "flashbots", 0.120, "200", ok=True)
    metrics.endpoint("ethereum", "flashbots", None, "timeout", ok=False)
    assert metrics.value(names.ENDPOINT_LATENCY, "ethereum", "flashbots", suffix="_count") == 1
    assert metrics.value(names.ENDPOINT_REQUESTS, "ethereum", "flashbots", "timeout", suffix="_total") == 1
    assert metrics.value(names.ENDPOINT_UP, "ethereum", "flashbots") == 0
    metrics.reorg("ethereum")
    metrics.pool_state_age("ethereum", 0.4)
    metrics.node("ethereum", up=True, head_lag_s=1.5, peers=40)
    metrics.stage("ethereum", "strategy", 30_000)
    assert metrics.value(names.REORGS, "ethereum", suffix="_total") == 1
    assert metrics.value(names.POOL_STATE_AGE, "ethereum") == 0.4
    assert metrics.value(names.NODE_PEERS, "ethereum") == 40
    assert metrics.value(names.LATENCY, "ethereum", "strategy", suffix="_sum") == 30e-6
    # Two registries in one process (tests, several agents) do not collide.
    assert AgentMetrics().value(names.REORGS, "ethereum", suffix="_total") is None


def _scrape(metrics: AgentMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every mev_ sample of a scrape, as Prometheus would parse /metrics."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name.startswith("mev_")
    }


def test_strategy_counters_are_read_at_scrape_time_and_move_with_the_stats() -> None:
    metrics = AgentMetrics()
    stats = DexArbStats()
    counters = list(DEX_ARB_COUNTERS)

    def read() -> list[int]:
        return [getattr(stats, attr) for attr in DEX_ARB_COUNTERS.values()]

    metrics.sample(counters, ("base", "dex_arb"), read)
    labels = (("chain", "base"), ("strategy", "dex_arb"))
    first = _scrape(metrics)
    assert all(first[(m.series[0], labels)] == 0 for m in counters)
    # What the hot path does: plain int increments on its own dataclass, nothing else.
    stats.updates += 3
    stats.cycles_checked += 120
    stats.cycles_sized += 2
    stats.verify_mismatches += 1
    second = _scrape(metrics)
    assert second[("mev_strategy_pool_updates_total", labels)] == 3
    assert second[("mev_strategy_cycles_checked_total", labels)] == 120
    assert second[("mev_strategy_cycles_sized_total", labels)] == 2
    assert second[("mev_strategy_verify_mismatches_total", labels)] == 1
    assert second[("mev_strategy_unpriced_total", labels)] == 0
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    assert all(families[m.name] == "counter" for m in counters)
    assert metrics.value(names.STRATEGY_CYCLES_CHECKED, "base", "dex_arb", suffix="_total") == 120


def test_every_strategy_counter_reads_a_dex_arb_stats_field() -> None:
    assert set(DEX_ARB_COUNTERS) == set(names.STRATEGY_COUNTERS)
    # A renamed or removed field would leave its series off every scrape: caught here instead.
    assert set(DEX_ARB_COUNTERS.values()) <= {f.name for f in dataclasses.fields(DexArbStats)}
    assert "found" not in DEX_ARB_COUNTERS.values()  # the engine's mev_opportunities_found already counts it


def test_sampled_metrics_are_refused_where_they_would_mislead() -> None:
    metrics = AgentMetrics()
    counters = list(names.STRATEGY_COUNTERS)
    with pytest.raises(KeyError):
        metrics.child(names.STRATEGY_CYCLES_CHECKED, "base", "dex_arb")  # no helper may update it
    with pytest.raises(ValueError, match="mev_reorgs: not a sampled"):
        metrics.sample([names.REORGS], ("base",), lambda: [1])
    with pytest.raises(ValueError, match="mev_strategy_pool_updates: labels"):
        metrics.sample(counters, ("base",), lambda: [0] * len(counters))
    metrics.sample(counters, ("base", "dex_arb"), lambda: [0] * len(counters))
    with pytest.raises(ValueError, match="already has a reader"):
        metrics.sample([names.STRATEGY_UNPRICED], ("base", "dex_arb"), lambda: [0])


def test_a_broken_reader_loses_only_its_own_series(caplog: pytest.LogCaptureFixture) -> None:
    metrics = AgentMetrics()
    counters = list(names.STRATEGY_COUNTERS)

    def broken() -> list[int]:
        raise AttributeError("'DexArbStats' object has no attribute 'updates'")

    metrics.sample(counters, ("base", "dex_arb"), broken)
    metrics.sample(counters, ("ethereum", "dex_arb"), lambda: [7] * len(counters))
    metrics.sample([names.STRATEGY_UNPRICED], ("arbitrum", "dex_arb"), lambda: [1, 2])  # one value too many
    metrics.reorg("base")
    with caplog.at_level(logging.ERROR, logger="mevagent.metrics"):
        scraped = _scrape(metrics)
    assert scraped[("mev_reorgs_total", (("chain", "base"),))] == 1
    assert scraped[("mev_strategy_pool_updates_total", (("chain", "ethereum"), ("strategy", "dex_arb")))] == 7
    assert not any(dict(labels).get("chain") in {"base", "arbitrum"} for name, labels in scraped if "strategy_" in name)
    assert "has no attribute 'updates'" in caplog.text and "base/dex_arb" in caplog.text
