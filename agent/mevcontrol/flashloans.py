"""The fleet's flashloan view on :8903 (the port the catalog plans for the Flashloan Monitor), in the shape of
an agent's own answers (mevagent.api.providers, mevagent.engine.recent), with the agent that said it:

- `GET /providers/status`: every agent's flashloan providers as its last `providers_status` event said
  (mevagent.bus.link publishes one every PROVIDERS_EVERY_S, best effort, off the hot path). The control
  plane keeps the newest report per agent in memory, by the agent's clock: it is a snapshot the agents
  repeat, not history, so a restarted control plane has it again within seconds. Each entry adds `agent`
  and `reported_age_s`; a provider whose agent has not reported for STALE_S is unhealthy, its detail
  saying so (its figures are the last known ones).
- `GET /opportunities`: the fleet's opportunities found in the last `hours` (PostgreSQL, from
  `opportunity_found`), newest first, each with its latest committed outcome (`pending` until one is).

Amounts are decimal strings in base units, as the agents answer them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from mevagent.bus.events import Event, ProvidersStatus

STALE_S = 30.0  # six missed reports (PROVIDERS_EVERY_S = 5 s): the agent or the bus is away
NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class ProvidersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: str | None = Field(default=None, pattern=NAME)


class OpportunitiesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24
    chain: str | None = Field(default=None, pattern=NAME)
    strategy: str | None = Field(default=None, pattern=NAME)
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class FleetProviders:
    """The newest `providers_status` of each agent (Control.on_events calls `seen` after each commit)."""

    def __init__(self) -> None:
        self.reports: dict[str, ProvidersStatus] = {}

    def seen(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, ProvidersStatus):
                known = self.reports.get(event.agent)
                if known is None or known.at <= event.at:
                    self.reports[event.agent] = event

    def status(self, query: ProvidersQuery, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        out = []
        for agent in sorted(self.reports):
            report = self.reports[agent]
            age = max(0.0, now - report.at)
            for provider in report.providers:
                if query.chain is not None and provider.chain != query.chain:
                    continue
                entry = {"agent": agent, "reported_age_s": age, **provider.model_dump(mode="json")}
                if age > STALE_S:
                    entry["healthy"] = False
                    entry["detail"] = f"agent {agent} silent for {age:.0f} s (last: {provider.detail})"
                out.append(entry)
        return {"providers": out}


OPPORTUNITIES = """
    SELECT o.agent, o.chain, o.strategy, o.opportunity_id AS id, o.block, o.token, o.amount_in::text AS amount_in,
           o.amount_out::text AS amount_out, o.gas_limit::text AS gas_limit, o.gas_price_wei::text AS gas_price,
           o.builder_payment_wei::text AS builder_payment, o.notional_usd::float8 AS notional_usd,
           o.profit_usd::float8 AS profit_usd, o.gas_cost_usd::float8 AS gas_cost_usd,
           (o.profit_usd - o.gas_cost_usd)::float8 AS net_profit_usd, o.hops, o.pools, o.liquidated_user,
           extract(epoch FROM o.found_at)::float8 AS found_at, coalesce(r.status, 'pending') AS status,
           r.realized_profit::text AS realized_profit, r.realized_profit_usd::float8 AS realized_profit_usd,
           r.tx_hashes, r.included_block, r.reason
    FROM opportunities o
    LEFT JOIN LATERAL (
        SELECT status, realized_profit, realized_profit_usd, tx_hashes, included_block, reason FROM outcomes
        WHERE outcomes.agent = o.agent AND outcomes.opportunity_id = o.opportunity_id
        ORDER BY outcomes.at DESC LIMIT 1
    ) r ON true
    WHERE o.found_at >= $1 AND ($2::text IS NULL OR o.chain = $2) AND ($3::text IS NULL OR o.strategy = $3)
    ORDER BY o.found_at DESC LIMIT $4
"""


async def opportunities(pool: asyncpg.Pool, query: OpportunitiesQuery) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    async with pool.acquire() as conn:
        rows = await conn.fetch(OPPORTUNITIES, since, query.chain, query.strategy, query.limit)
    return {"opportunities": [dict(r) for r in rows]}
