"""The stuck-transactions query with a large history, beside the query it replaced, in the same run.

PostgreSQL 15 (Debian's, on loopback in a temporary directory, as testbed/services.py starts them), migrated to
head, filled with `--executions` executions spread over 30 days, every one settled by an outcome but 50
of the last day's, and a head per minute in gas_prices. Then:

- baseline: the query the API had before (every execution left-joined with every outcome, no window),
  on the schema as it was (without the `outcomes_agent_opportunity` and `executions_tx_hashes` indexes);
- now: `mevcontrol.stuck.stuck_rows` (the last 24 h, an indexed anti-join, one head per row).

Both must find the same 50 transactions. Run: .venv/bin/python bench/stuck_query.py [--executions 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import asyncpg  # noqa: E402
from mevcontrol.db import migrate  # noqa: E402
from mevcontrol.stuck import stuck_rows  # noqa: E402

from testbed.services import Postgres  # noqa: E402

BEFORE = """SELECT e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.tx_hashes, e.at AS sent_at,
                  g.block AS chain_block
           FROM executions e
           LEFT JOIN outcomes o ON o.opportunity_id = e.opportunity_id AND o.agent = e.agent
           LEFT JOIN LATERAL (SELECT block FROM gas_prices WHERE chain = e.chain ORDER BY at DESC LIMIT 1) g ON true
           WHERE o.event_id IS NULL AND g.block IS NOT NULL AND g.block - e.block > $1
           ORDER BY e.at"""
STUCK = 50
DAY_S = 86_400


async def fill(conn: asyncpg.Connection, n: int) -> None:
    # Execution i: sent i * 30 days / n ago (the newest first), block 10**7 - i, opportunity "o<i>".
    await conn.execute(
        """INSERT INTO executions (event_id, at, agent, chain, strategy, opportunity_id, block, tx_hashes, found_at)
           SELECT gen_random_uuid(), now() - make_interval(secs => i * $2::float8 / $1), 'a' || (i % 8), 'anvil',
                  'dex_arb', 'o' || i, 10000000 - i, ARRAY['0x' || lpad(to_hex(i), 64, '0')], now()
           FROM generate_series(1, $1) i""",
        n,
        30 * DAY_S,
    )
    # Every execution is settled except STUCK of the last day (i a multiple of the step, within the day).
    step = max(1, n // 31 // STUCK)  # within the last 30/31 of a day
    await conn.execute(
        """INSERT INTO outcomes (event_id, at, agent, chain, strategy, opportunity_id, block, status, token,
                                 amount_in, realized_profit, gas_paid_wei, token_usd_per_unit, native_usd_per_wei,
                                 realized_profit_usd, gas_cost_usd, tx_hashes, reason, found_at, settled_at)
           SELECT gen_random_uuid(), now(), 'a' || (i % 8), 'anvil', 'dex_arb', 'o' || i, 10000000 - i, 'landed',
                  'W', 1, 1, 1, 0, 0, 0, 0, ARRAY[]::text[], '', now(),
                  now() - make_interval(secs => i * $2::float8 / $1)
           FROM generate_series(1, $1) i WHERE NOT (i % $3 = 0 AND i <= $3 * $4)""",
        n,
        30 * DAY_S,
        step,
        STUCK,
    )
    await conn.execute(
        """INSERT INTO gas_prices (event_id, at, agent, chain, block, base_fee_wei, priority_fee_p50_wei,
                                   priority_fee_p90_wei, priority_fee_p99_wei)
           SELECT gen_random_uuid(), now() - make_interval(mins => m), 'a0', 'anvil', 10000010 - m, 1, 1, 1, 1
           FROM generate_series(0, 30 * 24 * 60) m"""
    )
    await conn.execute("ANALYZE")


async def timed(run, repeat: int) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = len(await run())
        times.append(time.perf_counter() - started)
    return statistics.median(times), found


async def main(n: int, repeat: int) -> None:
    pg = Postgres()
    try:
        pg.init()
        await migrate(pg.dsn)
        conn = await asyncpg.connect(pg.dsn)
        try:
            started = time.perf_counter()
            await fill(conn, n)
            print(f"stuck query: {n:,} executions and outcomes stored in {time.perf_counter() - started:.1f} s")
            await conn.execute("DROP INDEX outcomes_agent_opportunity")
            await conn.execute("DROP INDEX executions_tx_hashes")
            before, found_before = await timed(lambda: conn.fetch(BEFORE, 3), max(1, repeat // 5))
            await conn.execute("CREATE INDEX outcomes_agent_opportunity ON outcomes (agent, opportunity_id)")
            await conn.execute("CREATE INDEX executions_tx_hashes ON executions USING gin (tx_hashes)")
            await conn.execute("ANALYZE")
            now, found_now = await timed(lambda: stuck_rows(conn, 3, 24), repeat)
            first_stuck = "0x" + f"{max(1, n // 31 // STUCK):064x}"  # execution i = step: not settled
            one, found_one = await timed(lambda: stuck_rows(conn, 3, 24 * 7, first_stuck, 1), repeat)
        finally:
            await conn.close()
    finally:
        pg.remove()
    print(f"  baseline (every execution against every outcome, no index): {before * 1000:9.1f} ms, {found_before}")
    print(f"  now (24 h window, indexed anti-join):                        {now * 1000:9.1f} ms, {found_now}")
    print(f"  one transaction's lookup for replace/cancel (7 days):         {one * 1000:9.1f} ms")
    print(f"  ratio baseline / now: {before / now:.0f}x")
    if found_before != STUCK or found_now != STUCK or found_one != 1:
        raise SystemExit(f"expected {STUCK} stuck in both and 1, found {found_before}, {found_now}, {found_one}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.repeat))
