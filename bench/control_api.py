"""The control plane's history routes (:8080 /api/*) at 100 concurrent clients, with a large history beside
an empty one, in the same run.

The control plane is the `mevcontrol run` process over TLS; Redis 7 and PostgreSQL 15 are Debian's, started on
loopback in temporary directories (as testbed/services.py starts them), the schema migrated to head. Then:

1. baseline: every route with the history empty (what TLS, the token check, the handler and a round trip to
   PostgreSQL cost at that concurrency on this machine);
2. the history filled with COPY (asyncpg's binary copy into the partitioned tables): --opportunities
   opportunities and --executions executions spread over 30 days (the issue's figures: 10,000,000 and
   1,000,000), an outcome for every execution but the last day's 50 (90 % landed; detection -> send 0.05-2.04 s,
   send -> settled 1-12.7 s, 1-5 blocks to inclusion: spread, so that an hour's timing histograms hold ~90
   buckets per chain, not one per metric as constant durations would), a skip for every tenth
   opportunity, a gas-price head per chain and minute and a latency report per agent, chain and minute;
   ANALYZE and VACUUM as autovacuum would after such a load;
3. every route again: p50 and p99 with the history, and their ratios to the baseline.

Each measurement: --requests requests per route from --clients clients at once (one TLS connection each,
kept alive), routes one after another; twice: every client the same request (what many dashboards polling
a view do: the control plane's coalescing shares a read in flight), and every client its own (its own
`hours` window or report day: each request its own query). The issue's target is p99 <= 25 ms at 100
clients with 1,000,000 executions and 10,000,000 opportunities stored; on a 2-core machine that also runs
the client, TLS and HTTP alone take much of it, which is what the baseline shows. Figures and what the
bench found: docs/control-plane.md.
Run: .venv/bin/python bench/control_api.py [--opportunities 10000000] [--executions 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import yaml  # noqa: E402
from figures import pct  # noqa: E402
from mevcontrol.db import ensure_partitions, migrate  # noqa: E402

from testbed.control import Operator, control_config, start_control, tls_pair  # noqa: E402
from testbed.services import Postgres, RedisServer  # noqa: E402

DAYS = 30
SPAN_S = DAYS * 86_400
CHAINS = ("ethereum", "arbitrum", "base", "bsc")
AGENTS = 8
STUCK = 50
ROUTES = (
    "/api/reports/daily",
    "/api/reports/daily?format=csv",
    "/api/transactions/stuck",
    "/api/gas/prices",
    "/api/analytics/opportunities",
    "/api/analytics/competition",
    "/api/analytics/sandwiches",
    "/api/health/latency",
    "/api/execution/timing",
)
BATCH = 200_000
TOKEN = "0x" + "11" * 20
E18 = 10**18


def _batches(rows: Iterator[tuple], size: int = BATCH) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
    n = 0
    for batch in _batches(rows):
        await conn.copy_records_to_table(table, records=batch, columns=columns)
        n += len(batch)
    return n


async def fill(dsn: str, opportunities: int, executions: int) -> dict[str, int]:
    """The history: opportunity i found i * 30 days / n ago (so the newest first), on chain i % 4, by agent
    i % 8; execution j likewise over the same span (its outcome 2 s later, 3 blocks later)."""
    now = dt.datetime.now(dt.UTC)
    conn = await asyncpg.connect(dsn)
    counts: dict[str, int] = {}
    try:
        await ensure_partitions(conn, {(now - dt.timedelta(days=d)).date() for d in range(DAYS + 1)})
        usd_unit, zero, one = Decimal("1e-18"), Decimal(0), Decimal(1)
        profits = [Decimal(k) / 4 - 1 for k in range(500)]  # -1 .. 124 USD: every bucket of the distribution
        # An arbitrage's cycle: two of 64 pools (what the competition report matches on).
        pool = ["0x" + f"{k:040x}" for k in range(64)]
        pools = [[pool[k], pool[(k * 7 + 1) % 64]] for k in range(64)]

        def opps() -> Iterator[tuple]:
            step = SPAN_S / opportunities
            for i in range(opportunities):
                at = now - dt.timedelta(seconds=i * step)
                yield (uuid.UUID(int=i + 1), at, f"bench{i % AGENTS}", CHAINS[i % 4], "dex_arb", f"o{i}",
                       20_000_000 - i // 4, TOKEN, E18, E18 + 10**15, 300_000, 10**9, 0, usd_unit, Decimal(1000),
                       profits[i % 500], Decimal("0.3"), 2, pools[i % len(pools)])  # fmt: skip

        columns = ["event_id", "found_at", "agent", "chain", "strategy", "opportunity_id", "block", "token",
                   "amount_in", "amount_out", "gas_limit", "gas_price_wei", "builder_payment_wei",
                   "token_usd_per_unit", "notional_usd", "profit_usd", "gas_cost_usd", "hops", "pools"]  # fmt: skip
        counts["opportunities"] = await copy(conn, "opportunities", columns, opps())

        def skips() -> Iterator[tuple]:
            step = SPAN_S / opportunities
            for i in range(0, opportunities, 10):
                at = now - dt.timedelta(seconds=i * step)
                name = ("max_gas_price", "max_position_size", "min_profit")[i % 3]
                yield (uuid.UUID(int=i + 1), at, f"bench{i % AGENTS}", CHAINS[i % 4], "dex_arb", f"o{i}",
                       20_000_000 - i // 4, name, "bench")  # fmt: skip

        columns = ["event_id", "at", "agent", "chain", "strategy", "opportunity_id", "block", "limit_name", "reason"]
        counts["skips"] = await copy(conn, "skips", columns, skips())

        def hashes(j: int) -> list[str]:
            return ["0x" + f"{j:064x}"]

        def to_send(j: int) -> dt.timedelta:  # detection -> send, 0.05-2.04 s
            return dt.timedelta(seconds=0.05 + (j % 200) / 100)

        def to_settle(j: int) -> dt.timedelta:  # send -> settled, 1-12.7 s
            return dt.timedelta(seconds=1 + (j % 40) * 0.3)

        def execs() -> Iterator[tuple]:
            step = SPAN_S / executions
            for j in range(1, executions + 1):
                at = now - dt.timedelta(seconds=j * step)
                yield (uuid.UUID(int=j), at, f"bench{j % AGENTS}", CHAINS[j % 4], "dex_arb", f"e{j}",
                       20_000_000 - j, hashes(j), at - to_send(j))  # fmt: skip

        columns = ["event_id", "at", "agent", "chain", "strategy", "opportunity_id", "block", "tx_hashes", "found_at"]
        counts["executions"] = await copy(conn, "executions", columns, execs())
        # Every execution settled but STUCK of the last day (as in bench/stuck_query.py).
        every = max(1, executions // DAYS // 2 // STUCK)

        def outs() -> Iterator[tuple]:
            step = SPAN_S / executions
            for j in range(1, executions + 1):
                if j % every == 0 and j <= every * STUCK:
                    continue
                sent = now - dt.timedelta(seconds=j * step)
                at = sent + to_settle(j)
                reverted = j % 10 == 0
                yield (uuid.UUID(int=j), at, f"bench{j % AGENTS}", CHAINS[j % 4], "dex_arb", f"e{j}",
                       20_000_000 - j, "reverted" if reverted else "landed", TOKEN, E18, 0 if reverted else 10**15,
                       10**14, usd_unit, Decimal("3e-15"), zero if reverted else one, Decimal("0.3"), hashes(j),
                       20_000_000 - j + 1 + j % 5, "", sent - to_send(j), at)  # fmt: skip

        columns = ["event_id", "at", "agent", "chain", "strategy", "opportunity_id", "block", "status", "token",
                   "amount_in", "realized_profit", "gas_paid_wei", "token_usd_per_unit", "native_usd_per_wei",
                   "realized_profit_usd", "gas_cost_usd", "tx_hashes", "included_block", "reason", "found_at",
                   "settled_at"]  # fmt: skip
        counts["outcomes"] = await copy(conn, "outcomes", columns, outs())
        minutes = DAYS * 24 * 60

        def gas() -> Iterator[tuple]:
            for m in range(minutes):
                for c, chain in enumerate(CHAINS):
                    yield (uuid.UUID(int=m * 8 + c + 1), now - dt.timedelta(minutes=m), f"bench{c}", chain,
                           20_000_100 - m, 10**9, 10**8, 2 * 10**8, 5 * 10**8)  # fmt: skip

        columns = ["event_id", "at", "agent", "chain", "block", "base_fee_wei", "priority_fee_p50_wei",
                   "priority_fee_p90_wei", "priority_fee_p99_wei"]  # fmt: skip
        counts["gas_prices"] = await copy(conn, "gas_prices", columns, gas())

        def latency() -> Iterator[tuple]:
            stages = '{"found_to_outcome_p50": 0.05, "found_to_outcome_p99": 0.2}'
            for m in range(minutes):
                for a in range(AGENTS):
                    yield (uuid.UUID(int=m * 8 + a + 1), now - dt.timedelta(minutes=m), f"bench{a}",
                           CHAINS[a % 4], 0.002, stages)  # fmt: skip

        # jsonb's binary form: a version byte (1), then the text.
        await conn.set_type_codec(
            "jsonb",
            encoder=lambda text: b"\x01" + text.encode(),
            decoder=lambda raw: raw[1:].decode(),
            schema="pg_catalog",
            format="binary",
        )
        columns = ["event_id", "at", "agent", "chain", "rpc_round_trip_s", "stages"]
        counts["latency"] = await copy(conn, "latency", columns, latency())
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return counts


def variant(route: str, k: int) -> str:
    """Client k's own request of `route` (no two clients' reads the same, so the control plane's coalescing
    shares none): its own window of hours, or its own day of the daily report. The two routes without
    parameters stay the same for every client."""
    sep = "&" if "?" in route else "?"
    if route.startswith("/api/reports/daily"):
        day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=k % DAYS)
        return f"{route}{sep}day={day.isoformat()}"
    if route in ("/api/gas/prices", "/api/health/latency"):
        return route
    return f"{route}{sep}hours={1 + k % (24 * DAYS)}"


async def measure(
    base: str, operator: Operator, cafile: Path, clients: int, requests: int, distinct: bool = False
) -> dict[str, list[float]]:
    """Per route: the seconds of `requests` GETs sent by `clients` clients at once (with `distinct`, each
    client its own request of the route)."""
    context = ssl.create_default_context(cafile=str(cafile))
    connector = aiohttp.TCPConnector(limit=clients, ssl=context)
    headers = {"Authorization": f"Bearer {operator.token}"}
    out: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def health() -> None:
            async with session.get(base + "/health") as r:
                await r.read()

        # Warm: one TLS connection per client, and each route once.
        await asyncio.gather(*(health() for _ in range(clients)))
        for route in ROUTES:
            async with session.get(base + route) as r:
                assert r.status == 200, (route, r.status, await r.text())
        for route in ROUTES:
            times: list[float] = []
            left = [requests]

            async def client(k: int, route: str = route, times: list[float] = times, left: list[int] = left) -> None:
                path = variant(route, k) if distinct else route
                while left[0] > 0:
                    left[0] -= 1
                    started = time.perf_counter()
                    async with session.get(base + path) as r:
                        await r.read()
                        assert r.status == 200, (route, r.status)
                    times.append(time.perf_counter() - started)

            await asyncio.gather(*(client(k) for k in range(clients)))
            out[route] = times
    return out


def report(title: str, empty: dict[str, list[float]], full: dict[str, list[float]]) -> None:
    print(f"  {title}")
    print(f"  {'route':<32} {'empty p50':>10} {'p99':>8}   {'full p50':>9} {'p99':>8}   ratio p50   p99")
    worst = 0.0
    for route in ROUTES:
        e50, e99, f50, f99 = pct(empty[route], 0.5), pct(empty[route], 0.99), pct(full[route], 0.5), pct(
            full[route], 0.99
        )  # fmt: skip
        worst = max(worst, f99)
        print(f"  {route:<32} {1000 * e50:8.1f} ms {1000 * e99:6.1f} ms   {1000 * f50:7.1f} ms {1000 * f99:6.1f} ms"
              f"   x{f50 / e50:6.2f}  x{f99 / e99:6.2f}")  # fmt: skip
    print(f"  worst p99 with the history {1000 * worst:.1f} ms (target <= 25 ms)")


async def started(config: Path, directory: Path) -> subprocess.Popen[bytes]:
    """The control plane of `config`, once it answers /health."""
    proc = start_control(config, directory / "control.log")
    data = yaml.safe_load(config.read_text())
    base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"
    context = ssl.create_default_context(cafile=data["listen"]["tls_cert_file"])
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with aiohttp.ClientSession() as s, s.get(base + "/health", ssl=context) as r:
                if r.status == 200:
                    return proc
        await asyncio.sleep(0.1)
    proc.terminate()
    sys.exit("the control plane did not answer /health within 60 s:\n" + (directory / "control.log").read_text())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opportunities", type=int, default=10_000_000)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000, help="per route and condition")
    parser.add_argument(
        "--history-dsn",
        help="measure the history on this database, filled earlier (the fill's own run: its times are that run's"
        " 'now'), instead of filling the empty one: before and after a change on the same data, without a fill each",
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-control-api-"))
    redis_server, pg = RedisServer(directory), Postgres()
    alice = Operator("alice", "viewer")
    redis_server.start()
    proc = None
    try:
        pg.init()
        await migrate(pg.dsn)
        conn = await asyncpg.connect(pg.dsn)
        try:  # as the deploy's 90-mevfleet.conf has it (JIT compiled the competition query: +1.4 s)
            await conn.execute("ALTER SYSTEM SET jit = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        cert, key = tls_pair(directory)
        path = control_config(directory, redis_server, pg, [alice], rate_limit_per_s=100_000)
        data = yaml.safe_load(path.read_text())
        data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
        path.write_text(yaml.safe_dump(data))
        proc = await started(path, directory)
        base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"
        print(f"control plane API, {args.clients} clients at once, {args.requests} GETs per route and condition")
        empty = await measure(base, alice, cert, args.clients, args.requests)
        empty_own = await measure(base, alice, cert, args.clients, args.requests, distinct=True)
        if args.history_dsn:
            proc.terminate()
            proc.wait(20)
            (directory / "pg.dsn").write_text(args.history_dsn + "\n")
            proc = await started(path, directory)
            print("  the history of --history-dsn")
        else:
            began = time.perf_counter()
            counts = await fill(pg.dsn, args.opportunities, args.executions)
            stored = ", ".join(f"{n:,} {table}" for table, n in counts.items())
            print(f"  stored {stored} with COPY in {time.perf_counter() - began:.0f} s (VACUUM ANALYZE included)")
        full = await measure(base, alice, cert, args.clients, args.requests)
        full_own = await measure(base, alice, cert, args.clients, args.requests, distinct=True)
        report("every client the same request (reads in flight at once share one query)", empty, full)
        report("every client its own request (its own window or day: nothing shared)", empty_own, full_own)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        pg.remove()
        redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
