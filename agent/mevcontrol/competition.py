"""Competition analytics: who took the opportunities our agents saw and did not land, and at what price.

An opportunity (an arbitrage cycle an agent found, `opportunities.pools`) that no agent of ours landed is
matched with the arbitrages the live classifiers (or a backfill) found in the blocks after it: the first
successful arbitrage over the same set of pools, within `blocks` blocks after the block the opportunity
was found in, that is not one of our own transactions; failing that, the first one through any of those
pools (another route over the same price gap: `same_pools` false). The taker is named by its transaction's sender
(the searcher's EOA), the contract it called, the account that kept the profit and the block's coinbase
(the builder); its price is its exact profit (base units, and USD where the classifying agent had a
price, with that price) and what it paid: gas used * effective gas price, the priority fee the coinbase
earned and any direct coinbase transfer (wei).

A liquidation opportunity (`opportunities.liquidated_user`) is matched the same way with the first
liquidation of the same position owner repaying the same debt token: the taker is the liquidator, its
price the debt it repaid and the collateral it seized (exact, and in USD where priced).

The sandwich detector's risk signals (`sandwich_risks`: pending swaps an agent found sandwichable and never
acted on) are matched by transaction hash with the sandwiches whose victims include it and the JIT liquidity
around it: the sandwicher (the front-run's sender, the contract it called, the builder), its exact profit (and
USD at the classifying agent's price), against what the detector predicted an optimal sandwich would net, and
what both legs paid; the JIT provider with the amounts its position put in and took out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from mevcontrol.inflight import InFlight
from mevcontrol.models import CompetitionQuery, SandwichesQuery

_SQL = """
SELECT o.agent, o.chain, o.strategy, o.opportunity_id, o.block, o.found_at, o.token, o.amount_in, o.amount_out,
       o.profit_usd, o.pools, o.liquidated_user, t.*
FROM opportunities o
LEFT JOIN LATERAL (
    (SELECT 'arbitrage' AS kind, (a.pools @> o.pools AND a.pools <@ o.pools) AS same_pools,
            a.block AS taken_block, a.tx, s.tx_index, s.eoa, s.to_address, a.account,
            b.coinbase, a.profit_token, a.profit_amount, a.profit_usd AS taken_profit_usd, a.profit_usd_per_unit,
            a.path, NULL AS debt_token, NULL::numeric AS debt_amount, NULL::numeric AS debt_usd,
            NULL::numeric AS debt_usd_per_unit, NULL AS collateral_token, NULL::numeric AS collateral_amount,
            NULL::numeric AS collateral_usd, NULL::numeric AS collateral_usd_per_unit, s.gas_used,
            s.effective_gas_price, s.priority_fee, s.coinbase_transfer
     FROM mev_arbitrages a
     LEFT JOIN mev_searcher_txs s ON s.chain = a.chain AND s.block = a.block AND s.tx = a.tx
     LEFT JOIN block_classifications b ON b.chain = a.chain AND b.block = a.block
     WHERE o.liquidated_user = '' AND a.chain = o.chain AND a.block > o.block AND a.block <= o.block + $2
       AND NOT a.reverted AND a.pools && o.pools
       AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.chain = a.chain AND a.tx = ANY (e.tx_hashes)))
    UNION ALL
    (SELECT 'liquidation', NULL::boolean, l.block, l.tx, s.tx_index, s.eoa, s.to_address, l.liquidator,
            b.coinbase, NULL, NULL,
            NULL, NULL, NULL, l.debt_token, l.debt_amount, l.debt_usd, l.debt_usd_per_unit, l.collateral_token,
            l.collateral_amount, l.collateral_usd, l.collateral_usd_per_unit, s.gas_used, s.effective_gas_price,
            s.priority_fee, s.coinbase_transfer
     FROM mev_liquidations l
     LEFT JOIN mev_searcher_txs s ON s.chain = l.chain AND s.block = l.block AND s.tx = l.tx
     LEFT JOIN block_classifications b ON b.chain = l.chain AND b.block = l.block
     WHERE o.liquidated_user <> '' AND l.chain = o.chain AND l.liquidated_user = o.liquidated_user
       AND l.debt_token = o.token AND l.block > o.block AND l.block <= o.block + $2
       AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.chain = l.chain AND l.tx = ANY (e.tx_hashes)))
    ORDER BY same_pools DESC NULLS LAST, taken_block, tx_index NULLS LAST
    LIMIT 1
) t ON true
WHERE o.found_at >= $1 AND (cardinality(o.pools) > 0 OR o.liquidated_user <> '')
  AND ($3::text IS NULL OR o.chain = $3)
  AND NOT EXISTS (
      SELECT 1 FROM outcomes x WHERE x.agent = o.agent AND x.opportunity_id = o.opportunity_id AND x.status = 'landed'
  )
ORDER BY o.found_at DESC
LIMIT $4
"""


_RISKS_SQL = """
SELECT r.agent, r.chain, r.seen_at, r.tx_hash, r.sender, r.router, r.pool, r.token_in, r.token_out, r.amount_in,
       r.amount_out, r.amount_limit, r.price_impact_bps, r.slippage_bps, r.profit_token AS predicted_token,
       r.max_profit, r.frontrun_amount_in, r.profit_usd_per_unit AS predicted_usd_per_unit,
       sw.block AS sandwich_block, sw.frontrun_tx, sw.backrun_tx, sw.victim_txs, sw.sandwicher, sw.profit_token,
       sw.profit_amount, sw.profit_usd, sw.profit_usd_per_unit, sw.coinbase AS sandwich_builder, sw.eoa, sw.to_address,
       sw.tx_index, sw.gas_paid, sw.priority_fee, sw.coinbase_transfer, sw.legs,
       j.block AS jit_block, j.mint_tx, j.burn_tx, j.provider, j.jit_pool, j.liquidity, j.mint_amount0,
       j.mint_amount1, j.burn_amount0, j.burn_amount1, j.coinbase AS jit_builder, j.gas_paid AS jit_gas_paid,
       j.priority_fee AS jit_priority_fee, j.coinbase_transfer AS jit_coinbase_transfer, j.legs AS jit_legs
FROM sandwich_risks r
LEFT JOIN LATERAL (
    SELECT m.*, b.coinbase, f.eoa, f.to_address, f.tx_index, legs.*
    FROM mev_sandwiches m
    LEFT JOIN block_classifications b ON b.chain = m.chain AND b.block = m.block
    LEFT JOIN mev_searcher_txs f ON f.chain = m.chain AND f.block = m.block AND f.tx = m.frontrun_tx
    LEFT JOIN LATERAL (
        SELECT sum(t.gas_used * t.effective_gas_price) AS gas_paid, sum(t.priority_fee) AS priority_fee,
               sum(t.coinbase_transfer) AS coinbase_transfer, count(*) AS legs
        FROM mev_searcher_txs t
        WHERE t.chain = m.chain AND t.block = m.block AND t.tx IN (m.frontrun_tx, m.backrun_tx)
    ) legs ON true
    WHERE m.chain = r.chain AND m.victim_txs @> ARRAY[r.tx_hash]
    ORDER BY m.block LIMIT 1
) sw ON true
LEFT JOIN LATERAL (
    SELECT x.block, x.mint_tx, x.burn_tx, x.provider, x.pool AS jit_pool, x.liquidity, x.mint_amount0,
           x.mint_amount1, x.burn_amount0, x.burn_amount1, b.coinbase, legs.*
    FROM mev_jit x
    LEFT JOIN block_classifications b ON b.chain = x.chain AND b.block = x.block
    LEFT JOIN LATERAL (
        SELECT sum(t.gas_used * t.effective_gas_price) AS gas_paid, sum(t.priority_fee) AS priority_fee,
               sum(t.coinbase_transfer) AS coinbase_transfer, count(*) AS legs
        FROM mev_searcher_txs t
        WHERE t.chain = x.chain AND t.block = x.block AND t.tx IN (x.mint_tx, x.burn_tx)
    ) legs ON true
    WHERE x.chain = r.chain AND x.victim_txs @> ARRAY[r.tx_hash]
    ORDER BY x.block LIMIT 1
) j ON true
WHERE r.seen_at >= $1 AND ($2::text IS NULL OR r.chain = $2)
ORDER BY r.seen_at DESC
LIMIT $3
"""


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _units(value: Any) -> str | None:
    """An exact integer column as a decimal string (asyncpg may give 7000 as Decimal('7.000E+3'))."""
    return None if value is None else str(int(value))


def _paid(row: asyncpg.Record) -> dict[str, Any]:
    gas_used, price = row["gas_used"], row["effective_gas_price"]
    return {
        "gas_used": _units(gas_used),
        "effective_gas_price_wei": _units(price),
        "gas_paid_wei": _units(gas_used * price) if gas_used is not None and price is not None else None,
        "priority_fee_wei": _units(row["priority_fee"]),
        "coinbase_transfer_wei": _units(row["coinbase_transfer"]),
    }


def _taker(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["tx"] is None:
        return None
    who = {
        "kind": row["kind"],
        "block": row["taken_block"],
        "blocks_after": row["taken_block"] - row["block"],
        "tx": row["tx"],
        "tx_index": row["tx_index"],
        "searcher": row["eoa"],  # the transaction's sender (None: the classification had no searcher row)
        "contract": row["to_address"],
        "account": row["account"],  # who kept the profit (the liquidator for a liquidation)
        "builder": row["coinbase"],
    }
    if row["kind"] == "liquidation":
        debt_usd, collateral_usd = row["debt_usd"], row["collateral_usd"]
        price = {
            "debt_token": row["debt_token"],
            "debt_amount": _units(row["debt_amount"]),
            "debt_usd": _str(debt_usd),
            "debt_usd_per_unit": _str(row["debt_usd_per_unit"]),
            "collateral_token": row["collateral_token"],
            "collateral_amount": _units(row["collateral_amount"]),
            "collateral_usd": _str(collateral_usd),
            "collateral_usd_per_unit": _str(row["collateral_usd_per_unit"]),
            # A valuation only: the exact amounts are in two tokens.
            "profit_usd": _str(collateral_usd - debt_usd)
            if debt_usd is not None and collateral_usd is not None
            else None,
        }
    else:
        price = {
            # True: the same set of pools as our cycle; False: another cycle through some of them (a longer or
            # shorter route over the same price gap), named only when no arbitrage took our exact cycle.
            "same_pools": row["same_pools"],
            "profit_token": row["profit_token"],
            "profit_amount": _units(row["profit_amount"]),
            "profit_usd": _str(row["taken_profit_usd"]),
            "profit_usd_per_unit": _str(row["profit_usd_per_unit"]),
            "path": list(row["path"]),
        }
    return {**who, **price, **_paid(row)}


def _legs_paid(row: asyncpg.Record, prefix: str = "") -> dict[str, Any]:
    """What the MEV's own transactions paid, summed (None where the classification had no row for a leg)."""
    complete = row[f"{prefix}legs"] == 2
    return {
        "gas_paid_wei": _units(row[f"{prefix}gas_paid"]) if complete else None,
        "priority_fee_wei": _units(row[f"{prefix}priority_fee"]) if complete else None,
        "coinbase_transfer_wei": _units(row[f"{prefix}coinbase_transfer"]) if complete else None,
    }


def _sandwiched(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["frontrun_tx"] is None:
        return None
    return {
        "block": row["sandwich_block"],
        "frontrun_tx": row["frontrun_tx"],
        "backrun_tx": row["backrun_tx"],
        "victim_txs": list(row["victim_txs"]),
        "searcher": row["eoa"] or row["sandwicher"],  # the front-run's sender
        "contract": row["to_address"],
        "sandwicher": row["sandwicher"],
        "builder": row["sandwich_builder"],
        "profit_token": row["profit_token"],
        "profit_amount": _units(row["profit_amount"]),
        "profit_usd": _str(row["profit_usd"]),
        "profit_usd_per_unit": _str(row["profit_usd_per_unit"]),
        **_legs_paid(row),
    }


def _jit(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["mint_tx"] is None:
        return None
    amounts = ("mint_amount0", "mint_amount1", "burn_amount0", "burn_amount1")
    mint0, mint1, burn0, burn1 = (_units(row[a]) for a in amounts)  # None: stored before revision 0009
    return {
        "block": row["jit_block"],
        "mint_tx": row["mint_tx"],
        "burn_tx": row["burn_tx"],
        "provider": row["provider"],
        "pool": row["jit_pool"],
        "liquidity": _units(row["liquidity"]),
        "builder": row["jit_builder"],
        # [token0, token1] of the pool: what the position put in and took out (its fees are collected apart).
        "mint_amounts": [mint0, mint1] if mint0 is not None else None,
        "burn_amounts": [burn0, burn1] if burn0 is not None else None,
        **_legs_paid(row, "jit_"),
    }


Timed = list[tuple[dt.datetime, dict[str, Any]]]  # newest first, each with its time


async def risk_signals(conn: asyncpg.Connection, since: dt.datetime, chain: str | None, limit: int) -> Timed:
    """The newest `limit` sandwichable pending swaps the detector saw since `since`, with who sandwiched or JIT'd
    them."""
    rows = await conn.fetch(_RISKS_SQL, since, chain, limit)
    signals = []
    for row in rows:
        unit = row["predicted_usd_per_unit"]
        signals.append(
            (
                row["seen_at"],
                {
                    "agent": row["agent"],
                    "chain": row["chain"],
                    "seen_at": row["seen_at"].isoformat(),
                    "tx": row["tx_hash"],
                    "sender": row["sender"] or None,
                    "router": row["router"],
                    "pool": row["pool"],
                    "token_in": row["token_in"],
                    "token_out": row["token_out"],
                    "amount_in": _units(row["amount_in"]),
                    "amount_out": _units(row["amount_out"]),
                    "limit": _units(row["amount_limit"]),
                    "price_impact_bps": row["price_impact_bps"],
                    "slippage_bps": row["slippage_bps"],
                    "predicted_profit_token": row["predicted_token"],
                    "predicted_profit": _units(row["max_profit"]),  # an optimal sandwich, before gas
                    "predicted_profit_usd": _str(row["max_profit"] * unit) if unit is not None else None,
                    "frontrun_amount_in": _units(row["frontrun_amount_in"]),
                    "sandwiched_by": _sandwiched(row),
                    "jit_by": _jit(row),
                },
            )
        )
    return signals


def _risks(signals: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "seen": len(signals),
        "sandwiched": sum(1 for s in signals if s["sandwiched_by"] is not None),
        "jit": sum(1 for s in signals if s["jit_by"] is not None),
        "signals": signals,
    }


async def sandwich_risks(conn: asyncpg.Connection, query: CompetitionQuery | SandwichesQuery) -> dict[str, Any]:
    """The detector's sandwichable pending swaps of the last `hours`: which were sandwiched or JIT'd, by whom."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    return _risks([signal for _, signal in await risk_signals(conn, since, query.chain, query.limit)])


async def missed_opportunities(
    conn: asyncpg.Connection, since: dt.datetime, blocks: int, chain: str | None, limit: int
) -> Timed:
    """The newest `limit` opportunities found since `since` that no agent of ours landed, each with who took it
    within `blocks` blocks."""
    rows = await conn.fetch(_SQL, since, blocks, chain, limit)
    return [
        (
            row["found_at"],
            {
                "agent": row["agent"],
                "chain": row["chain"],
                "strategy": row["strategy"],
                "opportunity_id": row["opportunity_id"],
                "block": row["block"],
                "found_at": row["found_at"].isoformat(),
                "token": row["token"],
                # In the cycle's token; a liquidation repays one token and seizes another: USD only.
                "expected_profit": None if row["liquidated_user"] else _units(row["amount_out"] - row["amount_in"]),
                "expected_profit_usd": str(row["profit_usd"]),
                "pools": list(row["pools"]),
                "liquidated_user": row["liquidated_user"] or None,
                "taken_by": _taker(row),
            },
        )
        for row in rows
    ]


def report(query: CompetitionQuery, missed: list[dict[str, Any]], signals: list[dict[str, Any]]) -> dict[str, Any]:
    """The competition report of `missed` opportunities and sandwich risk `signals` (neither is changed)."""
    searchers: dict[str, dict[str, Any]] = {}
    for opportunity in missed:
        taker = opportunity["taken_by"]
        if taker is not None:
            key = taker["searcher"] or taker["account"]
            entry = searchers.setdefault(
                key, {"searcher": key, "contracts": set(), "taken": 0, "txs": set(), "profit": defaultdict(int)}
            )
            entry["contracts"].add(taker["contract"] or taker["account"])
            entry["taken"] += 1
            # One transaction can take several of our opportunities (agents, successive blocks): count it once.
            if taker["kind"] == "arbitrage" and taker["tx"] not in entry["txs"]:
                entry["profit"][taker["profit_token"]] += int(taker["profit_amount"])
            entry["txs"].add(taker["tx"])
    by_searcher = [
        {
            "searcher": e["searcher"],
            "contracts": sorted(e["contracts"]),
            "taken": e["taken"],  # our opportunities it took
            "transactions": len(e["txs"]),
            "profit": {token: str(amount) for token, amount in sorted(e["profit"].items())},
        }
        for e in sorted(searchers.values(), key=lambda e: -e["taken"])
    ]
    return {
        "hours": query.hours,
        "blocks": query.blocks,
        "missed": len(missed),
        "taken": sum(1 for m in missed if m["taken_by"] is not None),
        "opportunities": missed,
        "searchers": by_searcher,
        "sandwich_risks": _risks(signals),
    }


async def competition(conn: asyncpg.Connection, query: CompetitionQuery) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    missed = await missed_opportunities(conn, since, query.blocks, query.chain, query.limit)
    signals = await risk_signals(conn, since, query.chain, query.limit)
    return report(query, [m for _, m in missed], [s for _, s in signals])


class SharedNewest:
    """Reads in flight of one "newest `limit` since a start" list (missed opportunities, sandwich risk signals),
    shared by windows: the answer for a later start is a read's rows from that start on, and for an earlier start
    too when the read found `limit` rows (all of them then lie after its own start). A request joins a read of
    the same parameters in flight that covers its window, or any when the last read found `limit` rows, and keeps
    its own window's rows; else (or when the read it joined found fewer from a later start) it reads its own."""

    def __init__(self, read: Callable[[asyncpg.Pool, dt.datetime, tuple[Any, ...], int], Awaitable[Timed]]) -> None:
        self._read = read
        # Keyed by (parameters + limit, start): several starts of the same parameters may be in flight.
        self._inflight: InFlight[tuple[tuple[Any, ...], dt.datetime], Timed] = InFlight()
        self._full: dict[tuple[Any, ...], bool] = {}  # whether the last read of these parameters found `limit` rows

    @property
    def reads(self) -> int:
        return self._inflight.started

    async def rows(self, pool: asyncpg.Pool, since: dt.datetime, params: tuple[Any, ...], limit: int) -> list[Any]:
        key = (*params, limit)
        running = [(start, future) for (k, start), future in self._inflight.running() if k == key]
        # One covering this window; else, when the last read found `limit` rows, any (it likely will too). Never a
        # chain of them: 100 windows, each wider than the one before, would each wait for all the narrower ones.
        joined = [item for item in running if item[0] <= since] or (running if self._full.get(key) else [])
        if joined:
            start, future = joined[0]
            timed = await asyncio.shield(future)
            if start <= since or len(timed) == limit:
                return [row for at, row in timed if at >= since]
        future = self._inflight.start((key, since), lambda: self._read(pool, since, params, limit))
        future.add_done_callback(lambda done: self._note_full(key, done))
        timed = await asyncio.shield(future)  # a client that leaves does not cancel the others' answer
        return [row for _, row in timed]

    def _note_full(self, key: tuple[Any, ...], future: asyncio.Future[Timed]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._full.pop(key, None)
            self._full[key] = len(future.result()) == key[-1]
            while len(self._full) > 256:
                del self._full[next(iter(self._full))]


async def _read_missed(pool: asyncpg.Pool, since: dt.datetime, params: tuple[Any, ...], limit: int) -> Timed:
    async with pool.acquire() as conn:
        return await missed_opportunities(conn, since, params[0], params[1], limit)


async def _read_risks(pool: asyncpg.Pool, since: dt.datetime, params: tuple[Any, ...], limit: int) -> Timed:
    async with pool.acquire() as conn:
        return await risk_signals(conn, since, params[0], limit)


class SharedReports:
    """The competition report with its two lists read through SharedNewest: 100 clients each asking its own window
    cost a read of each list at a time instead of 100 reports queued on the pool (most of a report's ~20 ms at
    500 rows is building them; bench/control_api.py). As with `mevcontrol.api.coalesced`, an answer may have been
    read at most one read's duration before the request arrived."""

    def __init__(self) -> None:
        self.missed = SharedNewest(_read_missed)
        self.risks = SharedNewest(_read_risks)

    async def answer(self, pool: asyncpg.Pool, query: CompetitionQuery) -> dict[str, Any]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
        missed, signals = await asyncio.gather(
            self.missed.rows(pool, since, (query.blocks, query.chain), query.limit),
            self.risks.rows(pool, since, (query.chain,), query.limit),
        )
        return report(query, missed, signals)
