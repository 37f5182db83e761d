"""Grafana dashboards as code: the five dashboards searchers' operators expect, built with the official
grafana-foundation-sdk and written as JSON to dashboards/generated/ (committed; Grafana provisions them).

    .venv/bin/python dashboards/build.py          # regenerate
    tests/unit/test_dashboards.py                 # fails when the JSON is stale or a query names an
                                                  # agent series mevagent.metrics_names does not define

Agent panels use the agent's series names from mevagent.metrics_names, never spelled here by hand.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from mevagent import metrics_names as m

OUT = Path(__file__).parent / "generated"
# The uid the provisioned Prometheus datasource gets (templates/monitoring/grafana-datasources.yml.j2).
DATASOURCE = DataSourceRef(type_val="prometheus", uid="mevfleet-prometheus")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class RowSpec:
    """A row: the panels after it, up to the next row, are under its title."""

    title: str


def c(metric: m.Metric) -> str:
    """The stored series of a counter (prometheus_client adds _total)."""
    (series,) = metric.series
    return series


def bucket(metric: m.Metric) -> str:
    return f"{metric.name}_bucket"


def per_strategy(function: str, counters: dict[str, m.Metric]) -> tuple[Query, ...]:
    """One query per counter, `function` applied to its series and summed by strategy."""
    return tuple(
        Query(f"sum by (strategy) ({function.format(c(metric))})", f"{{{{strategy}}}} {label}")
        for label, metric in counters.items()
    )


def p95(metric: m.Metric, by: str, selector: str = "") -> str:
    return f"histogram_quantile(0.95, sum by ({by}, le) (rate({bucket(metric)}{selector}[5m])))"


DASHBOARDS: dict[str, tuple[str, list[PanelSpec | RowSpec]]] = {
    "mev-overview": (
        "MEV Overview",
        [
            PanelSpec(
                "Profit per hour by chain (USD)",
                "currencyUSD",
                (Query(f"sum by (chain) (increase({c(m.PROFIT_TOTAL)}[1h]))", "{{chain}}"),),
            ),
            PanelSpec(
                "Net profit today by host (USD)",
                "currencyUSD",
                (Query(f"sum by (host) ({m.DAILY_PNL.name})", "{{host}}"),),
            ),
            PanelSpec(
                "Opportunities found per minute",
                "short",
                (Query(f"sum by (chain) (rate({c(m.OPPORTUNITIES_FOUND)}[5m])) * 60", "{{chain}}"),),
            ),
            PanelSpec(
                "Execution success rate",
                "percentunit",
                (Query(f"avg by (chain) ({m.EXECUTION_SUCCESS_RATE.name})", "{{chain}}"),),
            ),
            PanelSpec(
                "Gas costs per hour (USD)",
                "currencyUSD",
                (Query(f"sum by (chain) (increase({c(m.GAS_COSTS)}[1h]))", "{{chain}}"),),
            ),
            PanelSpec(
                "Agents ready",
                "short",
                (Query(f"sum by (host) ({m.AGENT_READY.name})", "{{host}}"),),
            ),
        ],
    ),
    "chain-performance": (
        "Chain Performance",
        [
            PanelSpec("Head lag", "s", (Query(f"max by (chain) ({m.NODE_HEAD_LAG.name})", "{{chain}}"),)),
            PanelSpec("Peers", "short", (Query(f"min by (chain) ({m.NODE_PEERS.name})", "{{chain}}"),)),
            PanelSpec("Block import time p95", "s", (Query(p95(m.NODE_BLOCK_IMPORT, "chain"), "{{chain}}"),)),
            PanelSpec(
                "RPC latency p95",
                "s",
                (Query(p95(m.LATENCY, "chain", '{stage="network"}'), "{{chain}}"),),
            ),
            PanelSpec("Node answering", "short", (Query(f"min by (chain) ({m.NODE_UP.name})", "{{chain}}"),)),
            PanelSpec(
                "Client metrics endpoints up",
                "short",
                (Query('sum by (chain) (up{chain!=""})', "{{chain}}"),),
            ),
        ],
    ),
    "strategy-analysis": (
        "Strategy Analysis",
        [
            PanelSpec(
                "Opportunities per minute by strategy",
                "short",
                (Query(f"sum by (strategy) (rate({c(m.OPPORTUNITIES_FOUND)}[5m])) * 60", "{{strategy}}"),),
            ),
            PanelSpec(
                "Profit per hour by strategy (USD)",
                "currencyUSD",
                (Query(f"sum by (strategy) (increase({c(m.PROFIT_TOTAL)}[1h]))", "{{strategy}}"),),
            ),
            PanelSpec(
                "Executions per minute by outcome",
                "short",
                (Query(f"sum by (strategy, outcome) (rate({c(m.EXECUTIONS)}[5m])) * 60", "{{strategy}} {{outcome}}"),),
            ),
            PanelSpec(
                "Success rate by strategy",
                "percentunit",
                (Query(f"avg by (strategy) ({m.EXECUTION_SUCCESS_RATE.name})", "{{strategy}}"),),
            ),
            PanelSpec(
                "Pipeline latency p95 by stage",
                "s",
                (Query(p95(m.LATENCY, "stage"), "{{stage}}"),),
            ),
            PanelSpec(
                "Hot-path funnel per second (checked, bounded, sized)",
                "short",
                per_strategy(
                    "rate({}[5m])",
                    {
                        "checked": m.STRATEGY_CYCLES_CHECKED,
                        "bounded": m.STRATEGY_CYCLES_BOUNDED,
                        "sized": m.STRATEGY_CYCLES_SIZED,
                    },
                ),
            ),
            PanelSpec(
                "Sizing problems per hour (verify mismatches, search fallbacks, unpriced)",
                "short",
                per_strategy(
                    "increase({}[1h])",
                    {
                        "verify mismatches": m.STRATEGY_VERIFY_MISMATCHES,
                        "search fallbacks": m.STRATEGY_SEARCHED,
                        "unpriced": m.STRATEGY_UNPRICED,
                    },
                ),
            ),
            # MEV analytics (detection only): the sandwich detector's pending swaps, the live classifier's
            # findings, and what a sandwich could have taken from our own executions had they been public.
            PanelSpec(
                "Pending swaps scored per minute (sandwichable, by outcome)",
                "short",
                (
                    Query(f"sum by (chain, outcome) (rate({c(m.PENDING_SWAPS)}[5m])) * 60", "{{chain}} {{outcome}}"),
                    Query(f"sum by (chain) (rate({c(m.SANDWICHABLE_SWAPS)}[5m])) * 60", "{{chain}} sandwichable"),
                ),
            ),
            PanelSpec(
                "MEV found in classified blocks per hour by kind",
                "short",
                (Query(f"sum by (chain, kind) (increase({c(m.BLOCK_MEV)}[1h]))", "{{chain}} {{kind}}"),),
            ),
            PanelSpec(
                "Sandwich exposure of our executions per hour (USD)",
                "currencyUSD",
                (Query(f"sum by (chain) (increase({c(m.EXECUTION_EXPOSURE)}[1h]))", "{{chain}}"),),
            ),
        ],
    ),
    "risk-monitoring": (
        "Risk Monitoring",
        [
            PanelSpec(
                "Net profit today vs loss limit (USD)",
                "currencyUSD",
                (
                    Query(f"sum by (host) ({m.DAILY_PNL.name})", "{{host}}"),
                    Query(f"-0.1 * max by (host) ({m.DAILY_PROFIT_TARGET.name})", "{{host}} loss limit"),
                ),
            ),
            PanelSpec(
                "Consecutive failed executions",
                "short",
                (Query(f"max by (host, chain) ({m.CONSECUTIVE_FAILED_EXECUTIONS.name})", "{{host}} {{chain}}"),),
            ),
            PanelSpec(
                "Gas as a share of profit (1 h)",
                "percentunit",
                (
                    Query(
                        f"sum by (chain) (increase({c(m.GAS_COSTS)}[1h]))"
                        f" / sum by (chain) (increase({c(m.PROFIT_TOTAL)}[1h]))",
                        "{{chain}}",
                    ),
                ),
            ),
            PanelSpec("Emergency stop", "short", (Query(f"max by (host) ({m.EMERGENCY_STOP.name})", "{{host}}"),)),
            # The control plane's cross-chain position book (agent/mevcontrol/metrics.py): open exposure counts
            # against the fleet limits until unwound; a stuck position waits for an operator.
            PanelSpec(
                "Cross-chain open exposure by chain (USD)",
                "currencyUSD",
                (
                    Query("sum by (chain) (mevcontrol_crosschain_exposure_usd)", "{{chain}}"),
                    Query("max(mevcontrol_fleet_exposure_usd)", "fleet (agents and positions)"),
                ),
            ),
            PanelSpec(
                "Cross-chain positions by state",
                "short",
                (
                    Query(
                        'sum by (state) (mevcontrol_crosschain_positions{state=~"in_flight|held|unwinding|stuck"})',
                        "{{state}}",
                    ),
                ),
            ),
            # The control plane's bridge monitor and cross-chain engine (agent/mevcontrol/metrics.py
            # crosschain_bridges; the operator dashboard's Bridges view shows the same figures per route).
            RowSpec("Cross-chain bridges"),
            PanelSpec(
                "Bridge healthy (1) or avoided (0) by bridge",
                "short",
                (Query("min by (bridge) (mevcontrol_crosschain_bridge_healthy)", "{{bridge}}"),),
            ),
            PanelSpec(
                "Stuck bridge transfers by bridge",
                "short",
                (Query("sum by (bridge) (mevcontrol_crosschain_bridge_stuck_transfers)", "{{bridge}}"),),
            ),
            PanelSpec(
                "Bridge fill time p50 / p90 by route (last 1,000 fills)",
                "s",
                tuple(
                    Query(
                        f'max by (route) (mevcontrol_crosschain_bridge_fill_seconds{{quantile="{q}"}})',
                        f"{{{{route}}}} {p}",
                    )
                    for q, p in (("0.5", "p50"), ("0.9", "p90"))
                ),
            ),
            PanelSpec(
                "Failed bridge transfers since the control plane started, by route",
                "short",
                (Query("max by (route) (mevcontrol_crosschain_bridge_failed_transfers)", "{{route}}"),),
            ),
            PanelSpec(
                "Cross-chain opportunities found per minute, and open",
                "short",
                (
                    Query("sum(rate(mevcontrol_crosschain_opportunities_found_total[5m])) * 60", "found per minute"),
                    Query("sum(mevcontrol_crosschain_opportunities_open)", "open now"),
                ),
            ),
            RowSpec("Alerts"),
            PanelSpec(
                "Firing alerts",
                "short",
                (Query('count by (alertname) (ALERTS{alertstate="firing"})', "{{alertname}}"),),
            ),
        ],
    ),
    "infrastructure-health": (
        "Infrastructure Health",
        [
            PanelSpec(
                "CPU busy",
                "percentunit",
                (Query('1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "{{host}}"),),
            ),
            PanelSpec(
                "Memory used",
                "percentunit",
                (Query("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{host}}"),),
            ),
            PanelSpec(
                "Disk free",
                "percentunit",
                (
                    Query(
                        'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"}'
                        ' / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs"}',
                        "{{host}} {{mountpoint}}",
                    ),
                ),
            ),
            PanelSpec(
                "Network received / sent",
                "Bps",
                (
                    Query('sum by (host) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))', "{{host}} rx"),
                    Query('sum by (host) (rate(node_network_transmit_bytes_total{device!="lo"}[5m]))', "{{host}} tx"),
                ),
            ),
            PanelSpec("Clock offset", "s", (Query("node_timex_offset_seconds", "{{host}}"),)),
            PanelSpec("Scrape targets up", "short", (Query("sum by (job) (up)", "{{job}}"),)),
        ],
    ),
}


def build(uid: str) -> dict:
    title, panels = DASHBOARDS[uid]
    board = (
        dashboard.Dashboard(title)
        .uid(f"mevfleet-{uid}")
        .tags(["mevfleet"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .readonly()
    )
    for spec in panels:
        if isinstance(spec, RowSpec):
            board = board.with_row(dashboard.Row(spec.title))
            continue
        panel = timeseries.Panel().title(spec.title).unit(spec.unit).datasource(DATASOURCE).span(12).height(8)
        for i, q in enumerate(spec.queries):
            panel = panel.with_target(
                prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(chr(ord("A") + i))
            )
        board = board.with_panel(panel)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render(uid: str) -> str:
    return json.dumps(build(uid), indent=2, sort_keys=True) + "\n"


def queries(doc: dict) -> list[str]:
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for uid in DASHBOARDS:
        (OUT / f"{uid}.json").write_text(render(uid))
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
