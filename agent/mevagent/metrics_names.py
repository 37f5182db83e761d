"""Every Prometheus metric the agent exports, defined once.

The agent registers its collectors from this table, and the fleet's alert rules and dashboards
(`dashboards/`) may use only the series it defines: `tests/unit/test_rules.py` fails on any `mev_*`
name that is not here. The five names the seed's operators know (`mev_profit_total`,
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
)


def series_names() -> set[str]:
    """Every series name the agent exports, as rules and dashboards must spell them."""
    return {s for m in METRICS for s in m.series}
