"""The history routes' queries against the real PostgreSQL, each beside the plain query it replaced
(bench/control_api.py for why): the hourly opportunity counts (revision 0013) follow what the ingest wrote,
once per event, and the analytics window reads the same as counting the opportunities; the newest gas
price per chain and latency per agent and chain by skip scan equal DISTINCT ON; the execution timing's
bounded join equals the unbounded one, and its histograms (revision 0016) follow the ingest, once per execution
and pair whichever half arrives first, and read as the plain query's percentiles within their bucket error; the
daily report's sums per day (revision 0018) equal summing the day's outcomes, digit for digit; the closed hours
the window routes keep (ClosedHours) are read again when a late event or retention changes them."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from decimal import Decimal
from typing import Any

import asyncpg
from alembic import command
from mevcontrol import stuck
from mevcontrol.api import (
    DAILY_SQL,
    GAS_PRICES_SQL,
    LATENCY_SQL,
    TIMING_RELATIVE_ERROR,
    ClosedHours,
    execution_timing_rows,
    funnel_counts,
    opportunity_buckets,
)
from mevcontrol.competition import SharedReports, competition
from mevcontrol.db import alembic_config, drop_partitions_before
from mevcontrol.ingest import Ingest
from mevcontrol.models import CompetitionQuery
from mevcontrol.stuck import SharedStuck

from mevagent.bus.events import ExecutionOutcome, ExecutionSent, OpportunityFound, OpportunitySkipped, new_id
from testbed.control import found, outcome
from testbed.services import Postgres

PLAIN_BUCKETS = """SELECT width_bucket(profit_usd - gas_cost_usd, 0, 100, 10) AS bucket, count(*) AS n
                   FROM opportunities WHERE found_at >= $1 GROUP BY bucket ORDER BY bucket"""
PLAIN_HOURS = """SELECT date_trunc('hour', found_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
                        width_bucket(profit_usd - gas_cost_usd, 0, 100, 10) AS bucket, count(*) AS n
                 FROM opportunities GROUP BY 1, 2 ORDER BY 1, 2"""
NOW = dt.datetime.now(dt.UTC)


def _quantiles(name: str, expression: str, unit: str = "_s") -> str:  # null without a sample
    return ", ".join(
        f"percentile_cont({q}) WITHIN GROUP (ORDER BY {expression}) AS {name}_{label}{unit}"
        for q, label in ((0.5, "p50"), (0.99, "p99"))
    )


# What GET /api/execution/timing answered before revision 0016, from every execution of the window and its
# outcome. $1: the window's start; $2: the oldest outcome to join (bounded: those settled a day before the window
# hold every execution's in it).
PLAIN_TIMING = f"""SELECT e.chain, count(*) AS executions, count(o.event_id) AS settled,
          {_quantiles("found_to_sent", "extract(epoch FROM e.at - e.found_at)")},
          {_quantiles("sent_to_settled", "extract(epoch FROM o.settled_at - e.at)")},
          {_quantiles("found_to_settled", "extract(epoch FROM o.settled_at - o.found_at)")},
          {_quantiles("blocks_to_inclusion", "o.included_block - o.block", unit="")}
   FROM executions e LEFT JOIN outcomes o ON o.agent = e.agent AND o.opportunity_id = e.opportunity_id
        AND o.settled_at >= $2
   WHERE e.at >= $1 GROUP BY e.chain ORDER BY e.chain"""
# execution_hours recounted from what is stored (the migration's fill).
PLAIN_EXECUTION_HOURS = """SELECT hour, chain, metric, bucket, count(*) AS n FROM (
        SELECT date_trunc('hour', e.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, e.chain, 1 AS metric,
               timing_bucket(extract(epoch FROM e.at - e.found_at)) AS bucket FROM executions e
        UNION ALL
        SELECT date_trunc('hour', e.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', e.chain, m.metric, m.bucket
        FROM executions e JOIN outcomes o ON o.agent = e.agent AND o.opportunity_id = e.opportunity_id
        CROSS JOIN LATERAL (VALUES (2, timing_bucket(extract(epoch FROM o.settled_at - e.at))),
                                   (3, timing_bucket(extract(epoch FROM o.settled_at - o.found_at))),
                                   (4, o.included_block - o.block)) m(metric, bucket)
        WHERE m.bucket IS NOT NULL
    ) r GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""


def history(n: int) -> list[OpportunityFound]:
    """n opportunities over the last 40 hours (and 2 ahead: an agent's clock may be), net USD from a loss
    to above 100 USD, half of them with a cycle's pools."""
    events = []
    for k in range(n):
        at = NOW - dt.timedelta(minutes=k * 40 * 60 / n) + dt.timedelta(hours=2)
        pools = ("0x" + f"{k:040x}", "0x" + f"{k + 1:040x}") if k % 2 else ()
        events.append(found(f"a{k % 3}", k).model_copy(update={
            "at": at.timestamp(), "profit_usd": Decimal(k % 130) - 5, "pools": pools,
        }))  # fmt: skip
    return events


async def rows(conn: asyncpg.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(sql, *args)]


async def hours(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch("SELECT hour, bucket, n FROM opportunity_hours ORDER BY 1, 2")]


def test_opportunity_hours_follow_the_ingest_and_the_window_reads_as_counting(postgres: Postgres) -> None:
    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            events = history(600)
            ingest = Ingest(None, pool)  # type: ignore[arg-type]  # write() only: no Redis
            await ingest.write(events[:400])
            await ingest.write(events[300:])  # 100 delivered twice (a redelivery after a crash)
            assert await conn.fetchval("SELECT count(*) FROM opportunities") == 600
            assert await hours(conn) == [tuple(r) for r in await conn.fetch(PLAIN_HOURS)]
            assert sum(n for _, _, n in await hours(conn)) == 600
            # One statement per batch: every column as the event had it, a cycle's pools too.
            row = await conn.fetchrow("SELECT * FROM opportunities WHERE opportunity_id = $1", events[7].opportunity_id)
            assert tuple(row["pools"]) == events[7].pools and row["amount_out"] == events[7].amount_out
            assert row["profit_usd"] == events[7].profit_usd and row["hops"] == events[7].hops
            assert row["found_at"].timestamp() == events[7].at
            # Windows that start mid-hour, on the hour, beyond the history, ahead of it.
            on_the_hour = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=5)
            for since in (NOW - dt.timedelta(hours=24), NOW - dt.timedelta(hours=5, minutes=17), on_the_hour,
                          NOW - dt.timedelta(days=30), NOW + dt.timedelta(minutes=30)):  # fmt: skip
                counted = [tuple(r) for r in await conn.fetch(PLAIN_BUCKETS, since)]
                assert [tuple(r) for r in await opportunity_buckets(conn, since)] == counted, since
            assert len(await conn.fetch(PLAIN_BUCKETS, NOW - dt.timedelta(days=30))) == 12  # every bucket seen
            # Retention drops the hours with the partitions.
            cutoff = (NOW - dt.timedelta(hours=30)).date()
            await drop_partitions_before(conn, cutoff)
            start = dt.datetime.combine(cutoff, dt.time(), dt.UTC)
            assert all(hour >= start for hour, _, _ in await hours(conn))
            assert await hours(conn) == [tuple(r) for r in await conn.fetch(PLAIN_HOURS)]
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


def test_the_newest_per_key_and_the_bounded_timing_join_read_as_the_plain_queries(postgres: Postgres) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            assert await rows(conn, GAS_PRICES_SQL) == [] and await rows(conn, LATENCY_SQL) == []
            await conn.execute(
                """INSERT INTO gas_prices (event_id, at, agent, chain, block, base_fee_wei, priority_fee_p50_wei,
                                           priority_fee_p90_wei, priority_fee_p99_wei)
                   SELECT gen_random_uuid(), now() - make_interval(secs => m * 7919 % 100003), 'a' || (m % 3),
                          (ARRAY['arbitrum', 'base', 'bsc', 'ethereum', 'zora'])[1 + m % 5], m, m, 1, 2, 3
                   FROM generate_series(1, 3000) m"""
            )
            await conn.execute(
                """INSERT INTO latency (event_id, at, agent, chain, rpc_round_trip_s, stages)
                   SELECT gen_random_uuid(), now() - make_interval(secs => m * 7919 % 100003), 'a' || (m % 4),
                          (ARRAY['arbitrum', 'base', 'ethereum'])[1 + m % 3], m / 1000.0, '{}'::jsonb
                   FROM generate_series(1, 3000) m"""
            )
            plain_gas = await rows(
                conn,
                """SELECT DISTINCT ON (chain) chain, agent, block, at, base_fee_wei, priority_fee_p50_wei,
                          priority_fee_p90_wei, priority_fee_p99_wei FROM gas_prices ORDER BY chain, at DESC""",
            )
            assert len(plain_gas) == 5 and await rows(conn, GAS_PRICES_SQL) == plain_gas
            plain_latency = await rows(
                conn,
                """SELECT DISTINCT ON (agent, chain) agent, chain, at, rpc_round_trip_s, stages FROM latency
                   ORDER BY agent, chain, at DESC""",
            )
            assert len(plain_latency) == 12 and await rows(conn, LATENCY_SQL) == plain_latency
            # Executions of the last 3 days, settled 1 s to 1 h after their send; outcomes of older ones.
            await conn.execute(
                """INSERT INTO executions (event_id, at, agent, chain, strategy, opportunity_id, block, tx_hashes,
                                           found_at)
                   SELECT gen_random_uuid(), now() - make_interval(mins => m), 'a' || (m % 2), 'base', 'dex_arb',
                          't' || m, m, ARRAY['0x' || m], now() - make_interval(mins => m, secs => m % 7)
                   FROM generate_series(1, 4320, 3) m"""
            )
            await conn.execute(
                """INSERT INTO outcomes (event_id, at, agent, chain, strategy, opportunity_id, block, status, token,
                       amount_in, realized_profit, gas_paid_wei, token_usd_per_unit, native_usd_per_wei,
                       realized_profit_usd, gas_cost_usd, tx_hashes, included_block, reason, found_at, settled_at)
                   SELECT gen_random_uuid(), now(), 'a' || (m % 2), 'base', 'dex_arb', 't' || m, m, 'landed', 'W',
                          1, 1, 1, 1, 0, 0, 0, ARRAY[]::text[], m + m % 4, '',
                          now() - make_interval(mins => m, secs => m % 7),
                          now() - make_interval(mins => m) + make_interval(secs => 1 + m % 3600)
                   FROM generate_series(1, 6000, 3) m WHERE m % 5 <> 0"""
            )
            for hours_back in (1, 24, 48, 72):
                since = NOW - dt.timedelta(hours=hours_back)
                unbounded = await rows(conn, PLAIN_TIMING, since, dt.datetime.min.replace(tzinfo=dt.UTC))
                bounded = await rows(conn, PLAIN_TIMING, since, since - dt.timedelta(days=1))
                assert bounded == unbounded and unbounded[0][2] > 0, hours_back
        finally:
            await conn.close()

    asyncio.run(scenario())


# What GET /api/transactions/stuck read before revision 0017: the window's executions without an outcome settled
# in it (an anti-join), each with its chain's head and latest replace/cancel.
PLAIN_STUCK = stuck.SQL.format(
    pending="""SELECT e.agent, e.chain, e.strategy, e.opportunity_id, e.block, e.tx_hashes, e.at
    FROM executions e WHERE e.at >= $2
      AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.agent = e.agent AND o.opportunity_id = e.opportunity_id
                      AND o.settled_at >= $2)"""
)
# What the funnel counted before revision 0017, since $1.
PLAIN_FUNNEL = """SELECT 'sent' AS stage, '' AS key, count(*) AS n FROM executions WHERE at >= $1
    UNION ALL SELECT 'outcome', status, count(*) FROM outcomes WHERE settled_at >= $1 GROUP BY status
    UNION ALL SELECT 'skip', limit_name, count(*) FROM skips WHERE at >= $1 GROUP BY limit_name"""


async def plain_funnel(conn: asyncpg.Connection, since: dt.datetime) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(PLAIN_FUNNEL, since):
        if r["n"]:
            counts.setdefault(r["stage"], {})[r["key"]] = r["n"]
    return counts


def timing_history() -> tuple[list[ExecutionSent], list[Any]]:
    """1,200 executions over the last 50 hours (and 2 ahead) on two chains, detection -> send 0.01-3 s; an
    outcome for 5 of 6, settled 0.5-40 s after the send, 0-9 blocks after, a failed one without a block."""
    sent, settled = [], []
    for k in range(1200):
        at = NOW + dt.timedelta(hours=2) - dt.timedelta(seconds=k * 52 * 3600 / 1200)
        found_at = at - dt.timedelta(seconds=0.01 + (k * 7919 % 300) / 100)
        chain = ("base", "ethereum")[k % 2]
        execution = ExecutionSent(agent=f"t{k % 3}", at=at.timestamp(), chain=chain, strategy="dex_arb",
                                  opportunity_id=f"x{k}", block=1000 + k, tx_hashes=("0x" + f"{k:064x}",),
                                  found_at=found_at.timestamp())  # fmt: skip
        sent.append(execution)
        if k % 6:
            settle = at + dt.timedelta(seconds=0.5 + (k * 104729 % 4000) / 100)
            failed = k % 17 == 0
            settled.append(outcome(f"t{k % 3}", k).model_copy(update={
                "at": settle.timestamp(), "chain": chain, "opportunity_id": f"x{k}", "block": 1000 + k,
                "status": "failed" if failed else "landed", "found_at": found_at.timestamp(),
                "settled_at": settle.timestamp(), "included_block": None if failed else 1000 + k + k % 10,
            }))  # fmt: skip
    return sent, settled


def test_execution_hours_follow_the_ingest_and_the_timing_reads_as_the_plain_query(postgres: Postgres) -> None:
    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("TRUNCATE executions, outcomes, execution_hours")
            sent, settled = timing_history()
            ingest = Ingest(None, pool)  # type: ignore[arg-type]  # write() only: no Redis
            # Outcomes before their executions (a batch of their own), in the same batch, and after; 100 of each
            # delivered twice (a redelivery after a crash).
            await ingest.write(settled[:300])
            await ingest.write([*sent[:700], *settled[200:600]])
            await ingest.write([*sent[600:], *settled[500:]])
            assert await conn.fetchval("SELECT count(*) FROM executions WHERE agent LIKE 't%'") == 1200
            assert await conn.fetchval("SELECT count(*) FROM outcomes WHERE agent LIKE 't%'") == len(settled)
            # One statement per batch (revision 0016's triggers run once): every column as the event had it.
            failed, landed = settled[14], settled[15]  # k 17 (failed, no block) and 19
            for event in (failed, landed):
                row = await conn.fetchrow("SELECT * FROM outcomes WHERE event_id = $1", event.id)
                assert (
                    (row["status"], row["included_block"], tuple(row["tx_hashes"]))
                    == (event.status, event.included_block, event.tx_hashes)
                    and row["settled_at"].timestamp() == event.settled_at
                    and row["amount_in"] == event.amount_in
                )
            row = await conn.fetchrow("SELECT * FROM executions WHERE event_id = $1", sent[7].id)
            assert tuple(row["tx_hashes"]) == sent[7].tx_hashes and row["found_at"].timestamp() == sent[7].found_at
            stored = await rows(conn, "SELECT hour, chain, metric, bucket, n FROM execution_hours ORDER BY 1, 2, 3, 4")
            assert stored == await rows(conn, PLAIN_EXECUTION_HOURS)
            assert sum(n for _, _, metric, _, n in stored if metric == 1) == 1200
            assert sum(n for _, _, metric, _, n in stored if metric == 2) == len(settled)
            # Windows that start mid-hour, on the hour, within the newest hour, beyond the history, ahead of it.
            on_the_hour = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=7)
            for since in (NOW - dt.timedelta(hours=24), NOW - dt.timedelta(hours=5, minutes=17), on_the_hour,
                          NOW - dt.timedelta(minutes=20), NOW - dt.timedelta(days=30),
                          NOW + dt.timedelta(hours=3)):  # fmt: skip
                plain = [dict(r) for r in await conn.fetch(PLAIN_TIMING, since, since - dt.timedelta(days=1))]
                answer = await execution_timing_rows(conn, since)
                assert [(r["chain"], r["executions"], r["settled"]) for r in answer] == [
                    (r["chain"], r["executions"], r["settled"]) for r in plain
                ], since
                for ours, exact in zip(answer, plain, strict=True):
                    assert ours.keys() == exact.keys()
                    for key, value in exact.items():
                        if value is None or key.startswith("blocks_to_inclusion"):
                            assert ours[key] == value, (since, key)
                        elif key.endswith("_s"):
                            assert abs(ours[key] - value) <= TIMING_RELATIVE_ERROR * abs(value) + 1e-6, (since, key)
            assert len(await execution_timing_rows(conn, NOW - dt.timedelta(days=30))) == 2
            assert await execution_timing_rows(conn, NOW + dt.timedelta(hours=3)) == []
            # The migration's fill counts what is stored as the triggers did.
            config = alembic_config(postgres.dsn)
            await asyncio.to_thread(command.downgrade, config, "0015")
            await asyncio.to_thread(command.upgrade, config, "head")
            assert await rows(
                conn, "SELECT hour, chain, metric, bucket, n FROM execution_hours ORDER BY 1, 2, 3, 4"
            ) == (stored)
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


def skips_history() -> list[OpportunitySkipped]:
    """900 skips over the last 50 hours (and 2 ahead) by three limits."""
    return [
        OpportunitySkipped(agent=f"t{k % 3}", at=(NOW + dt.timedelta(hours=2) - dt.timedelta(minutes=k * 52 * 60 / 900))
                           .timestamp(), chain="base", strategy="dex_arb", opportunity_id=f"s{k}", block=k,
                           limit=("max_gas_price", "min_profit", "max_position_size")[k * k % 3], reason="test")
        for k in range(900)
    ]  # fmt: skip


HISTORY_TABLES = (
    "executions, outcomes, skips, opportunities, unsettled_executions, execution_hours, funnel_hours, opportunity_hours"
)


async def fresh_history(
    db: asyncpg.Pool | asyncpg.Connection,
    pool: asyncpg.Pool,
    executions: int | None = None,
    outcomes: int | None = None,
    opportunities: int = 0,
) -> tuple[Ingest, list[ExecutionSent], list[Any]]:
    """The history's tables emptied (through `db`), then timing_history()'s first `executions` executions and
    `outcomes` outcomes (all of them when None), skips_history() and `opportunities` opportunities written by an
    Ingest on `pool`: that ingest and both lists, for the late rows a test writes after."""
    await db.execute(f"TRUNCATE {HISTORY_TABLES}")
    sent, settled = timing_history()
    ingest = Ingest(None, pool)  # type: ignore[arg-type]  # write() only: no Redis
    await ingest.write([*sent[:executions], *settled[:outcomes], *skips_history(), *history(opportunities)])
    return ingest, sent, settled


async def write_late_rows(ingest: Ingest, sent: list[ExecutionSent], settled: list[Any], late: dt.datetime) -> None:
    """Rows at `late` after fresh_history(..., 1150, 950, ...): an execution not written yet (then its outcome, in
    a batch of its own), a skip and an opportunity."""
    execution = sent[1150].model_copy(update={"at": late.timestamp(), "found_at": late.timestamp() - 1})
    result = next(o for o in settled[950:] if o.opportunity_id == execution.opportunity_id)
    fresh = {"at": late.timestamp()}
    skip = skips_history()[0].model_copy(update={**fresh, "id": new_id()})
    await ingest.write([execution, skip, history(1)[0].model_copy(update={**fresh, "id": new_id()})])
    await ingest.write([result.model_copy(update={"settled_at": late.timestamp() + 2})])


def test_funnel_hours_and_unsettled_executions_follow_the_ingest_and_read_as_the_plain_queries(
    postgres: Postgres,
) -> None:
    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("TRUNCATE executions, outcomes, skips, gas_prices, funnel_hours, unsettled_executions")
            sent, settled = timing_history()
            skipped = skips_history()
            ingest = Ingest(None, pool)  # type: ignore[arg-type]  # write() only: no Redis
            # Outcomes before, with and after their executions; 100 of each kind delivered twice.
            await ingest.write([*settled[:300], *skipped[:400]])
            await ingest.write([*sent[:700], *settled[200:600], *skipped[300:]])
            await ingest.write([*sent[600:], *settled[500:]])
            row = await conn.fetchrow("SELECT * FROM skips WHERE event_id = $1", skipped[5].id)
            assert (row["limit_name"], row["opportunity_id"], row["at"].timestamp()) == (
                skipped[5].limit,
                skipped[5].opportunity_id,
                skipped[5].at,
            )
            unsettled = await conn.fetchval("SELECT count(*) FROM unsettled_executions")
            assert unsettled == 1200 - len(settled) == 200
            # Heads: ethereum far ahead of every execution, base behind some (they are not stuck yet; the unsettled,
            # every sixth, are all on base).
            for chain, block in (("base", 1600), ("ethereum", 5000)):
                await conn.execute(
                    """INSERT INTO gas_prices (event_id, at, agent, chain, block, base_fee_wei, priority_fee_p50_wei,
                                               priority_fee_p90_wei, priority_fee_p99_wei)
                       VALUES (gen_random_uuid(), now(), 't0', $1, $2, 1, 1, 1, 1)""",
                    chain,
                    block,
                )
            on_the_hour = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=7)
            windows = (NOW - dt.timedelta(hours=24), NOW - dt.timedelta(hours=5, minutes=17), on_the_hour,
                       NOW - dt.timedelta(minutes=20), NOW - dt.timedelta(days=30),
                       NOW + dt.timedelta(hours=3))  # fmt: skip
            for since in windows:
                assert await funnel_counts(conn, since) == await plain_funnel(conn, since), since
                listed = await rows(conn, stuck.ALL, 3, since, 500)
                assert listed == await rows(conn, PLAIN_STUCK, 3, since, 500), since
            everything = await funnel_counts(conn, NOW - dt.timedelta(days=30))
            assert everything["sent"] == {"": 1200} and sum(everything["skip"].values()) == 900
            assert everything["outcome"] == {"failed": 59, "landed": len(settled) - 59}
            assert 0 < len(await rows(conn, stuck.ALL, 3, NOW - dt.timedelta(days=30), 500)) < 200
            # The migration's fill counts what is stored as the triggers did.
            before = await rows(conn, "SELECT * FROM funnel_hours ORDER BY 1, 2, 3")
            pending = await rows(conn, "SELECT * FROM unsettled_executions ORDER BY 1")
            config = alembic_config(postgres.dsn)
            await asyncio.to_thread(command.downgrade, config, "0016")
            await asyncio.to_thread(command.upgrade, config, "head")
            assert await rows(conn, "SELECT * FROM funnel_hours ORDER BY 1, 2, 3") == before
            assert await rows(conn, "SELECT * FROM unsettled_executions ORDER BY 1") == pending
            # Retention drops the skips' hours with their partitions.
            await drop_partitions_before(conn, (NOW - dt.timedelta(hours=30)).date())
            for since in windows:
                assert await funnel_counts(conn, since) == await plain_funnel(conn, since), since
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


# What GET /api/reports/daily summed before revision 0018: the day's settled outcomes ($1 to $2).
PLAIN_DAILY = """SELECT chain, strategy, token, count(*) AS executions,
          count(*) FILTER (WHERE status = 'landed') AS landed, count(*) FILTER (WHERE status = 'reverted') AS reverted,
          count(*) FILTER (WHERE status = 'failed') AS failed,
          coalesce(sum(realized_profit), 0) AS profit_units, coalesce(sum(gas_paid_wei), 0) AS gas_wei,
          coalesce(sum(realized_profit_usd), 0) AS profit_usd, coalesce(sum(gas_cost_usd), 0) AS gas_usd,
          coalesce(sum(realized_profit_usd - gas_cost_usd), 0) AS net_usd
   FROM outcomes WHERE settled_at >= $1 AND settled_at < $2 AND status IN ('landed', 'reverted', 'failed')
   GROUP BY chain, strategy, token ORDER BY chain, strategy, token"""


def settled_history() -> list[ExecutionOutcome]:
    """600 outcomes settled over the last 3 days and a half, every status, two chains and tokens, amounts up to
    2^200 and USD values of scales 0 to 21 (a sum's scale is its largest term's: the report prints it)."""
    statuses = ("landed", "landed", "reverted", "failed", "dry_run", "rejected")
    usd = (Decimal("1.5"), Decimal("0.000001"), Decimal(3), Decimal("-2.25"), Decimal("1e-21"))
    events = []
    for k in range(600):
        settle = NOW - dt.timedelta(minutes=k * 84 * 60 / 600)
        events.append(outcome(f"d{k % 3}", k).model_copy(update={
            "chain": ("base", "ethereum")[k % 2], "token": "0x" + ("11", "22")[k // 2 % 2] * 20,
            "status": statuses[k % 6], "realized_profit": 2**200 + k if k % 7 == 0 else k * 1000,
            "gas_paid_wei": 10**15 + k, "realized_profit_usd": usd[k % 5] * k, "gas_cost_usd": usd[(k + 2) % 5],
            "at": settle.timestamp(), "found_at": settle.timestamp() - 2, "settled_at": settle.timestamp(),
        }))  # fmt: skip
    return events


async def daily(conn: asyncpg.Connection, sql: str, day: dt.date) -> list[list[str]]:
    """The report's rows as the API prints them (every value by str)."""
    if sql == PLAIN_DAILY:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        records = await conn.fetch(sql, start, start + dt.timedelta(days=1))
    else:
        records = await conn.fetch(sql, day)
    return [[str(v) for v in r.values()] for r in records]


def test_outcome_days_follow_the_ingest_and_the_daily_report_reads_as_summing_the_day(postgres: Postgres) -> None:
    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("TRUNCATE executions, outcomes, outcome_days")
            events = settled_history()
            ingest = Ingest(None, pool)  # type: ignore[arg-type]  # write() only: no Redis
            # Overlapping batches (100 delivered twice), then a failed outcome of the oldest day stored late.
            await ingest.write(events[:400])
            await ingest.write([*events[300:597], *events[598:]])
            days = sorted({dt.datetime.fromtimestamp(e.settled_at, dt.UTC).date() for e in events})
            assert len(days) >= 4 and events[597].status == "failed"
            late = dt.datetime.fromtimestamp(events[597].settled_at, dt.UTC).date()
            before = await daily(conn, DAILY_SQL, late)
            await ingest.write(events[597:598])
            assert await daily(conn, DAILY_SQL, late) != before
            for day in (*days, days[0] - dt.timedelta(days=1), days[-1] + dt.timedelta(days=1)):
                assert await daily(conn, DAILY_SQL, day) == await daily(conn, PLAIN_DAILY, day), day
            reported = [row for day in days for row in await daily(conn, DAILY_SQL, day)]
            assert sum(int(row[3]) for row in reported) == 400  # 4 of 6 statuses are live
            assert any("E-" in row[9] or len(row[9].split(".")[-1]) == 21 for row in reported)  # scale 21 kept
            # The migration's fill sums what is stored as the trigger did.
            stored = await rows(conn, "SELECT * FROM outcome_days ORDER BY 1, 2, 3, 4")
            config = alembic_config(postgres.dsn)
            await asyncio.to_thread(command.downgrade, config, "0017")
            await asyncio.to_thread(command.upgrade, config, "head")
            assert await rows(conn, "SELECT * FROM outcome_days ORDER BY 1, 2, 3, 4") == stored
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


def test_closed_hours_are_kept_until_a_late_event_or_retention_changes_them(postgres: Postgres) -> None:
    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            ingest, sent, settled = await fresh_history(conn, pool, 1100, 900, 300)
            kept = ClosedHours()
            ten_hours_ago = NOW.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=10)
            windows = (NOW - dt.timedelta(hours=24), NOW - dt.timedelta(hours=5, minutes=17),
                       NOW - dt.timedelta(days=3), ten_hours_ago + dt.timedelta(minutes=10, seconds=30))  # fmt: skip

            async def answers(closed: ClosedHours | None) -> list[Any]:
                out: list[Any] = []
                for since in windows:
                    out += [await execution_timing_rows(conn, since, closed), await funnel_counts(conn, since, closed),
                            await opportunity_buckets(conn, since, closed)]  # fmt: skip
                return out

            hour = dt.datetime.now(dt.UTC).hour
            assert await answers(kept) == await answers(None)
            reads, hits = kept.reads, kept.hits
            assert await answers(kept) == await answers(None)
            # 4 windows, 3 queries, their kept parts (the first hour from its first whole minute, the closed hours up
            # to the first midnight, each day, the last day's hours): the second round read none of them again
            # (unless the current hour turned in between).
            assert (reads >= 4 * 3 * 2 and (kept.reads, kept.hits - hits) == (reads, reads + hits)) or (
                dt.datetime.now(dt.UTC).hour != hour
            )
            # Late: an execution, its outcome, a skip and an opportunity of an hour closed 20 hours ago, and of the
            # last window's first hour, after its first minute.
            before = await answers(kept)
            for k, late in ((1100, NOW - dt.timedelta(hours=20)), (1101, ten_hours_ago + dt.timedelta(minutes=40))):
                execution = sent[k].model_copy(update={"at": late.timestamp(), "found_at": late.timestamp() - 1})
                result = next(o for o in settled if o.opportunity_id == execution.opportunity_id)
                late_id = {"opportunity_id": f"late{k}", "at": late.timestamp(), "id": new_id()}  # a new event
                skip = skips_history()[0].model_copy(update=late_id)
                opportunity = history(1)[0].model_copy(update={**late_id, "id": new_id()})
                await ingest.write([execution, skip, opportunity])
                await ingest.write([result.model_copy(update={"settled_at": late.timestamp() + 3})])
            after = await answers(kept)
            assert after == await answers(None)
            # The 24-hour window and the last: one more execution, settled, skip and opportunity each.
            for index in (0, 1, 2, 9, 10, 11):
                assert after[index] != before[index], index
            # Retention deletes the hours of the skips and opportunities it drops.
            await drop_partitions_before(conn, (NOW - dt.timedelta(hours=30)).date())
            assert await answers(kept) == await answers(None)
            for since in windows:
                assert await funnel_counts(conn, since, kept) == await plain_funnel(conn, since), since
            # Six requests at once on three connections: each piece is read once, the others wait for it.
            herd, alone = ClosedHours(), ClosedHours()
            three = await asyncpg.create_pool(postgres.dsn, min_size=3, max_size=3)

            async def timing(closed: ClosedHours) -> list[dict[str, Any]]:
                async with three.acquire() as other:
                    return await execution_timing_rows(other, windows[2], closed)

            try:
                shared = await asyncio.gather(*(timing(herd) for _ in range(6)))
                assert shared == [await timing(alone)] * 6 and herd.reads == alone.reads
            finally:
                await three.close()
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


def test_identical_reads_in_flight_share_one_computation() -> None:
    """coalesced: 20 identical GETs at once run the handler once and all get its answer; another query
    string, another listener or a later request each get their own run; a refusal reaches every waiter."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from mevcontrol.api import coalesced

    from mevagent.api.app import Refused

    runs: list[str] = []

    @coalesced
    async def slow(request: web.Request) -> web.Response:
        runs.append(request.query_string)
        await asyncio.sleep(0.3)
        if request.query.get("bad"):
            raise Refused(400, "bad: refused", ["bad"])
        return web.json_response({"run": len(runs), "q": request.query_string})

    async def scenario() -> None:
        clients = []
        for _ in range(2):  # two listeners (apps) with the same route
            app = web.Application()
            app.router.add_get("/r", slow)
            clients.append(TestClient(TestServer(app, host="127.0.0.1")))
            await clients[-1].start_server()
        try:
            a, b = clients

            async def get(client: TestClient, query: str) -> tuple[int, Any]:
                async with client.get("/r?" + query) as r:
                    return r.status, await r.json() if r.status == 200 else await r.text()

            answers = await asyncio.gather(
                *(get(a, "hours=24") for _ in range(20)), get(a, "hours=1"), get(b, "hours=24")
            )
            assert [s for s, _ in answers] == [200] * 22
            assert len({answer["run"] for _, answer in answers[:20]}) == 1 and sorted(runs) == [
                "hours=1",
                "hours=24",
                "hours=24",
            ]
            assert answers[20][1]["q"] == "hours=1"
            later = await get(a, "hours=24")
            assert later[1]["run"] == 4  # nothing kept once answered
            refused = await asyncio.gather(*(slow_call(a) for _ in range(3)))
            assert refused == [["bad"]] * 3 and runs.count("bad=1") == 1
        finally:
            for client in clients:
                await client.close()

    async def slow_call(client: Any) -> list[str]:
        request = make_request(client.app)
        try:
            await slow(request)
        except Refused as exc:
            return exc.fields
        return []

    def make_request(app: Any) -> Any:
        from aiohttp.test_utils import make_mocked_request

        return make_mocked_request("GET", "/r?bad=1", app=app)

    asyncio.run(scenario())


def test_random_windows_to_the_microsecond_read_as_the_plain_queries(postgres: Postgres) -> None:
    """The window routes promise windows exact to the microsecond (timestamptz's resolution): every row at or after
    `since` counts, whichever hour `since` falls in. 40 windows of a seeded random start (any microsecond of the
    last 55 hours, or 2 ahead), and windows starting exactly at an execution's, a skip's and an opportunity's time
    and 1 µs after it, each asked twice of one ClosedHours (the second time answered by one statement from the kept
    pieces and their merge) and once more after a late execution, outcome, skip and opportunity: the funnel and the
    profit distribution equal counting the rows, the timing's counts and blocks equal the plain query and its
    seconds lie within the histogram's bound."""

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            ingest, sent, settled = await fresh_history(conn, pool, 1150, 950, 900)
            rng = random.Random(9)
            windows = [NOW + dt.timedelta(hours=2) - dt.timedelta(microseconds=rng.randrange(57 * 3600 * 10**6))
                       for _ in range(40)]  # fmt: skip
            edges = []
            for sql in ("SELECT at FROM executions", "SELECT at FROM skips", "SELECT found_at FROM opportunities"):
                at = await conn.fetchval(f"{sql} ORDER BY 1 OFFSET 300 LIMIT 1")
                assert at.minute or at.second  # inside an hour
                edges += [at, at + dt.timedelta(microseconds=1)]
            kept = ClosedHours()

            async def check(since: dt.datetime) -> tuple[Any, ...]:
                funnel = await funnel_counts(conn, since, kept)
                assert funnel == await plain_funnel(conn, since), since
                buckets = [tuple(r) for r in await opportunity_buckets(conn, since, kept)]
                assert buckets == await rows(conn, PLAIN_BUCKETS, since), since
                timing = await execution_timing_rows(conn, since, kept)
                plain = [dict(r) for r in await conn.fetch(PLAIN_TIMING, since, since - dt.timedelta(days=1))]
                assert [(r["chain"], r["executions"], r["settled"]) for r in timing] == [
                    (r["chain"], r["executions"], r["settled"]) for r in plain
                ], since
                for ours, exact in zip(timing, plain, strict=True):
                    for key, value in exact.items():
                        if value is None or key.startswith("blocks_to_inclusion"):
                            assert ours[key] == value, (since, key)
                        elif key.endswith("_s"):
                            assert abs(ours[key] - value) <= TIMING_RELATIVE_ERROR * abs(value) + 1e-6, (since, key)
                return funnel, buckets, timing

            first = [await check(since) for since in (*windows, *edges)]
            reads = kept.reads
            assert [await check(since) for since in (*windows, *edges)] == first
            assert kept.reads == reads or dt.datetime.now(dt.UTC).hour != NOW.hour  # all kept (unless the hour turned)
            # At the edges: the row at `since` counts, 1 µs later it does not.
            at_execution, after_execution, at_skip, after_skip, at_found, after_found = first[len(windows) :]
            assert at_execution[0]["sent"][""] == after_execution[0]["sent"][""] + 1
            assert sum(at_skip[0]["skip"].values()) == sum(after_skip[0]["skip"].values()) + 1
            assert sum(n for _, n in at_found[1]) == sum(n for _, n in after_found[1]) + 1
            # Late rows in closed hours: the kept pieces and merges that hold them are read again.
            late = NOW - dt.timedelta(hours=30, minutes=7)
            await write_late_rows(ingest, sent, settled, late)
            after = [await check(since) for since in (*windows, *edges)]
            assert after != first
            # The stuck list's shared reads (one of the widest window, filtered) equal each window's own list, and a
            # read that found `limit` rows sends each window to its own read.
            await conn.execute("TRUNCATE gas_prices")
            await conn.execute(
                """INSERT INTO gas_prices (event_id, at, agent, chain, block, base_fee_wei, priority_fee_p50_wei,
                                           priority_fee_p90_wei, priority_fee_p99_wei)
                   VALUES (gen_random_uuid(), now(), 't0', 'base', 1600, 1, 1, 1, 1),
                          (gen_random_uuid(), now(), 't0', 'ethereum', 5000, 1, 1, 1, 1)"""
            )
            for limit in (500, 20):
                shared = SharedStuck()
                spans = [rng.randrange(1, 60) for _ in range(12)]
                lists = await asyncio.gather(*(shared.rows(pool, 3, span, limit) for span in spans))
                for span, listed in zip(spans, lists, strict=True):
                    assert listed == await stuck.stuck_rows(conn, 3, span, limit=limit), (limit, span)
                assert shared.reads == (1 if limit == 500 else 1 + len(spans)), limit
                widest = len(lists[spans.index(max(spans))])
                assert widest > 20 if limit == 500 else widest == 20, limit
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())


def test_competition_reports_in_flight_are_shared_by_windows(postgres: Postgres) -> None:
    """SharedReports: requests of different windows at once answer as each window's own competition report,
    whether they join a read that covers their window, one that found `limit` rows, or read their own."""

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=3)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("TRUNCATE opportunities, outcomes, opportunity_hours")
            # 72 cycles over the last 6 hours, one every 5 minutes, none within 2 minutes of a whole hour back.
            now = dt.datetime.now(dt.UTC)
            events = [
                found(f"c{k % 2}", k).model_copy(update={
                    "at": (now - dt.timedelta(minutes=5 * k + 2.5)).timestamp(),
                    "pools": ("0x" + f"{k:040x}", "0x" + f"{k + 1:040x}"),
                })
                for k in range(72)
            ]  # fmt: skip
            await Ingest(None, pool).write(events)  # type: ignore[arg-type]  # write() only: no Redis
            # One SharedReports through: the widest first covers the rest (one read of each list); then, the last
            # read of 10 having found 10, the narrowest first serves the rest (it finds 10 of its 12); with 5000 (never
            # found) and for the signals (none), each wider window reads its own.
            shared = SharedReports()
            for limit, order, missed_reads, risk_reads in ((10, range(6, 0, -1), 1, 1), (10, range(1, 7), 2, 7),
                                                           (5000, range(1, 7), 8, 13)):  # fmt: skip
                queries = [CompetitionQuery(hours=h, limit=limit) for h in order]
                answers = await asyncio.gather(*(shared.answer(pool, q) for q in queries))
                for query, answer in zip(queries, answers, strict=True):
                    assert answer == await competition(conn, query), (limit, query.hours)
                    assert answer["missed"] == min(limit, 12 * query.hours)
                assert (shared.missed.reads, shared.risks.reads) == (missed_reads, risk_reads), (limit, order)
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(scenario())
