"""The history routes' queries against the real PostgreSQL, each beside the plain query it replaced
(bench/control_api.py for why): the hourly opportunity counts (revision 0013) follow what the ingest wrote,
once per event, and the analytics window reads the same as counting the opportunities; the newest gas
price per chain and latency per agent and chain by skip scan equal DISTINCT ON; the execution timing's
bounded join equals the unbounded one."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg
from mevcontrol.api import (
    EXECUTION_TIMING_SQL,
    GAS_PRICES_SQL,
    LATENCY_SQL,
    opportunity_buckets,
)
from mevcontrol.db import drop_partitions_before
from mevcontrol.ingest import Ingest

from mevagent.bus.events import OpportunityFound

from .fleet import found
from .services import Postgres

PLAIN_BUCKETS = """SELECT width_bucket(profit_usd - gas_cost_usd, 0, 100, 10) AS bucket, count(*) AS n
                   FROM opportunities WHERE found_at >= $1 GROUP BY bucket ORDER BY bucket"""
PLAIN_HOURS = """SELECT date_trunc('hour', found_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
                        width_bucket(profit_usd - gas_cost_usd, 0, 100, 10) AS bucket, count(*) AS n
                 FROM opportunities GROUP BY 1, 2 ORDER BY 1, 2"""
NOW = dt.datetime.now(dt.UTC)


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
                unbounded = await rows(conn, EXECUTION_TIMING_SQL, since, dt.datetime.min.replace(tzinfo=dt.UTC))
                bounded = await rows(conn, EXECUTION_TIMING_SQL, since, since - dt.timedelta(days=1))
                assert bounded == unbounded and unbounded[0][2] > 0, hours_back
        finally:
            await conn.close()

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
