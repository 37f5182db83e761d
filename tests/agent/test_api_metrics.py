"""The metrics registry: every name in metrics_names is exported, once, with the helpers' semantics."""

from prometheus_client.parser import text_string_to_metric_families

from mevagent import metrics_names as names
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.metrics import AgentMetrics


def _opp(chain: str = "ethereum", strategy: str = "dex_arb") -> Opportunity:
    a, b = "0x" + "aa" * 20, "0x" + "bb" * 20
    return Opportunity(chain, strategy, 1, (Hop("0x" + "01" * 20, "v2", a, b),), 1, 2, 1, 1, 0, 1.0, 1.0, 0.1, 0)


def test_every_defined_metric_is_registered_once_with_its_kind_and_labels() -> None:
    metrics = AgentMetrics()
    for metric in names.METRICS:
        labels = tuple("x" for _ in metric.labels)
        child = metrics.child(metric, *labels)
        if metric.kind == "histogram":
            child.observe(0.001)
        elif metric.kind == "counter":
            child.inc()
        else:
            child.set(1)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    for metric in names.METRICS:
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
