"""Competition analytics: who took the opportunities our agents saw and did not land, and at what price.

An opportunity (an arbitrage cycle an agent found, `opportunities.pools`) that no agent of ours landed is
matched with the arbitrages the live classifiers (or a backfill) found in the blocks after it: the first
successful arbitrage over the same set of pools, within `blocks` blocks after the block the opportunity
was found in, that is not one of our own transactions. The taker is named by its transaction's sender
(the searcher's EOA), the contract it called, the account that kept the profit and the block's coinbase
(the builder); its price is its exact profit (base units, and USD where the classifying agent had a
price, with that price) and what it paid: gas used * effective gas price, the priority fee the coinbase
earned and any direct coinbase transfer (wei).

A liquidation opportunity (`opportunities.liquidated_user`) is matched the same way with the first
liquidation of the same position owner repaying the same debt token: the taker is the liquidator, its
price the debt it repaid and the collateral it seized (exact, and in USD where priced).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import asyncpg

from mevcontrol.models import CompetitionQuery

_SQL = """
SELECT o.agent, o.chain, o.strategy, o.opportunity_id, o.block, o.found_at, o.token, o.amount_in, o.amount_out,
       o.profit_usd, o.pools, o.liquidated_user, t.*
FROM opportunities o
LEFT JOIN LATERAL (
    (SELECT 'arbitrage' AS kind, a.block AS taken_block, a.tx, s.tx_index, s.eoa, s.to_address, a.account,
            b.coinbase, a.profit_token, a.profit_amount, a.profit_usd AS taken_profit_usd, a.profit_usd_per_unit,
            a.path, NULL AS debt_token, NULL::numeric AS debt_amount, NULL::numeric AS debt_usd,
            NULL::numeric AS debt_usd_per_unit, NULL AS collateral_token, NULL::numeric AS collateral_amount,
            NULL::numeric AS collateral_usd, NULL::numeric AS collateral_usd_per_unit, s.gas_used,
            s.effective_gas_price, s.priority_fee, s.coinbase_transfer
     FROM mev_arbitrages a
     LEFT JOIN mev_searcher_txs s ON s.chain = a.chain AND s.block = a.block AND s.tx = a.tx
     LEFT JOIN block_classifications b ON b.chain = a.chain AND b.block = a.block
     WHERE o.liquidated_user = '' AND a.chain = o.chain AND a.block > o.block AND a.block <= o.block + $2
       AND NOT a.reverted AND a.pools @> o.pools AND a.pools <@ o.pools
       AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.chain = a.chain AND a.tx = ANY (e.tx_hashes)))
    UNION ALL
    (SELECT 'liquidation', l.block, l.tx, s.tx_index, s.eoa, s.to_address, l.liquidator, b.coinbase, NULL, NULL,
            NULL, NULL, NULL, l.debt_token, l.debt_amount, l.debt_usd, l.debt_usd_per_unit, l.collateral_token,
            l.collateral_amount, l.collateral_usd, l.collateral_usd_per_unit, s.gas_used, s.effective_gas_price,
            s.priority_fee, s.coinbase_transfer
     FROM mev_liquidations l
     LEFT JOIN mev_searcher_txs s ON s.chain = l.chain AND s.block = l.block AND s.tx = l.tx
     LEFT JOIN block_classifications b ON b.chain = l.chain AND b.block = l.block
     WHERE o.liquidated_user <> '' AND l.chain = o.chain AND l.liquidated_user = o.liquidated_user
       AND l.debt_token = o.token AND l.block > o.block AND l.block <= o.block + $2
       AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.chain = l.chain AND l.tx = ANY (e.tx_hashes)))
    ORDER BY taken_block, tx_index NULLS LAST
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
            "profit_token": row["profit_token"],
            "profit_amount": _units(row["profit_amount"]),
            "profit_usd": _str(row["taken_profit_usd"]),
            "profit_usd_per_unit": _str(row["profit_usd_per_unit"]),
            "path": list(row["path"]),
        }
    return {**who, **price, **_paid(row)}


async def competition(conn: asyncpg.Connection, query: CompetitionQuery) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=query.hours)
    rows = await conn.fetch(_SQL, since, query.blocks, query.chain, query.limit)
    missed = []
    searchers: dict[str, dict[str, Any]] = {}
    for row in rows:
        taker = _taker(row)
        missed.append(
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
                "taken_by": taker,
            }
        )
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
    }
