"""What each view of the dashboard shows, read from the control plane's history and state.

Each view is one function of (control plane, query) → a JSON-ready dict, used both for the page's first
load (`GET /dashboard/view/{name}`) and for the live push (computed once, sent to every open page).
Every query is bounded by time or a LIMIT and reads through an index, so a page stays fast with
millions of stored rows (bench/dashboard.py measures it with 1,000,000 executions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import Field, model_validator

from mevagent.api.app import Refused
from mevcontrol.bridge_monitor import route_name
from mevcontrol.models import Body, IsoDay
from mevcontrol.operations import Operations
from mevcontrol.risk import LIVE_STATUSES
from mevcontrol.stuck import stuck_rows

FEED_LIMIT = 100
AUDIT_LIMIT = 100
POSITIONS_LIMIT = 100  # the newest cross-chain positions shown (the book keeps the open ones and 1,000 more)
BRIDGE_PENDING_LIMIT = 200  # pending transfers listed (stuck first, then the oldest); the count is of all of them
OPPORTUNITIES_LIMIT = 100  # the engine's open cross-chain gaps listed, best net first
AGENT_UP_S = 5.0  # a heartbeat older than this: the agent is shown down
AGENT_RISK_EVERY_S = 2.0  # the agents' own risk state (breakers), asked directly at most this often
# The agents' own limits the risk view shows (and its form changes on every agent through the bus).
AGENT_LIMITS = (
    "max_position_size_usd", "max_total_exposure_usd", "max_chain_exposure_usd", "max_token_exposure_usd",
    "max_daily_loss_usd", "max_drawdown_usd", "max_consecutive_failures",
)  # fmt: skip


class PnlQuery(Body):
    """UTC days, both included; today when absent."""

    start: IsoDay | None = None
    end: IsoDay | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PnlQuery:
        if self.start and self.end and self.start > self.end:
            raise ValueError("start is after end")
        if self.start and self.end and (self.end - self.start).days > 400:
            raise ValueError("start to end spans more than 400 days")
        return self


class HoursQuery(Body):
    hours: Annotated[int, Field(ge=1, le=24 * 31)] = 24


class NoQuery(Body):
    pass


def _num(value: Any) -> str:
    return "0" if value is None else str(value)


def _today() -> dt.datetime:
    return dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), dt.UTC)


def _bin_for(span: dt.timedelta) -> dt.timedelta:
    if span <= dt.timedelta(days=2):
        return dt.timedelta(minutes=5)
    if span <= dt.timedelta(days=31):
        return dt.timedelta(hours=1)
    return dt.timedelta(days=1)


async def pnl(ops: Operations, query: PnlQuery) -> dict[str, Any]:
    """Realized net (profit - gas - builder payments) per chain and strategy, gas and builder payments apart,
    and the cumulative curves (net per chain and fleet; the fleet's gas and builder payments)."""
    today = _today().date()
    first, last = query.start or today, query.end or query.start or today
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last, dt.time(), dt.UTC) + dt.timedelta(days=1)
    width = _bin_for(end - start)
    # One pass over the range's outcomes, grouped twice: per chain and strategy (the table) and per bin and
    # chain (the chart); GROUPING(t) tells the two apart.
    async with ops.control.pool.acquire() as conn:
        grouped = await conn.fetch(
            """SELECT GROUPING(t) = 0 AS binned, extract(epoch FROM t)::bigint AS t, chain, strategy,
                      count(*) AS executions, count(*) FILTER (WHERE status = 'landed') AS landed,
                      sum(realized_profit_usd) AS profit_usd, sum(gas_cost_usd - builder_paid_usd) AS gas_usd,
                      sum(builder_paid_usd) AS builder_usd, sum(realized_profit_usd - gas_cost_usd) AS net_usd
               FROM (SELECT date_bin($4, settled_at, $1) AS t, chain, strategy, status, realized_profit_usd,
                            gas_cost_usd, builder_paid_usd
                     FROM outcomes WHERE settled_at >= $1 AND settled_at < $2 AND status = ANY($3::text[])) AS o
               GROUP BY GROUPING SETS ((chain, strategy), (t, chain)) ORDER BY chain, strategy, t""",
            start, end, list(LIVE_STATUSES), width,
        )  # fmt: skip
    rows = [r for r in grouped if not r["binned"]]
    series = sorted((r for r in grouped if r["binned"]), key=lambda r: r["t"])
    by_chain: dict[str, Decimal] = {}
    by_strategy: dict[str, Decimal] = {}
    total = {"profit_usd": Decimal(0), "gas_usd": Decimal(0), "builder_usd": Decimal(0), "net_usd": Decimal(0),
             "executions": 0}  # fmt: skip
    for r in rows:
        by_chain[r["chain"]] = by_chain.get(r["chain"], Decimal(0)) + r["net_usd"]
        by_strategy[r["strategy"]] = by_strategy.get(r["strategy"], Decimal(0)) + r["net_usd"]
        for key in ("profit_usd", "gas_usd", "builder_usd", "net_usd"):
            total[key] += r[key]
        total["executions"] += r["executions"]
    return {
        "start": first.isoformat(),
        "end": last.isoformat(),
        "bin_s": int(width.total_seconds()),
        "total": {k: (v if k == "executions" else str(v)) for k, v in total.items()},
        "by_chain": {k: str(v) for k, v in sorted(by_chain.items())},
        "by_strategy": {k: str(v) for k, v in sorted(by_strategy.items())},
        "rows": [
            {
                "chain": r["chain"],
                "strategy": r["strategy"],
                "executions": r["executions"],
                "landed": r["landed"],
                "profit_usd": _num(r["profit_usd"]),
                "gas_usd": _num(r["gas_usd"]),
                "builder_usd": _num(r["builder_usd"]),
                "net_usd": _num(r["net_usd"]),
            }
            for r in rows
        ],
        # [bin start (unix s), chain, net, gas, builder payments: USD] (compact: pushed to every open page)
        "series": [
            [r["t"], r["chain"], float(r["net_usd"]), float(r["gas_usd"]), float(r["builder_usd"])] for r in series
        ],
    }


async def strategy(ops: Operations, query: HoursQuery) -> dict[str, Any]:
    """Per chain and strategy: the funnel, success rate, profit per execution; skips by the limit that refused."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    pool = ops.control.pool

    async def fetch(sql: str) -> list[Any]:
        async with pool.acquire() as conn:
            return await conn.fetch(sql, since)

    # Four independent scans of the window: each on its own connection, at once.
    found, skipped, sent, outcomes = await asyncio.gather(
        fetch("SELECT chain, strategy, count(*) AS n FROM opportunities WHERE found_at >= $1 GROUP BY 1, 2"),
        fetch("SELECT chain, strategy, limit_name, count(*) AS n FROM skips WHERE at >= $1 GROUP BY 1, 2, 3"),
        fetch("SELECT chain, strategy, count(*) AS n FROM executions WHERE at >= $1 GROUP BY 1, 2"),
        fetch(
            """SELECT chain, strategy, status, count(*) AS n, sum(realized_profit_usd - gas_cost_usd) AS net_usd
               FROM outcomes WHERE settled_at >= $1 GROUP BY 1, 2, 3"""
        ),
    )
    table: dict[tuple[str, str], dict[str, Any]] = {}

    def row(chain: str, name: str) -> dict[str, Any]:
        return table.setdefault(
            (chain, name),
            {"chain": chain, "strategy": name, "found": 0, "skipped": 0, "sent": 0, "executed": 0, "landed": 0,
             "reverted": 0, "failed": 0, "dry_run": 0, "rejected": 0, "net_usd": Decimal(0)},
        )  # fmt: skip

    skips_by_limit: dict[str, int] = {}
    for r in found:
        row(r["chain"], r["strategy"])["found"] += r["n"]
    for r in skipped:
        row(r["chain"], r["strategy"])["skipped"] += r["n"]
        skips_by_limit[r["limit_name"]] = skips_by_limit.get(r["limit_name"], 0) + r["n"]
    for r in sent:
        row(r["chain"], r["strategy"])["sent"] += r["n"]
    for r in outcomes:
        entry = row(r["chain"], r["strategy"])
        entry[r["status"]] += r["n"]
        if r["status"] in LIVE_STATUSES:
            entry["executed"] += r["n"]
            entry["net_usd"] += r["net_usd"] or 0
    rows = []
    for entry in sorted(table.values(), key=lambda e: (e["chain"], e["strategy"])):
        executed = entry["executed"]
        entry["success_rate"] = entry["landed"] / executed if executed else None
        entry["net_per_execution_usd"] = str(entry["net_usd"] / executed) if executed else None
        entry["net_usd"] = str(entry["net_usd"])
        rows.append(entry)
    funnel = {
        "found": sum(r["found"] for r in rows),
        "passed_risk": sum(r["found"] for r in rows) - sum(r["skipped"] for r in rows),
        "executed": sum(r["executed"] + r["dry_run"] for r in rows),
        "sent": sum(r["sent"] for r in rows),
        "landed": sum(r["landed"] for r in rows),
    }
    skips = dict(sorted(skips_by_limit.items(), key=lambda kv: -kv[1]))
    return {"hours": query.hours, "rows": rows, "funnel": funnel, "skipped_by_limit": skips}


class AgentRisk:
    """Each configured agent's own risk state (circuit breakers, its limits), asked over its API.

    Asked in the background at most every AGENT_RISK_EVERY_S while a page is open, so a slow or absent
    agent never delays a view (it shows its last answer or the error).
    """

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.answers: dict[str, dict[str, Any]] = {}
        self.ready: dict[str, dict[str, Any]] = {}  # each configured agent's /ready
        self.at = 0.0
        self.wanted = 0.0  # monotonic time a view last needed it
        self._task: asyncio.Task[None] | None = None

    def latest(self) -> dict[str, dict[str, Any]]:
        self.wanted = time.monotonic()
        return self.answers

    async def run(self) -> None:
        while True:
            if self.ops.config.agents and time.monotonic() - self.wanted < 60:
                answers, ready = await asyncio.gather(
                    self.ops.each_agent("GET", "/exposure/current"), self.ops.each_agent("GET", "/ready")
                )
                # /ready answers 503 with its checks while not ready: each_agent reports that as not ok.
                self.ready = {
                    name: {"ready": r["ok"], "detail": "" if r["ok"] else str(r["answer"])} for name, r in ready.items()
                }
                self.answers = {
                    name: (
                        {"ok": True, "circuit_breakers": a["answer"].get("circuit_breakers", {}),
                         "emergency_stop": a["answer"].get("emergency_stop"),
                         "paused_strategies": a["answer"].get("paused_strategies", []),
                         "drawdown_usd": a["answer"].get("drawdown_usd"),
                         "daily_pnl_usd": a["answer"].get("daily_pnl_usd", {}),
                         "limits": {k: v for k, v in (a["answer"].get("limits") or {}).items() if k in AGENT_LIMITS}}
                        if a["ok"] and isinstance(a["answer"], dict) else {"ok": False, "error": str(a["answer"])}
                    )
                    for name, a in answers.items()
                }  # fmt: skip
                self.at = time.time()
            await asyncio.sleep(AGENT_RISK_EVERY_S)


async def risk(ops: Operations, agent_risk: AgentRisk) -> dict[str, Any]:
    """Fleet exposure against its limits, daily loss against its budget, breaches, and each agent's lease."""
    control = ops.control
    fleet = await control.evaluate()
    now = dt.datetime.now(dt.UTC)
    async with control.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT name, heartbeat_at, lease_fresh, lease_expires_in_s, emergency_stop, live_chains,
                      exposure_total_usd, in_flight, paused_strategies, daily_pnl_usd FROM agents ORDER BY name"""
        )
    own = agent_risk.latest()
    agents = []
    for r in rows:
        age = (now - r["heartbeat_at"]).total_seconds() if r["heartbeat_at"] else None
        daily = r["daily_pnl_usd"]
        agents.append(
            {"name": r["name"], "heartbeat_age_s": age, "lease_fresh": r["lease_fresh"],
             "lease_left_s": (r["lease_expires_in_s"] - age) if age is not None else None,
             "emergency_stop": r["emergency_stop"], "live_chains": list(r["live_chains"]),
             "exposure_usd": str(r["exposure_total_usd"]), "in_flight": r["in_flight"],
             "paused_strategies": list(r["paused_strategies"]),
             "daily_pnl_usd": orjson.loads(daily) if isinstance(daily, str) else dict(daily or {}),
             "own": own.get(r["name"])}
        )  # fmt: skip
    limits = control.limits
    return {
        **fleet.as_json(),
        "limits": limits.model_dump(),
        "ceilings": ops.config.ceilings.model_dump(),
        "exposure_used": float(fleet.total_usd) / limits.max_total_exposure_usd,
        "daily_loss_used": max(0.0, -float(fleet.daily_net_usd)) / limits.daily_limit_usd,
        "breached": control.breached,
        "leases_granted": control.granting,
        "emergency_stop": control.emergency,
        "live_chains": list(control.live_chains),
        "agents": agents,
        "agents_asked_at": agent_risk.at,
    }


async def health(ops: Operations, agent_risk: AgentRisk) -> dict[str, Any]:
    """Per agent: up, heartbeat, spool; per agent and chain: head, lag behind the fleet's best head, RPC latency,
    peers (the node's and its beacon node's) with a low-peers marker below `min_node_peers`."""
    control = ops.control
    now = dt.datetime.now(dt.UTC)
    recent = now - dt.timedelta(minutes=15)
    async with control.pool.acquire() as conn:
        agents = await conn.fetch(
            """SELECT name, api_url, chains, live_chains, heartbeat_at, emergency_stop, spool_pending, dropped,
                      peers, beacon_peers FROM agents ORDER BY name"""
        )
        chains = sorted({c for a in agents for c in a["chains"]})
        # Through the (chain, at) index: the recent heads each agent reported per chain.
        heads = await conn.fetch(
            """SELECT c AS chain, g.agent, max(g.block) AS block, max(g.at) AS at FROM unnest($1::text[]) AS c,
                      LATERAL (SELECT agent, block, at FROM gas_prices WHERE chain = c AND at >= $2
                               ORDER BY at DESC LIMIT 500) g
               GROUP BY 1, 2""",
            chains, recent,
        )  # fmt: skip
        latency = await conn.fetch(
            """SELECT DISTINCT ON (agent, chain) agent, chain, at, rpc_round_trip_s, stages FROM latency
               WHERE at >= $1 ORDER BY agent, chain, at DESC""",
            recent,
        )
        series = await conn.fetch(
            """SELECT agent || '/' || chain AS name, (floor(extract(epoch FROM at) / 10) * 10)::bigint AS t,
                      avg(rpc_round_trip_s) AS s FROM latency WHERE at >= $1 GROUP BY 1, 2 ORDER BY 2""",
            recent,
        )
    best = {}
    for h in heads:
        best[h["chain"]] = max(best.get(h["chain"], 0), h["block"])
    nodes = {
        (h["agent"], h["chain"]): {"head": h["block"], "lag_blocks": best[h["chain"]] - h["block"],
                                   "head_age_s": (now - h["at"]).total_seconds()}
        for h in heads
    }  # fmt: skip
    for lat in latency:
        stages = lat["stages"]
        entry = nodes.setdefault((lat["agent"], lat["chain"]), {})
        entry["rpc_round_trip_s"] = lat["rpc_round_trip_s"]
        entry["stages"] = orjson.loads(stages) if isinstance(stages, str) else stages
    # Peers per node, as each agent's last heartbeat counted them (None: its node did not say).
    low = ops.config.min_node_peers
    for a in agents:
        peers, beacon = _load(a["peers"]) or {}, _load(a["beacon_peers"]) or {}
        for chain in {*peers, *beacon}:
            nodes.setdefault((a["name"], chain), {})
        for (agent, chain), entry in nodes.items():
            if agent == a["name"]:
                entry["peers"], entry["beacon_peers"] = peers.get(chain), beacon.get(chain)
                entry["low_peers"] = any(n is not None and n < low for n in (entry["peers"], entry["beacon_peers"]))
    out_agents = []
    agent_risk.latest()
    ready = agent_risk.ready
    for a in agents:
        age = (now - a["heartbeat_at"]).total_seconds() if a["heartbeat_at"] else None
        out_agents.append(
            {"name": a["name"], "api_url": a["api_url"], "up": age is not None and age <= AGENT_UP_S,
             "heartbeat_age_s": age, "chains": list(a["chains"]), "live_chains": list(a["live_chains"]),
             "emergency_stop": a["emergency_stop"], "spool_pending": a["spool_pending"], "dropped": a["dropped"],
             "ready": ready.get(a["name"])}
        )  # fmt: skip
    stats = control.ingest.stats
    return {
        "agents": out_agents,
        "nodes": [{"agent": k[0], "chain": k[1], **v} for k, v in sorted(nodes.items())],
        "latency_series": [[r["t"], r["name"], r["s"]] for r in series],  # [unix s, agent/chain, seconds]
        "bus": {"connected": control.ingest.connected, "lag_s": stats.lag_s, "last_commit_s": stats.last_commit_s},
        "min_node_peers": low,
    }


async def feed(ops: Operations, _: NoQuery) -> dict[str, Any]:
    """The newest opportunities, skips (with their reason), sends and outcomes, newest first."""
    async with ops.control.pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT * FROM (
                 (SELECT 'found' AS kind, found_at AS at, agent, chain, strategy, opportunity_id, block,
                         (profit_usd - gas_cost_usd)::text AS net_usd, NULL AS status, NULL AS detail
                  FROM opportunities ORDER BY found_at DESC LIMIT {FEED_LIMIT})
                 UNION ALL
                 (SELECT 'skipped', at, agent, chain, strategy, opportunity_id, block, NULL, limit_name, reason
                  FROM skips ORDER BY at DESC LIMIT {FEED_LIMIT})
                 UNION ALL
                 (SELECT 'sent', at, agent, chain, strategy, opportunity_id, block, NULL, NULL,
                         array_to_string(tx_hashes, ' ')
                  FROM executions ORDER BY at DESC LIMIT {FEED_LIMIT})
                 UNION ALL
                 (SELECT 'outcome', settled_at, agent, chain, strategy, opportunity_id, block,
                         (realized_profit_usd - gas_cost_usd)::text, status, reason
                  FROM outcomes ORDER BY settled_at DESC LIMIT {FEED_LIMIT})
               ) AS f ORDER BY at DESC LIMIT {FEED_LIMIT}"""
        )
    return {"items": [feed_item_of_row(r) for r in rows]}


def positions_served(ops: Operations) -> bool:
    """The positions view exists when this control plane executes cross-chain opportunities."""
    crosschain = ops.control.crosschain
    return crosschain is not None and crosschain.book is not None


async def positions(ops: Operations, _: NoQuery) -> dict[str, Any]:
    """The cross-chain position book (mevcontrol.positions), read from memory: the positions by state, the open
    ones' exposure per chain against the fleet's limits, the unwind policy, and the newest positions with their
    legs, what they realized and their last step. Operators act on a `stuck` one from here (unwind again)."""
    crosschain = ops.control.crosschain
    book = crosschain.book if crosschain is not None else None
    if book is None:
        raise Refused(404, "cross-chain execution is not configured (control.yml crosschain.execution:)")
    exposure = book.exposure()
    newest = list(book.positions.values())[::-1][:POSITIONS_LIMIT]
    closed = [p for p in book.positions.values() if p.state == "closed"]
    limits = ops.control.limits
    return {
        "counts": book.counts(),
        "exposure_by_chain": {chain: str(usd) for chain, usd in sorted(exposure.items())},
        "exposure_usd": str(sum(exposure.values(), Decimal(0))),
        "fleet_exposure_usd": str(ops.control.risk.total_usd),  # the agents' snapshots and the open positions
        "max_total_exposure_usd": str(limits.max_total_exposure_usd),
        "realized_usd": str(sum((p.realized_usd for p in closed), Decimal(0))),
        "policy": book.config.unwind.model_dump(mode="json"),
        "positions": [_position_row(p.as_json()) for p in newest],
    }


def bridges_served(ops: Operations) -> bool:
    """The bridges view exists when this control plane runs the cross-chain engine (and its bridge monitor)."""
    return ops.control.crosschain is not None


async def bridges(ops: Operations, _: NoQuery) -> dict[str, Any]:
    """The cross-chain engine's bridge monitor and open gaps, read from memory: what :8906's /bridges/status,
    /api/bridges/performance and /opportunities answer, in one view. Per bridge its health and counts; per
    route its deposits, fills, fill time distribution, pending and failed transfers, with the catalog's
    typical fill time and the band above which the route makes its bridge unhealthy (`slow_factor` times
    it); the pending transfers (stuck first); the opportunities as /opportunities gives them (whatever their
    kind, DEX-DEX or CEX-DEX: the page shows every field)."""
    crosschain = ops.control.crosschain
    if crosschain is None:
        raise Refused(404, "the cross-chain engine is not configured (control.yml crosschain:)")
    engine = crosschain.engine
    status = engine.bridges_status()
    typical = {route_name(r.bridge, r.src, r.dst): r.fill_s for rs in engine.registry.routes.values() for r in rs}
    slow = engine.config.slow_factor
    routes = []
    for row in engine.monitor.performance():
        bridge = row["route"].split("@", 1)[0]
        fill_s = typical.get(row["route"])
        routes.append(
            {"bridge": bridge, **row, "healthy": bridge not in engine.monitor.unhealthy, "catalog_fill_s": fill_s,
             "slow_above_s": fill_s * slow if fill_s is not None else None}
        )  # fmt: skip
    pending = sorted(status["pending"], key=lambda p: (not p["stuck"], -p["age_s"]))
    answer = crosschain.opportunities()  # what :8906 /opportunities answers: every kind, net first
    opportunities = answer["opportunities"]
    return {
        "max_bridge_time": status["max_bridge_time"],
        "preferred_bridges": status["preferred_bridges"],
        "slow_factor": slow,
        "bridges": status["bridges"],
        "not_used": status["not_used"],
        "routes": routes,
        "pending": pending[:BRIDGE_PENDING_LIMIT],
        "pending_total": len(pending),
        "stuck_total": sum(1 for p in pending if p["stuck"]),
        "opportunities": opportunities[:OPPORTUNITIES_LIMIT],
        "opportunities_total": len(opportunities),
        "graph": answer["graph"],
        "cex": answer.get("cex"),  # the exchange feed's counters, where crosschain.cex is configured
    }


def _position_row(record: dict[str, Any]) -> dict[str, Any]:
    """A position as the view lists it: the record without the commands' full bodies."""
    opp = record["opportunity"]
    legs = [
        {k: leg[k] for k in ("leg", "chain", "agent", "status", "amount_in", "expected_out", "min_out", "amount_out",
                             "notional_usd", "tx_hash", "reason", "token_in", "token_out")}
        for leg in record["legs"].values()
    ]  # fmt: skip
    return {
        "id": record["id"], "state": record["state"], "opened_at": record["opened_at"],
        "closed_at": record["closed_at"], "buy_chain": opp.get("buy_chain"), "sell_chain": opp.get("sell_chain"),
        "base": opp.get("base"), "quote": opp.get("quote"), "expected_net_usd": opp.get("net_usd"),
        "realized_usd": record["realized_usd"], "realized": record["realized"],
        "exposure_usd": record["exposure_usd"], "hold_until_at": record["hold_until_at"], "legs": legs,
        "last_step": record["steps"][-1] if record["steps"] else "", "steps": len(record["steps"]),
    }  # fmt: skip


def feed_item_of_row(r: Any) -> dict[str, Any]:
    return {
        "kind": r["kind"], "at": r["at"].timestamp(), "agent": r["agent"], "chain": r["chain"],
        "strategy": r["strategy"], "opportunity_id": r["opportunity_id"], "block": r["block"],
        "net_usd": r["net_usd"], "status": r["status"], "detail": r["detail"] or "",
    }  # fmt: skip


async def stuck(ops: Operations, query: HoursQuery) -> dict[str, Any]:
    """Sent in the window, not settled, and the chain moved more than `stuck_after_blocks` past them;
    with the last replace/cancel of each (mevcontrol.stuck)."""
    after = ops.config.stuck_after_blocks
    async with ops.control.pool.acquire() as conn:
        rows = await stuck_rows(conn, after, query.hours)
    for row in rows:
        row["sent_at"] = row["sent_at"].timestamp()
        row["action_at"] = row["action_at"].timestamp() if row["action_at"] else None
    return {"after_blocks": after, "hours": query.hours, "stuck": rows}


async def audit(ops: Operations, _: NoQuery) -> dict[str, Any]:
    """The newest audit rows, the pending approvals, and the control state they act on."""
    control = ops.control
    async with control.pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT id, at, operator, action, target, before, after, approved_by, result FROM audit_log
                ORDER BY id DESC LIMIT {AUDIT_LIMIT}"""
        )
    return {
        "rows": [
            {
                "id": r["id"],
                "at": r["at"].timestamp(),
                "operator": r["operator"],
                "action": r["action"],
                "target": r["target"],
                "before": _load(r["before"]),
                "after": _load(r["after"]),
                "approved_by": r["approved_by"],
                "result": r["result"],
            }
            for r in rows
        ],
        "pending": await ops.pending(),
        "emergency_stop": control.emergency,
        "live_chains": list(control.live_chains),
        "limits": control.limits.model_dump(),
        "ceilings": ops.config.ceilings.model_dump(),
    }


def _load(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


ViewFn = Callable[..., Awaitable[dict[str, Any]]]
