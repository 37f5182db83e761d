"""Block classifications in the control plane's PostgreSQL: from the bus (the agents' live classifiers) and
from `mevagent backfill` (mevagent.analytics.backfill.ClassificationSink).

One row per (chain, block) in `block_classifications` with the whole classification as JSON, and the MEV
it found in typed rows (sandwiches, arbitrages with their pools, liquidations, JIT liquidity, and who sent
each of those transactions and what it paid) for the competition queries (mevcontrol.competition).
Amounts are exact base units; a USD valuation is stored beside the price it used (the classification's
`prices`, USD per base unit), NULL where there was no price. Writing a block replaces its rows in one
transaction, so a reader never sees half a block.

From the bus, writing is idempotent by (chain, block) and the event's time: a `BlockClassified` newer than
the stored one replaces it (a reorg, a re-classification), the same or an older one changes nothing (a
redelivery, a stale event arriving after a reorg's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import orjson

from mevagent.analytics.models import BlockClassification
from mevagent.bus.events import BlockClassified

_TABLES = (
    "mev_sandwiches", "mev_arbitrages", "mev_liquidations", "mev_jit", "mev_searcher_txs", "block_classifications",
)  # fmt: skip


@dataclass
class PostgresClassificationSink:
    pool: asyncpg.Pool
    chain: str

    async def write(self, results: Sequence[BlockClassification]) -> None:
        if not results:
            return
        now = dt.datetime.now(dt.UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            await replace_blocks(conn, self.chain, results, now, agent="")


async def write_events(conn: asyncpg.Connection, events: Sequence[BlockClassified]) -> None:
    """Store bus events inside the caller's transaction (the ingest's batch): newest per block wins."""
    newest: dict[tuple[str, int], BlockClassified] = {}
    for event in events:
        key = (event.chain, event.classification.block_number)
        if key not in newest or newest[key].at < event.at:
            newest[key] = event
    for (chain, block), event in newest.items():
        at = dt.datetime.fromtimestamp(event.at, dt.UTC)
        stored = await conn.fetchval(
            "SELECT classified_at FROM block_classifications WHERE chain = $1 AND block = $2", chain, block
        )
        if stored is not None and stored >= at:
            continue
        await replace_blocks(conn, chain, [event.classification], at, agent=event.agent)


async def replace_blocks(
    conn: asyncpg.Connection, chain: str, results: Sequence[BlockClassification], at: dt.datetime, *, agent: str
) -> None:
    blocks = [r.block_number for r in results]
    for table in _TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE chain = $1 AND block = ANY($2::bigint[])", chain, blocks)
    for result in results:
        await _insert(conn, chain, result, at, agent)


def _usd(prices: dict[str, str], token: str, amount: int) -> tuple[Decimal | None, Decimal | None]:
    """(USD value, the price used) of `amount` base units of `token`; (None, None) without a price."""
    price = prices.get(token)
    if price is None:
        return None, None
    unit = Decimal(price)
    return amount * unit, unit


async def _insert(conn: asyncpg.Connection, chain: str, r: BlockClassification, at: dt.datetime, agent: str) -> None:
    block, prices = r.block_number, r.prices
    document = orjson.dumps(r.model_dump(mode="json")).decode()
    await conn.execute(
        """INSERT INTO block_classifications (chain, block, block_hash, classified_at, sources, swaps,
           unresolved_swaps, document, coinbase, agent, prices)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10,$11::jsonb)""",
        chain, block, r.block_hash, at, r.sources, len(r.swaps), r.unresolved_swaps, document, r.coinbase, agent,
        orjson.dumps(prices).decode(),
    )  # fmt: skip
    await conn.executemany(
        """INSERT INTO mev_sandwiches (chain, block, frontrun_tx, backrun_tx, victim_txs, sandwicher, profit_token,
           profit_amount, profit_usd, profit_usd_per_unit) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)""",
        [
            (chain, block, s.frontrun_tx, s.backrun_tx, s.victim_txs, s.sandwicher, s.profit_token, s.profit_amount,
             *_usd(prices, s.profit_token, s.profit_amount))
            for s in r.sandwiches
        ],
    )  # fmt: skip
    pools: dict[str, list[str]] = {}
    for swap in r.swaps:  # an arbitrage's pools: its transaction's swaps, in order
        pools.setdefault(swap.tx, []).append(swap.pool)
    await conn.executemany(
        """INSERT INTO mev_arbitrages (chain, block, tx, account, profit_token, profit_amount, path, reverted, pools,
           profit_usd, profit_usd_per_unit) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)""",
        [
            (chain, block, a.tx, a.account, a.profit_token, a.profit_amount, a.path, a.reverted, pools.get(a.tx, []),
             *_usd(prices, a.profit_token, a.profit_amount))
            for a in r.arbitrages
        ],
    )  # fmt: skip
    await conn.executemany(
        """INSERT INTO mev_liquidations (chain, block, tx, liquidator, liquidated_user, protocol, debt_token,
           debt_amount, collateral_token, collateral_amount, debt_usd, debt_usd_per_unit, collateral_usd,
           collateral_usd_per_unit) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)""",
        [
            (chain, block, x.tx, x.liquidator, x.liquidated_user, x.protocol, x.debt_token, x.debt_amount,
             x.collateral_token, x.collateral_amount, *_usd(prices, x.debt_token, x.debt_amount),
             *_usd(prices, x.collateral_token, x.collateral_amount))
            for x in r.liquidations
        ],
    )  # fmt: skip
    await conn.executemany(
        """INSERT INTO mev_jit (chain, block, mint_tx, burn_tx, victim_txs, provider, pool, liquidity, mint_amount0,
           mint_amount1, burn_amount0, burn_amount1) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)""",
        [
            (chain, block, j.mint_tx, j.burn_tx, j.victim_txs, j.provider, j.pool, j.liquidity, *j.mint_amounts,
             *j.burn_amounts)
            for j in r.jit
        ],
    )  # fmt: skip
    await conn.executemany(
        """INSERT INTO mev_searcher_txs (chain, block, tx, tx_index, eoa, to_address, gas_used, effective_gas_price,
           priority_fee, coinbase_transfer) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING""",
        [
            (chain, block, t.tx, t.index, t.eoa, t.to, t.gas_used, t.effective_gas_price, t.priority_fee,
             t.coinbase_transfer)
            for t in r.searcher_txs
        ],
    )  # fmt: skip
