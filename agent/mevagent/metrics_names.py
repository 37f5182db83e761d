"""Every Prometheus metric the agent exports, defined once.

The agent registers its collectors from this table, and the fleet's alert rules and dashboards
(`dashboards/`) may use only the series it defines: `tests/unit/test_rules.py` fails on any `mev_*`
name that is not here. The five names searchers' operators know (`mev_profit_total`,
`mev_opportunities_found`, `mev_execution_success_rate`, `mev_gas_costs`, `mev_latency`) are kept as
they are. Money is in USD, time in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str  # as registered with prometheus_client
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    # Read at scrape time from counters a part keeps anyway (mevagent.metrics.AgentMetrics.sample):
    # the hot path pays nothing for it, and no helper can update it.
    sampled: bool = False

    @property
    def series(self) -> tuple[str, ...]:
        """The names Prometheus stores: prometheus_client exposes a counter as <name>_total (once)."""
        if self.kind == "counter":
            return (self.name if self.name.endswith("_total") else f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return (self.name,)


PROFIT_TOTAL = Metric("mev_profit_total", "counter", "Gross profit of landed executions, USD.", ("chain", "strategy"))
OPPORTUNITIES_FOUND = Metric(
    "mev_opportunities_found", "counter", "Opportunities the strategies found.", ("chain", "strategy")
)
EXECUTION_SUCCESS_RATE = Metric(
    "mev_execution_success_rate",
    "gauge",
    "Share of the last 100 executions that landed (0-1).",
    ("chain", "strategy"),
)
GAS_COSTS = Metric(
    "mev_gas_costs", "counter", "Gas (and builder tips) paid for executions, USD.", ("chain", "strategy")
)
LATENCY = Metric(
    "mev_latency",
    "histogram",
    "Seconds per pipeline stage; stage=network is the round trip to the node, builders and relays.",
    ("chain", "stage"),
)
EXECUTIONS = Metric(
    "mev_executions", "counter", "Executions by outcome (landed, failed, reverted).", ("chain", "strategy", "outcome")
)
CONSECUTIVE_FAILED_EXECUTIONS = Metric(
    "mev_consecutive_failed_executions", "gauge", "Failed executions since the last one that landed.", ("chain",)
)
DAILY_PNL = Metric(
    "mev_daily_pnl_usd", "gauge", "Net profit (profit - gas) since 00:00 UTC, USD; negative is a loss.", ("chain",)
)
DAILY_PROFIT_TARGET = Metric("mev_daily_profit_target_usd", "gauge", "The configured daily profit target, USD.", ())
EMERGENCY_STOP = Metric("mev_emergency_stop", "gauge", "1 while the emergency stop is engaged: nothing executes.", ())
AGENT_READY = Metric(
    "mev_agent_ready", "gauge", "1 when collectors are subscribed and the risk gate is armed.", ("chain",)
)
NODE_UP = Metric("mev_node_up", "gauge", "1 when the co-located node answers JSON-RPC.", ("chain",))
NODE_HEAD_LAG = Metric(
    "mev_node_head_lag_seconds",
    "gauge",
    "Now minus the timestamp of the node's latest head: the same meaning on every chain.",
    ("chain",),
)
NODE_PEERS = Metric("mev_node_peers", "gauge", "Peers the co-located node reports.", ("chain",))
NODE_BLOCK_IMPORT = Metric(
    "mev_node_block_import_seconds", "histogram", "Seconds from a head's timestamp to the agent seeing it.", ("chain",)
)

# Pipeline health: queues, pool state, reorgs (lag counters instead of silent drops).
QUEUE_DEPTH = Metric("mev_queue_depth", "gauge", "Items waiting in a pipeline queue.", ("queue",))
QUEUE_DROPPED = Metric(
    "mev_queue_dropped",
    "counter",
    "Items a full queue dropped (opportunities: the oldest) or replaced by a newer one (pool updates: coalesced).",
    ("queue", "reason"),
)
POOL_STATE_AGE = Metric(
    "mev_pool_state_age_seconds", "gauge", "Seconds since the pool store last matched the node's head.", ("chain",)
)
REORGS = Metric("mev_reorgs", "counter", "Reorgs detected by parent hash and rolled back.", ("chain",))
# Submission: per builder/relay endpoint (mev-boost's relay_latency / relay_status_code_total).
ENDPOINT_LATENCY = Metric(
    "mev_endpoint_latency_seconds", "histogram", "Round trip of one submission to one endpoint.", ("chain", "endpoint")
)
ENDPOINT_REQUESTS = Metric(
    "mev_endpoint_requests",
    "counter",
    "Submissions per endpoint by result: the HTTP status code, timeout or error.",
    ("chain", "endpoint", "status"),
)
ENDPOINT_UP = Metric(
    "mev_endpoint_up", "gauge", "1 when the endpoint's last submission got a 2xx answer in time.", ("chain", "endpoint")
)
# Risk state as the gate sees it.
# mev-boost beside the chain's beacon node, as the agent's status checks see it (mevagent.executor.mevboost).
# `mev_mevboost_`, not `mev_boost_`: that is mev-boost's own metrics namespace, which a scrape of mev-boost
# itself would bring into the same Prometheus.
MEVBOOST_UP = Metric(
    "mev_mevboost_up",
    "gauge",
    "1 when mev-boost's last status check got a 200 in time (with -relay-check: at least one relay answered).",
    ("chain",),
)
MEVBOOST_CHECKS = Metric(
    "mev_mevboost_checks",
    "counter",
    "mev-boost status checks by result: ok, no_relays (503), error, timeout.",
    ("chain", "status"),
)
MEVBOOST_CHECK_SECONDS = Metric(
    "mev_mevboost_check_seconds", "histogram", "Round trip of one mev-boost status check.", ("chain",)
)
MEVBOOST_CONSECUTIVE_FAILURES = Metric(
    "mev_mevboost_consecutive_failures", "gauge", "mev-boost status checks that failed since the last 200.", ("chain",)
)
RISK_EXPOSURE = Metric(
    "mev_risk_exposure_usd", "gauge", "Notional in flight (reserved by the risk gate), USD.", ("chain",)
)
RISK_DRAWDOWN = Metric("mev_risk_drawdown_usd", "gauge", "Peak equity minus current equity, USD.", ())
RISK_REJECTIONS = Metric(
    "mev_risk_rejections",
    "counter",
    "Opportunities the risk gate refused, by the limit that refused them.",
    ("chain", "limit"),
)
CIRCUIT_BREAKER_STATE = Metric(
    "mev_circuit_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open (probing), 2 open.", ("chain",)
)
STRATEGY_PAUSED = Metric("mev_strategy_paused", "gauge", "1 while a strategy is paused through the API.", ("strategy",))
# Hot-path counters of the swap-cycle strategies, sampled at scrape time; a strategy plug-in declares
# which of them it keeps (StrategyPlugin.counters), and may declare counters of its own in its own module
# (all_metrics() adds them). What they emitted is mev_opportunities_found (counted by the engine).
_STRATEGY = ("chain", "strategy")
STRATEGY_POOL_UPDATES = Metric(
    "mev_strategy_pool_updates", "counter", "Pool updates a strategy re-rated its cycles for.", _STRATEGY, sampled=True
)
STRATEGY_CYCLES_CHECKED = Metric(
    "mev_strategy_cycles_checked", "counter", "Cycles the rate pre-filter evaluated.", _STRATEGY, sampled=True
)
STRATEGY_CYCLES_BOUNDED = Metric(
    "mev_strategy_cycles_bounded",
    "counter",
    "Cycles that passed the rate pre-filter and were priced for a profit bound.",
    _STRATEGY,
    sampled=True,
)
STRATEGY_CYCLES_SIZED = Metric(
    "mev_strategy_cycles_sized", "counter", "Cycles whose profit bound passed, sized exactly.", _STRATEGY, sampled=True
)
STRATEGY_UNPROFITABLE = Metric(
    "mev_strategy_unprofitable",
    "counter",
    "Sized cycles where no size cleared the minimum profit.",
    _STRATEGY,
    sampled=True,
)
STRATEGY_VERIFY_MISMATCHES = Metric(
    "mev_strategy_verify_mismatches",
    "counter",
    "Sized cycles the independent re-simulation disagreed with (never emitted): should stay at 0.",
    _STRATEGY,
    sampled=True,
)
STRATEGY_SEARCHED = Metric(
    "mev_strategy_searched",
    "counter",
    "V3 cycles whose segment walk passed 64 tick crossings and were sized by the slower concavity search.",
    _STRATEGY,
    sampled=True,
)
STRATEGY_UNPRICED = Metric(
    "mev_strategy_unpriced",
    "counter",
    "Cycles skipped because a token or gas had no USD price at the time.",
    _STRATEGY,
    sampled=True,
)
STRATEGY_COUNTERS: tuple[Metric, ...] = (
    STRATEGY_POOL_UPDATES,
    STRATEGY_CYCLES_CHECKED,
    STRATEGY_CYCLES_BOUNDED,
    STRATEGY_CYCLES_SIZED,
    STRATEGY_UNPROFITABLE,
    STRATEGY_VERIFY_MISMATCHES,
    STRATEGY_SEARCHED,
    STRATEGY_UNPRICED,
)

# MEV analytics (mevagent.analytics): detection and protection only, never acted on.
PENDING_SWAPS = Metric(
    "mev_pending_swaps",
    "counter",
    "Pending transactions the sandwich detector read, by outcome (not_router, undecoded, unknown_pool, scored).",
    ("chain", "outcome"),
)
SANDWICHABLE_SWAPS = Metric(
    "mev_sandwichable_swaps",
    "counter",
    "Scored pending swaps an optimal sandwich would profit from (risk signals; never acted on).",
    ("chain",),
)
EXECUTION_EXPOSURE = Metric(
    "mev_execution_sandwich_exposure_usd",
    "counter",
    "What optimal sandwiches could have taken from our executions had they gone to the public mempool (USD).",
    ("chain",),
)
PENDING_BODIES = Metric(
    "mev_pending_bodies",
    "counter",
    "Pending transaction bodies the sandwich detector asked the node for, by outcome "
    "(fetched, coalesced, dropped, missing, failed).",
    ("chain", "outcome"),
)
BLOCK_MEV = Metric(
    "mev_block_mev_detected",
    "counter",
    "MEV the block classifier found, by kind (sandwich, arbitrage, liquidation, jit).",
    ("chain", "kind"),
)

METRICS: tuple[Metric, ...] = (
    PROFIT_TOTAL,
    OPPORTUNITIES_FOUND,
    EXECUTION_SUCCESS_RATE,
    GAS_COSTS,
    LATENCY,
    EXECUTIONS,
    CONSECUTIVE_FAILED_EXECUTIONS,
    DAILY_PNL,
    DAILY_PROFIT_TARGET,
    EMERGENCY_STOP,
    AGENT_READY,
    NODE_UP,
    NODE_HEAD_LAG,
    NODE_PEERS,
    NODE_BLOCK_IMPORT,
    QUEUE_DEPTH,
    QUEUE_DROPPED,
    POOL_STATE_AGE,
    REORGS,
    ENDPOINT_LATENCY,
    ENDPOINT_REQUESTS,
    ENDPOINT_UP,
    MEVBOOST_UP,
    MEVBOOST_CHECKS,
    MEVBOOST_CHECK_SECONDS,
    MEVBOOST_CONSECUTIVE_FAILURES,
    RISK_EXPOSURE,
    RISK_DRAWDOWN,
    RISK_REJECTIONS,
    CIRCUIT_BREAKER_STATE,
    STRATEGY_PAUSED,
    *STRATEGY_COUNTERS,
    PENDING_SWAPS,
    SANDWICHABLE_SWAPS,
    BLOCK_MEV,
    EXECUTION_EXPOSURE,
    PENDING_BODIES,
)


def all_metrics() -> tuple[Metric, ...]:
    """METRICS plus every counter an installed strategy plug-in declares (each name once)."""
    from mevagent.strategies import plugins  # plug-ins import this module: resolved when called

    known = {m.name for m in METRICS}
    extra: dict[str, Metric] = {}
    for plugin in plugins().values():
        for metric in plugin.counters:
            if metric.name not in known:
                extra.setdefault(metric.name, metric)
    return (*METRICS, *extra.values())


def series_names() -> set[str]:
    """Every series name the agent exports, as rules and dashboards must spell them."""
    return {s for m in all_metrics() for s in m.series}
