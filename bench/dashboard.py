"""The dashboard's figures, each beside its baseline from the same run.

1. First paint and time to interactive of every view, measured in the browser (Playwright driving
   Debian's headless chromium; the Paint Timing entries and the page's own `dashboard-interactive`
   mark: the view's data loaded and rendered, the controls wired), over a fresh navigation with a
   logged-in session: with an empty history (baseline) and with --executions executions stored
   (1,000,000 by default: executions, their outcomes and their opportunities, spread over 30 days,
   made in PostgreSQL with generate_series), median and worst of --loads navigations per view.
2. The control plane's API p99 (bearer GETs: gas prices, latency, today's report) while simulated
   agents publish on the bus (heartbeats, exposure, latency, gas, opportunities, outcomes), with no
   dashboard open (baseline) and with --sessions live SSE sessions (each logged in, reading its
   stream), printed as a ratio.

The control plane is the `mevcontrol run` process over TLS; Redis 7 and PostgreSQL 15 are Debian's,
started on loopback in temporary directories (as testbed/services.py starts them).
Run: .venv/bin/python bench/dashboard.py [--executions 1000000] [--sessions 50] [--loads 5]
With --breakdown, where each load's time goes (the page, its scripts, the session call, the view's JSON,
from the browser's Navigation and Resource Timing) and each view's JSON timed from a client; with
--compare-js FILE, every view's load with this app.js against FILE's, alternating; --rounds 0 skips the
API part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import yaml  # noqa: E402
from figures import pct  # noqa: E402
from mevcontrol.db import ensure_partitions, migrate  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from mevagent.bus.events import (  # noqa: E402
    BEST_EFFORT_STREAM,
    DURABLE_STREAM,
    FIELD,
    ExposureSnapshot,
    GasPrices,
    Heartbeat,
    Latency,
    encode,
)
from testbed.control import Operator, control_config, found, outcome, start_control, tls_pair  # noqa: E402
from testbed.services import Postgres, RedisServer  # noqa: E402

VIEWS = ("pnl", "strategy", "risk", "health", "feed", "stuck", "audit")
DAYS = 30
CHAINS = ("ethereum", "arbitrum", "base", "bsc")
API_PATHS = ("/api/gas/prices", "/api/health/latency", "/api/reports/daily")


async def fill_history(dsn: str, n: int) -> float:
    """n executions, their outcomes (90% landed) and opportunities, over the last DAYS days; seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        today = dt.datetime.now(dt.UTC).date()
        await ensure_partitions(conn, {today - dt.timedelta(days=d) for d in range(DAYS + 1)})
        span = DAYS * 86400
        common = f"""FROM generate_series(1, {n}) AS i,
                     LATERAL (SELECT now() - ((i::float8 / {n}) * {span}) * interval '1 second' AS t,
                                     (ARRAY{list(CHAINS)})[1 + i % {len(CHAINS)}] AS chain) AS x"""
        await conn.execute(
            f"""INSERT INTO executions (event_id, at, agent, chain, strategy, opportunity_id, block, tx_hashes,
                                        found_at)
                SELECT gen_random_uuid(), t, 'bench' || (i % 8), chain, 'dex_arb', 'h' || i, 20000000 + i,
                       ARRAY['0x' || lpad(to_hex(i), 64, '0')], t - interval '2 seconds' {common}"""
        )
        await conn.execute(
            f"""INSERT INTO outcomes (event_id, at, agent, chain, strategy, opportunity_id, block, status, token,
                   amount_in, realized_profit, gas_paid_wei, token_usd_per_unit, native_usd_per_wei,
                   realized_profit_usd, gas_cost_usd, tx_hashes, included_block, reason, found_at, settled_at)
                SELECT gen_random_uuid(), t, 'bench' || (i % 8), chain, 'dex_arb', 'h' || i, 20000000 + i,
                       CASE WHEN i % 10 = 0 THEN 'reverted' ELSE 'landed' END, '0x' || repeat('11', 20),
                       10^18, CASE WHEN i % 10 = 0 THEN 0 ELSE 10^15 END, 10^14, 1e-18, 3e-15,
                       CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 0.3, ARRAY['0x' || lpad(to_hex(i), 64, '0')],
                       20000001 + i, '', t - interval '2 seconds', t {common}"""
        )
        await conn.execute(
            f"""INSERT INTO opportunities (event_id, found_at, agent, chain, strategy, opportunity_id, block, token,
                   amount_in, amount_out, gas_limit, gas_price_wei, builder_payment_wei, token_usd_per_unit,
                   notional_usd, profit_usd, gas_cost_usd, hops)
                SELECT gen_random_uuid(), t - interval '2 seconds', 'bench' || (i % 8), chain, 'dex_arb', 'h' || i,
                       20000000 + i, '0x' || repeat('11', 20), 10^18, 10^18 + 10^15, 300000, 10^9, 0, 1e-18,
                       1000, 1, 0.3, 2 {common}"""
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


# Where a load's time goes (ms from the navigation's start), read from the Navigation and Resource Timing
# entries: the page itself, the last script, the session call, the view's and the risk view's JSON.
BREAKDOWN_JS = """(view) => {
  const nav = performance.getEntriesByType('navigation')[0];
  const end = (pred) => Math.max(0, ...performance.getEntriesByType('resource').filter((e) => pred(e.name))
                                                   .map((e) => e.responseEnd));
  const start = (pred) => Math.min(...performance.getEntriesByType('resource').filter((e) => pred(e.name))
                                                   .map((e) => e.startTime));
  return {html: nav.responseEnd, scripts: end((n) => n.endsWith('.js')), dom: nav.domContentLoadedEventEnd,
          session: end((n) => n.endsWith('/dashboard/session')),
          view_start: start((n) => n.includes('/dashboard/view/' + view)),
          view: end((n) => n.includes('/dashboard/view/' + view)),
          risk: end((n) => n.includes('/dashboard/view/risk')),
          bytes: performance.getEntriesByType('resource').reduce((a, e) => a + e.transferSize, nav.transferSize)};
}"""
BREAKDOWN: dict[str, list[dict[str, float]]] = {}


async def page_loads(
    base: str, operator: Operator, loads: int, label: str = ""
) -> dict[str, list[tuple[float, float]]]:
    """Per view: (first contentful paint, time to interactive) in ms of `loads` fresh navigations (and each
    load's breakdown in BREAKDOWN[label/view])."""
    from playwright.async_api import async_playwright

    out: dict[str, list[tuple[float, float]]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, chromium_sandbox=False, args=["--no-sandbox"]
        )
        context = await browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        await page.goto(base + "/dashboard/")
        await page.fill("#token", operator.token)
        await page.press("#token", "Enter")
        await page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        for view in VIEWS:
            for _ in range(loads):
                await page.goto("about:blank")
                await page.goto(f"{base}/dashboard/#{view}")
                await page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                paint, ready = await page.evaluate(
                    """() => [performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
                              performance.getEntriesByName('dashboard-interactive')[0].startTime]"""
                )
                out.setdefault(view, []).append((paint, ready))
                BREAKDOWN.setdefault(f"{label}/{view}", []).append(await page.evaluate(BREAKDOWN_JS, view))
        await browser.close()
    return out


async def compare_scripts(base: str, operator: Operator, other: Path, loads: int) -> None:
    """Time to interactive of every view with the page's own app.js against `other` (another version of it, e.g.
    `git show main~3:agent/mevcontrol/dashboard/static/app.js`), alternating load by load so that the machine's
    load hits both alike; both are handed to the page by the browser itself (no request reaches the host)."""
    from playwright.async_api import Route, async_playwright

    ours = (REPO / "agent/mevcontrol/dashboard/static/app.js").read_bytes()
    theirs = other.read_bytes()
    current = [ours]

    async def serve(route: Route) -> None:
        await route.fulfill(body=current[0], content_type="application/javascript")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, chromium_sandbox=False, args=["--no-sandbox"]
        )
        context = await browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        await page.route("**/dashboard/static/app.js*", serve)
        await page.goto(base + "/dashboard/")
        await page.fill("#token", operator.token)
        await page.press("#token", "Enter")
        await page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        for view in VIEWS:
            times: dict[str, list[float]] = {"this": [], "other": []}
            for k in range(2 * loads):
                label = "this" if k % 2 == 0 else "other"
                current[0] = ours if label == "this" else theirs
                await page.goto("about:blank")
                await page.goto(f"{base}/dashboard/#{view}")
                await page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                times[label].append(
                    await page.evaluate("() => performance.getEntriesByName('dashboard-interactive')[0].startTime")
                )
            a, b = statistics.median(times["this"]), statistics.median(times["other"])
            print(f"  {view:<9} interactive p50 {a:6.0f} ms (max {max(times['this']):5.0f}) with this app.js, "
                  f"{b:6.0f} ms (max {max(times['other']):5.0f}) with {other.name}: x{a / b:.2f}")  # fmt: skip
        await browser.close()


def report_breakdown(label: str) -> None:
    """Medians of each load's milestones (ms from the navigation's start), and the worst load's."""
    keys = ("html", "scripts", "dom", "session", "view_start", "view", "risk")
    for key, loads in BREAKDOWN.items():
        if not key.startswith(label + "/"):
            continue
        med = {k: statistics.median(load[k] for load in loads) for k in keys}
        worst = max(loads, key=lambda load: max(load["view"], load["risk"]))
        fmt = "  ".join(f"{k} {med[k]:5.0f}" for k in keys)
        print(f"  {key:<28} p50: {fmt}  ({statistics.median(load['bytes'] for load in loads) / 1024:.0f} KiB)")
        print(f"  {'':<28} max: " + "  ".join(f"{k} {worst[k]:5.0f}" for k in keys))


async def view_times(base: str, operator: Operator, n: int = 5) -> None:
    """Each view's JSON as the page asks for it, timed from the client (TLS loopback, a session cookie)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(base + "/dashboard/login", json={"token": operator.token}, ssl=False) as r:
            assert r.status == 200, await r.text()
        for view in VIEWS:
            times, size = [], 0
            for _ in range(n):
                started = time.perf_counter()
                async with session.get(f"{base}/dashboard/view/{view}", ssl=False) as r:
                    size = len(await r.read())
                times.append(1000 * (time.perf_counter() - started))
            print(f"  GET /dashboard/view/{view:<9} p50 {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms"
                  f"  {size / 1024:6.1f} KiB")  # fmt: skip


async def publish(redis: Redis, stop: asyncio.Event, rate: int) -> int:
    """Simulated agents on the bus: per second, `rate` opportunities, a tenth as many outcomes, and each
    agent's heartbeat, exposure, latency and gas prices."""
    sent, n = 0, 0
    agents = [f"sim{k}" for k in range(4)]
    while not stop.is_set():
        tick = time.monotonic()
        async with redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                chain = CHAINS[agents.index(agent)]
                for event in (
                    Heartbeat(agent=agent, chains=(chain,), live_chains=(chain,), lease_fresh=True,
                              lease_expires_in_s=15, emergency_stop=False, spool_pending=0, dropped=0),
                    ExposureSnapshot(agent=agent, total_usd=Decimal(100), by_chain={chain: Decimal(100)},
                                     in_flight=1, emergency_stop=False),
                    Latency(agent=agent, chain=chain, rpc_round_trip_s=0.002, stages={"found_to_outcome_p99": 0.2}),
                    GasPrices(agent=agent, chain=chain, block=30_000_000 + n, base_fee_wei=10**9,
                              priority_fee_p50_wei=10**8, priority_fee_p90_wei=2 * 10**8,
                              priority_fee_p99_wei=5 * 10**8),
                ):  # fmt: skip
                    pipe.xadd(BEST_EFFORT_STREAM, {FIELD: encode(event)})
                    sent += 1
            for _ in range(rate):
                n += 1
                pipe.xadd(BEST_EFFORT_STREAM, {FIELD: encode(found(agents[n % 4], n))})
                sent += 1
                if n % 10 == 0:
                    pipe.xadd(DURABLE_STREAM, {FIELD: encode(outcome(agents[n % 4], n))})
                    sent += 1
            await pipe.execute()
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    return sent


async def sse_session(base: str, operator: Operator, ready: asyncio.Event, counts: list[int]) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.post(base + "/dashboard/login", json={"token": operator.token}, ssl=False) as r:
            assert r.status == 200, await r.text()
        async with session.get(base + "/dashboard/events", ssl=False) as stream:
            assert stream.status == 200
            ready.set()
            async for chunk in stream.content.iter_any():
                counts[0] += len(chunk)


async def api_p99(base: str, operator: Operator, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {operator.token}"}
    times: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for k in range(requests):
            path = API_PATHS[k % len(API_PATHS)]
            started = time.perf_counter()
            async with session.get(base + path, ssl=False) as r:
                await r.read()
                assert r.status == 200, (path, r.status)
            times.append(time.perf_counter() - started)
    return times


def report_loads(label: str, loads: dict[str, list[tuple[float, float]]], baseline: dict[str, Any] | None) -> None:
    for view, samples in loads.items():
        painted = [p for p, _ in samples if p == p]  # NaN: chromium reported no paint entry for that load
        paint = statistics.median(painted) if painted else float("nan")
        ready = statistics.median(r for _, r in samples)
        worst = max(r for _, r in samples)
        line = (
            f"  {label:>22} {view:<9} first paint {paint:6.0f} ms  interactive p50 {ready:6.0f} ms  max {worst:6.0f} ms"
        )
        if baseline is not None:
            base_ready = statistics.median(r for _, r in baseline[view])
            line += f"  (x{ready / base_ready:.2f} of the empty history)"
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="per round and condition")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=50, help="opportunities per second on the bus")
    parser.add_argument("--breakdown", action="store_true", help="where each page load's time goes")
    parser.add_argument("--compare-js", type=Path, help="another app.js to compare in alternating loads")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("bench/dashboard.py: chromium is missing: run `make setup`")
    directory = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    redis_server, pg = RedisServer(directory), Postgres()
    alice = Operator("alice", "operator")
    redis_server.start()
    proc = None
    try:
        pg.init()
        await migrate(pg.dsn)
        cert, key = tls_pair(directory)
        path = control_config(directory, redis_server, pg, [alice], rate_limit_per_s=100_000)
        data = yaml.safe_load(path.read_text())
        data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
        path.write_text(yaml.safe_dump(data))
        proc = start_control(path, directory / "control.log")
        base = f"https://127.0.0.1:{data['listen']['dashboard_port']}"
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with aiohttp.ClientSession() as s, s.get(base + "/health", ssl=False) as r:
                    if r.status == 200:
                        break
            await asyncio.sleep(0.1)

        print(f"1. page loads ({args.loads} fresh navigations per view, a logged-in session, 1440x900)")
        empty = await page_loads(base, alice, args.loads, "empty")
        report_loads("empty history", empty, None)
        seconds = await fill_history(pg.dsn, args.executions)
        print(f"  stored {args.executions:,} executions + outcomes + opportunities over {DAYS} days in {seconds:.0f} s")
        full = await page_loads(base, alice, args.loads, "full")
        report_loads(f"{args.executions:,} executions", full, empty)
        if args.breakdown:
            print("  where the time goes (ms from the navigation's start; view_start: the view's request sent)")
            report_breakdown("empty")
            report_breakdown("full")
            print(f"  the views' JSON with {args.executions:,} executions stored")
            await view_times(base, alice)
        if args.compare_js is not None:
            print(f"  this app.js against {args.compare_js}, {args.loads} loads each, alternating")
            await compare_scripts(base, alice, args.compare_js, args.loads)
        if args.rounds == 0:
            return

        bus = f"{args.rate} opportunities/s and {args.rate // 10} outcomes/s"
        print(f"2. API p99 ({args.rounds} rounds of {args.requests} bearer GETs of {', '.join(API_PATHS)} per "
              f"condition) while {bus} are on the bus")  # fmt: skip
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        stop = asyncio.Event()
        publisher = asyncio.create_task(publish(redis, stop, args.rate))
        await asyncio.sleep(3)
        # Rounds alternate (none open, then the sessions open) so the machine's other load hits both alike.
        alone: list[float] = []
        loaded: list[float] = []
        pushed: list[float] = []
        for _ in range(args.rounds):
            alone += await api_p99(base, alice, args.requests)
            counts = [0]
            readies = [asyncio.Event() for _ in range(args.sessions)]
            streams = [asyncio.create_task(sse_session(base, alice, r, counts)) for r in readies]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
            await asyncio.sleep(2)
            before, started = counts[0], time.perf_counter()
            loaded += await api_p99(base, alice, args.requests)
            pushed.append((counts[0] - before) / (time.perf_counter() - started))
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            await asyncio.sleep(1)
        stop.set()
        await publisher
        await redis.aclose()
        for label, times in (("no dashboard open", alone), (f"{args.sessions} live SSE sessions", loaded)):
            print(f"  {label:>22}: p50 {1000 * pct(times, 0.5):7.1f} ms  p99 {1000 * pct(times, 0.99):7.1f} ms")
        print(f"  p99 ratio {pct(loaded, 0.99) / pct(alone, 0.99):.2f}x (target <= 2x); the sessions received "
              f"{statistics.mean(pushed) / 1024:.0f} KiB/s together")  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        pg.remove()
        redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
