"""The control plane's history routes (:8080 /api/*) at 100 concurrent clients, with a large history beside
an empty one, in the same run.

The control plane is the `mevcontrol run` process over TLS; Redis 7 and PostgreSQL 15 are Debian's, started on
loopback in temporary directories (as testbed/services.py starts them), the schema migrated to head. Then:

1. baseline: every route with the history empty (what TLS, the token check, the handler and a round trip to
   PostgreSQL cost at that concurrency on this machine);
2. the history filled with COPY (asyncpg's binary copy into the partitioned tables): --opportunities
   opportunities and --executions executions spread over 30 days (the target's figures: 10,000,000 and
   1,000,000), an outcome for every execution but the last day's 50 (90 % landed; detection -> send 0.05-2.04 s,
   send -> settled 1-12.7 s, 1-5 blocks to inclusion: spread, so that an hour's timing histograms hold ~90
   buckets per chain, not one per metric as constant durations would), a skip for every tenth
   opportunity, a gas-price head per chain and minute and a latency report per agent, chain and minute;
   ANALYZE and VACUUM as autovacuum would after such a load;
3. every route again: p50 and p99 with the history, and their ratios to the baseline.

Each measurement: --requests requests per route from --clients clients at once (one TLS connection each,
kept alive), routes one after another; twice: every client the same request (what many dashboards polling
a view do: the control plane's coalescing shares a read in flight), and every client its own (its own
`hours` window or report day: each request its own query). The target is p99 <= 25 ms at 100
clients with 1,000,000 executions and 10,000,000 opportunities stored; on a 2-core machine that also runs
the client, TLS and HTTP alone take much of it, which is what the baseline shows.

That closed loop measures saturation: 100 requests always in flight on one Python process, so each answer
waits behind the others (p99 ~ 100 x the service time, the empty history's too). With --rate R the bench runs
open loop instead, as dashboards and scripts polling a view load it: each client sends R requests a second on
its own schedule (a random phase, each interval varied by up to +-jitter) for --duration seconds per route,
waits for its answer before its next send (its one kept-alive connection), and each latency runs from the
request's scheduled time, not its send, so a server that stalls is charged for the requests it delays (no
coordinated omission). Beside p50/p99/max it reports per route the rate achieved, the requests sent more than
2 ms late (the clients fell behind their schedule), the bench process's CPU as a share of one core (the
clients' own cost: near 100 % they, not the server, would be the limit) and the p99 without each client's
first request (with its own window, the first reads it cold; a dashboard pays that once per view); the empty
baseline is measured the same way in the same run. Figures and what the bench found: docs/control-plane.md.
Run: .venv/bin/python bench/control_api.py [--opportunities 10000000] [--executions 1000000]
     [--keep-history | --history-dsn DSN] [--rate 2 --duration 30] [--routes timing opportunities] [--no-warm]
(--no-warm: the control plane's history warmer off, mevcontrol.warm; it prints the control plane's memory after.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class Route:
    """One route's measurement: the latencies (open loop: from each request's scheduled time), and what the
    bench itself did meanwhile."""

    times: list[float] = field(default_factory=list)
    # The same without each client's first request: with its own window, a client's first request reads that
    # window's pieces cold (then kept), which a dashboard pays once when it opens a view, not every poll.
    later: list[float] = field(default_factory=list)
    late: int = 0  # open loop: requests sent more than LATE_S after their scheduled time
    wall_s: float = 0.0  # from the first send to the last answer
    cpu_s: float = 0.0  # this process's user + system seconds (the clients, their TLS and HTTP)
    load: float = 0.0  # the 1-minute load average at its end (the bench's figures are the machine's load)


# A request sent this long after its scheduled time counts as late: the clients (or the event loop they share)
# did not keep up with the schedule. Its latency is still charged from the schedule.
LATE_S = 0.002


async def measure(
    base: str,
    operator: Operator,
    cafile: Path,
    clients: int,
    requests: int,
    distinct: bool = False,
    rate: float | None = None,
    duration: float = 30.0,
    jitter: float = 0.0,
) -> dict[str, Route]:
    """Per route: the seconds of GETs sent by `clients` clients (with `distinct`, each client its own request of
    the route).

    Closed loop (`rate` None): `requests` GETs, each client sending its next as soon as its previous answered.
    Open loop: each client sends `rate` GETs a second for `duration` seconds on its own schedule (a random phase
    within the first interval, each interval varied by up to +-`jitter` of itself), whatever the answers do; a
    request's latency runs from its scheduled time, so a server that stalls is charged for the sends it delays
    (a client waits for its answer before its next send, one connection each, as a dashboard's poller would)."""
    context = ssl.create_default_context(cafile=str(cafile))
    connector = aiohttp.TCPConnector(limit=clients, ssl=context)
    headers = {"Authorization": f"Bearer {operator.token}"}
    out: dict[str, Route] = {}
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
            result = out[route] = Route()
            left = [requests]
            began = time.perf_counter()

            async def client(
                k: int, route: str = route, result: Route = result, left: list[int] = left, began: float = began
            ) -> None:
                path = variant(route, k) if distinct else route
                sent = False
                if rate is not None:
                    rng = random.Random(k)  # seeded: the same schedule in the empty and the full run
                    interval = 1 / rate
                    due = began + rng.random() * interval
                while True:
                    if rate is None:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                        due = time.perf_counter()
                    else:
                        if due >= began + duration:
                            return
                        wait = due - time.perf_counter()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        elif -wait > LATE_S:
                            result.late += 1
                    async with session.get(base + path) as r:
                        await r.read()
                        assert r.status == 200, (route, r.status)
                    latency = time.perf_counter() - due
                    result.times.append(latency)
                    if sent:
                        result.later.append(latency)
                    sent = True
                    if rate is not None:
                        due += interval * (1 + jitter * rng.uniform(-1, 1))

            cpu = os.times()
            await asyncio.gather(*(client(k) for k in range(clients)))
            result.wall_s = time.perf_counter() - began
            result.cpu_s = sum(os.times()[:2]) - sum(cpu[:2])
            result.load = os.getloadavg()[0]
    return out


def report(title: str, empty: dict[str, Route], full: dict[str, Route]) -> None:
    print(f"  {title}")
    print(f"  {'route':<32} {'empty p50':>10} {'p99':>8}   {'full p50':>9} {'p99':>8}   ratio p50   p99")
    worst = 0.0
    for route in ROUTES:
        e, f = empty[route].times, full[route].times
        e50, e99, f50, f99 = pct(e, 0.5), pct(e, 0.99), pct(f, 0.5), pct(f, 0.99)
        worst = max(worst, f99)
        print(f"  {route:<32} {1000 * e50:8.1f} ms {1000 * e99:6.1f} ms   {1000 * f50:7.1f} ms {1000 * f99:6.1f} ms"
              f"   x{f50 / e50:6.2f}  x{f99 / e99:6.2f}")  # fmt: skip
    print(f"  worst p99 with the history {1000 * worst:.1f} ms (target <= 25 ms)")


def report_open(title: str, rate: float, clients: int, empty: dict[str, Route], full: dict[str, Route]) -> None:
    """The open loop's table: beside the latencies, the rate the clients achieved, the sends that left late and
    the bench process's CPU (a share of one core: near 100 % the clients, not the server, would be the limit)."""
    loads = [r.load for r in (*empty.values(), *full.values())]
    print(f"  {title} (1-minute load average {min(loads):.2f}-{max(loads):.2f})")
    print(f"  {'route':<32} {'empty p50':>9} {'p99':>7} {'max':>7}   {'full p50':>8} {'p99':>7} {'max':>7}"
          f"   ratio p50   p99   req/s  late  bench CPU  p99 w/o 1st")  # fmt: skip
    worst = 0.0
    for route in ROUTES:
        e, f = empty[route].times, full[route].times
        e50, e99, f50, f99 = pct(e, 0.5), pct(e, 0.99), pct(f, 0.5), pct(f, 0.99)
        worst = max(worst, f99)
        achieved = len(f) / full[route].wall_s
        cpu = full[route].cpu_s / full[route].wall_s
        print(f"  {route:<32} {1000 * e50:6.1f} ms {1000 * e99:7.1f} {1000 * max(e):7.1f}   {1000 * f50:5.1f} ms"
              f" {1000 * f99:7.1f} {1000 * max(f):7.1f}   x{f50 / e50:6.2f}  x{f99 / e99:6.2f} {achieved:7.0f}"
              f" {full[route].late:5d} {100 * cpu:6.0f} %   {1000 * pct(full[route].later, 0.99):7.1f} ms"
              f"  (empty: {empty[route].late} late, {100 * empty[route].cpu_s / empty[route].wall_s:.0f} %,"
              f" p99 w/o 1st {1000 * pct(empty[route].later, 0.99):.1f} ms)")  # fmt: skip
    print(
        f"  asked {rate * clients:.0f} req/s ({clients} clients x {rate:g}); worst p99 with the history"
        f" {1000 * worst:.1f} ms (target <= 25 ms)"
    )


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
    parser.add_argument(
        "--keep-history",
        action="store_true",
        help="leave the filled PostgreSQL running and print its DSN and directory (for --history-dsn runs; stop it"
        " with pg_ctl as user postgres, then remove the directory)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: each client sends this many requests a second on its own schedule (default: closed loop,"
        " each client's next request as soon as its previous answered)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="open loop: seconds per route and condition")
    parser.add_argument(
        "--jitter", type=float, default=0.05, help="open loop: each interval varied by up to +- this share of itself"
    )
    parser.add_argument(
        "--routes",
        nargs="+",
        metavar="PART",
        help="measure only the routes whose path holds one of these (default: all)",
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="the control plane's history warmer off (history_warm.enabled: false; mevcontrol.warm): before/after",
    )
    args = parser.parse_args()
    if args.routes:
        global ROUTES
        ROUTES = tuple(r for r in ROUTES if any(part in r for part in args.routes))
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
        warm = {"history_warm": {"enabled": False}} if args.no_warm else {}
        path = control_config(directory, redis_server, pg, [alice], rate_limit_per_s=100_000, **warm)
        data = yaml.safe_load(path.read_text())
        data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
        path.write_text(yaml.safe_dump(data))
        proc = await started(path, directory)
        base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"
        if args.rate is None:
            print(f"control plane API, {args.clients} clients at once, {args.requests} GETs per route and condition")
        else:
            print(f"control plane API, open loop: {args.clients} clients, {args.rate:g} GETs a second each"
                  f" (jitter +-{100 * args.jitter:g} %), {args.duration:g} s per route and condition")  # fmt: skip
        shape = {"rate": args.rate, "duration": args.duration, "jitter": args.jitter}
        empty = await measure(base, alice, cert, args.clients, args.requests, **shape)
        empty_own = await measure(base, alice, cert, args.clients, args.requests, distinct=True, **shape)
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
        full = await measure(base, alice, cert, args.clients, args.requests, **shape)
        full_own = await measure(base, alice, cert, args.clients, args.requests, distinct=True, **shape)
        # The control plane's memory after the history (with the warmer: its kept hours of every window).
        rss = next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))  # fmt: skip
        print(f"  control plane resident memory after the history: {int(rss) / 1024:.0f} MiB")
        same = "every client the same request (reads in flight at once share one query)"
        own = "every client its own request (its own window or day: nothing shared)"
        if args.rate is None:
            report(same, empty, full)
            report(own, empty_own, full_own)
        else:
            report_open(same, args.rate, args.clients, empty, full)
            report_open(own, args.rate, args.clients, empty_own, full_own)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        if args.keep_history and not args.history_dsn:
            print(f"  kept: --history-dsn {pg.dsn} (data directory {pg.directory})")
        else:
            pg.remove()
        redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
