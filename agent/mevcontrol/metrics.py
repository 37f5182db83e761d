"""The control plane's own Prometheus metrics (served on listen.metrics_port, scraped by Prometheus)."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from mevcontrol.crosschain import CrossChainEngine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The fill time quantiles exported per route, and where BridgeMonitor.performance() has each.
FILL_QUANTILES = (("0.5", "fill_s_p50"), ("0.9", "fill_s_p90"), ("0.99", "fill_s_p99"))


class ControlMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.committed = Counter(
            "mevcontrol_events_committed", "Bus events written to PostgreSQL, by kind.", ["kind"], registry=r
        )
        self.invalid = Counter("mevcontrol_events_invalid", "Bus entries that did not validate.", registry=r)
        self.commit_seconds = Histogram(
            "mevcontrol_batch_commit_seconds", "Seconds per batch transaction.", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )  # fmt: skip
        self.bus_lag = Gauge(
            "mevcontrol_bus_lag_seconds", "Age of the newest event of the last committed batch.", registry=r
        )
        self.bus_pending = Gauge(
            "mevcontrol_bus_pending", "Stream entries not yet committed (delivered or not).", ["stream"], registry=r
        )
        self.bus_up = Gauge("mevcontrol_bus_up", "1 while the control plane reads the bus.", registry=r)
        self.granting = Gauge(
            "mevcontrol_lease_granting", "1 while leases are granted (no stop, every limit holds).", registry=r
        )
        self.lease_expires = Gauge(
            "mevcontrol_agent_lease_expires_in_seconds",
            "Seconds until the agent's risk lease expires, as its last heartbeat said (negative: expired).",
            ["agent"],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "mevcontrol_agent_heartbeat_age_seconds", "Seconds since the agent's last heartbeat.", ["agent"], registry=r
        )
        self.emergency = Gauge("mevcontrol_emergency_stop", "1 while the fleet emergency stop is engaged.", registry=r)
        self.breaches = Gauge(
            "mevcontrol_limit_breached", "1 while a fleet limit does not hold.", ["limit"], registry=r
        )
        self.exposure = Gauge("mevcontrol_fleet_exposure_usd", "In-flight exposure across the fleet.", registry=r)
        self.daily_pnl = Gauge("mevcontrol_fleet_daily_pnl_usd", "The fleet's net since 00:00 UTC.", registry=r)
        self.crosschain_exposure = Gauge(
            "mevcontrol_crosschain_exposure_usd", "Open cross-chain positions' exposure (of the fleet's), by chain.",
            ["chain"], registry=r,
        )  # fmt: skip
        self.crosschain_positions = Gauge(
            "mevcontrol_crosschain_positions", "Cross-chain positions kept in memory, by state.", ["state"], registry=r
        )
        self.bridge_healthy = Gauge(
            "mevcontrol_crosschain_bridge_healthy",
            "1 while the bridge monitor finds the bridge healthy (no stuck transfer, fills within their band).",
            ["bridge"], registry=r,
        )  # fmt: skip
        self.bridge_stuck = Gauge(
            "mevcontrol_crosschain_bridge_stuck_transfers",
            "Deposits not filled within their route's stuck_s (or stuck_after_s), by bridge.", ["bridge"], registry=r,
        )  # fmt: skip
        # The monitor keeps each route's last 1,000 fill times, not every fill: its quantiles are exported as they
        # are (a histogram filled from them would count the same fill again on every evaluation).
        self.bridge_fill = Gauge(
            "mevcontrol_crosschain_bridge_fill_seconds",
            "Fill time of a bridge route's last 1,000 fills at a quantile (0.5, 0.9, 0.99), as the monitor has it.",
            ["bridge", "route", "quantile"], registry=r,
        )  # fmt: skip
        self.bridge_failures = Gauge(
            "mevcontrol_crosschain_bridge_failed_transfers",
            "Transfers of a bridge route that went stuck or whose relay failed, since the control plane started.",
            ["bridge", "route"], registry=r,
        )  # fmt: skip
        self.opportunities_found = Counter(
            "mevcontrol_crosschain_opportunities_found",
            "Cross-chain gaps the engine found, DEX-DEX and CEX-DEX (each pool or book update's).",
            registry=r,
        )  # fmt: skip
        self.opportunities_open = Gauge(
            "mevcontrol_crosschain_opportunities_open", "Cross-chain gaps open now (as GET :8906/opportunities lists).",
            registry=r,
        )  # fmt: skip
        self._found_seen = 0
        self.rebalance_moves = Gauge(
            "mevcontrol_crosschain_rebalance_moves", "Bridge moves the rebalancing planner advises now, by asset.",
            ["asset"], registry=r,
        )  # fmt: skip
        self.history_warmed = Counter(
            "mevcontrol_history_warmed_pieces",
            "Pieces of the window routes' closed hours the warmer read before a request did (mevcontrol.warm).",
            registry=r,
        )
        self.history_warm_seconds = Counter(
            "mevcontrol_history_warm_seconds", "Seconds the warmer held a pool connection reading them.", registry=r
        )
        self.requests = Counter(
            "mevcontrol_http_requests", "Operator API requests by listener and status.", ["listener", "status"],
            registry=r,
        )  # fmt: skip

    def crosschain_bridges(self, engine: CrossChainEngine, now: float) -> None:
        """Each bridge's health and stuck transfers, each route's fill time quantiles and failures, the gaps the
        engine found and holds open, and the moves the rebalancing planner advises per asset."""
        stuck = collections.Counter(row["bridge"] for row in engine.monitor.pending_rows(now) if row["stuck"])
        for bridge in engine.registry.catalog.bridges:
            self.bridge_healthy.labels(bridge).set(0 if bridge in engine.monitor.unhealthy else 1)
            self.bridge_stuck.labels(bridge).set(stuck.get(bridge, 0))
        for row in engine.monitor.performance():
            bridge = row["route"].split("@", 1)[0]
            self.bridge_failures.labels(bridge, row["route"]).set(row["failures"])
            for quantile, key in FILL_QUANTILES:
                if row[key] is not None:  # before a route's first fill: no series rather than a made-up 0
                    self.bridge_fill.labels(bridge, row["route"], quantile).set(row[key])
        # The engine counts what it found; the counter takes what it added since the last look.
        found = engine.stats.found + engine.stats.cex_found
        if found > self._found_seen:
            self.opportunities_found.inc(found - self._found_seen)
        self._found_seen = found
        self.opportunities_open.set(len(engine.current()) + len(engine.current_cex()))
        if engine.rebalancer is not None:
            moves = collections.Counter(move.asset for move in engine.rebalance_plan().moves)
            for asset in engine.rebalancer.assets():
                self.rebalance_moves.labels(asset).set(moves.get(asset, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
