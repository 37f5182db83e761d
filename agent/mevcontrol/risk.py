"""Fleet-wide risk from the committed events: exposure, daily P&L, the limits, and the risk lease.

Exposure is the sum of each agent's last exposure snapshot (an agent that stopped reporting keeps its
last figure: the conservative reading). Daily P&L is the sum of the UTC day's live outcomes (landed,
reverted, failed: realized profit minus gas, USD as valued with the price each event carries), per chain,
per strategy and for the fleet. The lease loop grants every agent a lease for `lease_ttl_s`, several
times per TTL, only while no emergency stop is engaged and every limit holds; otherwise it grants
nothing and the agents' leases run out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from mevcontrol.config import FleetLimits

LIVE_STATUSES = ("landed", "reverted", "failed")


@dataclass
class FleetRisk:
    total_usd: Decimal = Decimal(0)
    by_chain: dict[str, Decimal] = field(default_factory=dict)
    by_token: dict[str, Decimal] = field(default_factory=dict)
    by_agent: dict[str, Decimal] = field(default_factory=dict)
    daily_net_usd: Decimal = Decimal(0)
    daily_by_chain: dict[str, Decimal] = field(default_factory=dict)
    daily_by_strategy: dict[str, Decimal] = field(default_factory=dict)
    losses_in_a_row: int = 0
    # Of total_usd and by_chain: the open cross-chain positions (mevcontrol.positions), per chain.
    crosschain_by_chain: dict[str, Decimal] = field(default_factory=dict)

    def add_positions(self, by_chain: dict[str, Decimal]) -> None:
        """Count the open cross-chain positions' exposure (legs in flight, filled legs not unwound) in."""
        self.crosschain_by_chain = dict(by_chain)
        for chain, usd in by_chain.items():
            self.total_usd += usd
            self.by_chain[chain] = self.by_chain.get(chain, Decimal(0)) + usd

    @property
    def crosschain_usd(self) -> Decimal:
        return sum(self.crosschain_by_chain.values(), Decimal(0))

    def breaches(self, limits: FleetLimits) -> list[str]:
        """Each limit that does not hold, with its numbers; [] when all hold."""
        out = []
        if self.total_usd > Decimal(repr(limits.max_total_exposure_usd)):
            out.append(f"max_total_exposure: {self.total_usd} > {limits.max_total_exposure_usd} USD in flight")
        if -self.daily_net_usd > Decimal(repr(limits.daily_limit_usd)):
            out.append(f"daily_limit: the fleet lost {-self.daily_net_usd} > {limits.daily_limit_usd} USD today")
        if self.losses_in_a_row >= limits.consecutive_losses:
            out.append(f"consecutive_losses: {self.losses_in_a_row} losing executions in a row")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "total_usd": str(self.total_usd),
            "by_chain": {k: str(v) for k, v in sorted(self.by_chain.items())},
            "by_token": {k: str(v) for k, v in sorted(self.by_token.items())},
            "by_agent": {k: str(v) for k, v in sorted(self.by_agent.items())},
            "daily_net_usd": str(self.daily_net_usd),
            "daily_by_chain": {k: str(v) for k, v in sorted(self.daily_by_chain.items())},
            "daily_by_strategy": {k: str(v) for k, v in sorted(self.daily_by_strategy.items())},
            "losses_in_a_row": self.losses_in_a_row,
            "crosschain_usd": str(self.crosschain_usd),
            "crosschain_by_chain": {k: str(v) for k, v in sorted(self.crosschain_by_chain.items())},
        }


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


async def fleet_risk(conn: asyncpg.Connection, consecutive: int, now: dt.datetime | None = None) -> FleetRisk:
    now = now or dt.datetime.now(dt.UTC)
    day = dt.datetime.combine(now.date(), dt.time(), dt.UTC)
    risk = FleetRisk()
    for row in await conn.fetch("SELECT name, exposure_total_usd, exposure_by_chain, exposure_by_token FROM agents"):
        total = _dec(row["exposure_total_usd"])
        risk.total_usd += total
        risk.by_agent[row["name"]] = total
        for table, column in ((risk.by_chain, "exposure_by_chain"), (risk.by_token, "exposure_by_token")):
            for key, value in _load(row[column]).items():
                table[key] = table.get(key, Decimal(0)) + _dec(value)
    rows = await conn.fetch(
        """SELECT chain, strategy, sum(realized_profit_usd - gas_cost_usd) AS net FROM outcomes
           WHERE settled_at >= $1 AND status = ANY($2::text[]) GROUP BY chain, strategy""",
        day,
        list(LIVE_STATUSES),
    )
    for row in rows:
        net = _dec(row["net"])
        risk.daily_net_usd += net
        risk.daily_by_chain[row["chain"]] = risk.daily_by_chain.get(row["chain"], Decimal(0)) + net
        risk.daily_by_strategy[row["strategy"]] = risk.daily_by_strategy.get(row["strategy"], Decimal(0)) + net
    recent = await conn.fetch(
        """SELECT realized_profit_usd - gas_cost_usd AS net FROM outcomes WHERE status = ANY($1::text[])
           ORDER BY settled_at DESC LIMIT $2""",
        list(LIVE_STATUSES),
        consecutive,
    )
    for row in recent:
        if _dec(row["net"]) >= 0:
            break
        risk.losses_in_a_row += 1
    return risk


def _load(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        import orjson

        return orjson.loads(value)
    return dict(value or {})
