"""The fleet control plane's figures, each beside its baseline from the same run.

1. Ingest: events pre-loaded into the real Redis, consumed into the real PostgreSQL by the control
   plane's own Ingest (consumer group, batched transactions, ack after commit): events/s sustained,
   then count and checksum (every id once, the exact sum of the base-unit amounts).
2. Bus → committed: simulated agents (real BusPublishers with their spools) publish at a fixed total
   rate while the ingest runs; the delay from each event's creation to its commit, p50/p99.
3. Publisher cost on the agent: building an event and `publish()` per event, against building the
   event alone and against nothing (the loop itself): microseconds per event and the ratio.
4. Emergency stop: `mevagent run` processes connected to the bus, the control plane's emergency stop
   (persist, bus, direct API call to each) until every agent acknowledged on both paths, p50/p99 over
   the trials; the baseline is one direct API call to one agent.

Redis 7 and PostgreSQL 15 are Debian's, started on loopback in temporary directories (testbed/services.py).
Run: .venv/bin/python bench/control_ingest.py [--events 50000] [--trials 100]
[--only ingest|bus|publisher|estop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from figures import pct  # noqa: E402
from mevcontrol.config import ControlConfig  # noqa: E402
from mevcontrol.db import connect_pool, migrate  # noqa: E402
from mevcontrol.ingest import Ingest  # noqa: E402
from mevcontrol.operations import Operations  # noqa: E402
from mevcontrol.service import Control  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from mevagent.bus.events import DURABLE_STREAM, FIELD, encode  # noqa: E402
from mevagent.bus.publisher import BusPublisher  # noqa: E402
from mevagent.bus.spool import Spool  # noqa: E402
from testbed.control import Operator, found, outcome, secret_file  # noqa: E402
from testbed.services import Postgres, RedisServer, free_port  # noqa: E402


async def ingest_throughput(redis: Redis, dsn: str, events: int) -> None:
    batch = 2000
    for start in range(0, events, batch):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(events, start + batch)):
                pipe.xadd(DURABLE_STREAM, {FIELD: encode(outcome("bench", n))})
            await pipe.execute()
    pool = await connect_pool(dsn)
    ingest = Ingest(redis, pool)
    await ingest.ensure_groups()
    started = time.perf_counter()
    task = asyncio.create_task(ingest.run())
    deadline = time.monotonic() + 300
    while ingest.stats.committed.get("outcome", 0) < events and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    events = min(events, ingest.stats.committed.get("outcome", 0))  # what made it within the deadline
    ingest.stop()
    await asyncio.wait([task], timeout=10)
    row = await pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, sum(realized_profit) AS profit FROM outcomes "
        "WHERE agent = 'bench'"
    )
    await pool.close()
    expected = sum(n + 1 for n in range(events)) if row["n"] == events else None
    print(
        f"ingest: {events} outcomes in {elapsed:.2f} s = {events / elapsed:,.0f} events/s sustained "
        f"(target >= 5,000); batches {ingest.stats.batches}"
    )
    ok = row["n"] == row["ids"] == events and row["profit"] == expected
    print(
        f"ingest: count {row['n']} (distinct ids {row['ids']}), checksum {row['profit']} == {expected}: "
        f"{'OK' if ok else 'MISMATCH'}"
    )


def _simulated_agents(redis_url: str, password: str, directory: str, rate: int, seconds: int, agents: int) -> None:
    """In a process of its own (the agents are other hosts): publishers at `rate` events/s in total."""

    async def run() -> None:
        publishers = [
            BusPublisher(Redis.from_url(redis_url, password=password), Spool(Path(directory) / f"spool{i}"),
                         max_queue=100_000)
            for i in range(agents)
        ]  # fmt: skip
        runs = [asyncio.create_task(p.run()) for p in publishers]
        total, sent, started = rate * seconds, 0, time.perf_counter()
        per_tick = max(1, rate // 100)
        while sent < total:
            for _ in range(per_tick):
                publishers[sent % agents].publish(found(f"sim{sent % agents}", 10_000_000 + sent))
                sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
        for p in publishers:
            await p.flushed(30)
        print(
            f"bus->committed: {sent} events from {agents} publishers (another process) at "
            f"{sent / (time.perf_counter() - started):,.0f}/s, dropped {sum(p.dropped for p in publishers)}"
        )
        for p in publishers:
            p.stop()
        await asyncio.wait(runs, timeout=10)

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(run())


async def bus_to_committed(redis_url: str, password: str, dsn: str, directory: Path, rate: int, seconds: int) -> None:
    pool = await connect_pool(dsn)
    redis = Redis.from_url(redis_url, password=password)
    ingest = Ingest(redis, pool)
    await ingest.ensure_groups()
    total = rate * seconds
    ingest.keep_delays(total)
    task = asyncio.create_task(ingest.run())
    agents = multiprocessing.get_context("spawn").Process(
        target=_simulated_agents, args=(redis_url, password, str(directory), rate, seconds, 4)
    )
    agents.start()
    deadline = time.monotonic() + seconds + 60
    while len(ingest.stats.delays) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(agents.join, 30)
    delays = ingest.stats.delays
    print(
        f"bus->committed: committed {len(delays)} of {total}; p50 {pct(delays, 0.5) * 1e3:.1f} ms, "
        f"p99 {pct(delays, 0.99) * 1e3:.1f} ms (target p99 <= 1000 ms)"
    )
    ingest.stop()
    await asyncio.wait([task], timeout=10)
    await redis.aclose()
    await pool.close()


def publisher_cost(directory: Path, n: int = 50_000) -> None:
    publisher = BusPublisher(Redis(), Spool(directory / "cost"), max_queue=n + 1)  # never connected: queue only

    def loop(build: bool, publish: bool) -> float:
        started = time.perf_counter()
        for i in range(n):
            if build:
                event = found("cost", i)
                if publish:
                    publisher.publish(event)
        return (time.perf_counter() - started) / n * 1e6

    rounds = [(loop(False, False), loop(True, False), loop(True, True)) for _ in range(3)]
    base, built, published = (min(r[i] for r in rounds) for i in range(3))
    print(
        f"publisher: per event {published - built:.2f} us for publish() (a queue append; the sender encodes) "
        f"on top of "
        f"{built - base:.2f} us to build the event; build+publish {published:.2f} us vs the empty loop "
        f"{base:.3f} us (target: publish <= 5 us)"
    )
    publisher.spool.close()


async def emergency_stop(redis_server: RedisServer, pg: Postgres, directory: Path, trials: int) -> None:
    agents, entries, procs = 4, [], []
    for i in range(agents):
        adir = directory / f"agent{i}"
        adir.mkdir()
        token = secrets.token_hex(20)
        port = free_port()
        data = {
            "state_dir": str(adir / "state"),
            "api": {
                "bind": "127.0.0.1",
                "port": port,
                "token_file": str(secret_file(adir / "t", token)),
                "metrics_port": free_port(),
            },
            "chains": [
                {
                    "name": "ethereum",
                    "chain_id": 31337,
                    "ws_url": f"ws://127.0.0.1:{free_port()}",
                    "max_gas_price_gwei": 100,
                }
            ],
            "bus": {"agent": f"e{i}", "redis_url": redis_server.url, "password_file": str(redis_server.password_file)},
        }
        (adir / "agent.yml").write_text(yaml.safe_dump(data))
        mevagent = Path(sys.executable).parent / "mevagent"
        procs.append(
            subprocess.Popen(
                [str(mevagent), "run", "--config", str(adir / "agent.yml")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        entries.append(
            {"name": f"e{i}", "api_url": f"http://127.0.0.1:{port}", "token_file": str(secret_file(adir / "ct", token))}
        )
    config = ControlConfig.model_validate(
        {
            "redis_url": redis_server.url,
            "redis_password_file": str(redis_server.password_file),
            "postgres_dsn_file": str(secret_file(directory / "dsn", pg.dsn)),
            "agents": entries,
            "operators": [Operator("bench", "operator").entry],
        }
    )
    control = await Control.open(config)
    await control.start()
    ops = Operations(control)
    try:
        async with aiohttp.ClientSession() as session:
            for entry in entries:  # every agent answers its API and heartbeats
                for _ in range(300):
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with session.get(entry["api_url"] + "/health") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.1)
        deadline = time.monotonic() + 120
        while len(await control.agents()) < agents:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {await control.agents()} of {agents} agents heartbeat after 120 s")
            await asyncio.sleep(0.1)
        stops, directs, complete = [], [], 0
        for _ in range(trials):
            started = time.perf_counter()
            answer = await ops.emergency_stop("bench", "bench")
            stops.append(time.perf_counter() - started)
            complete += all(a == {"api": "acknowledged", "bus": "acked"} for a in answer["agents"].values())
            await ops._emergency_resume("bench", "bench-approver")
            started = time.perf_counter()
            await ops.call_agent(config.agents[0], "POST", "/emergency/resume", {})
            directs.append(time.perf_counter() - started)
        print(
            f"emergency stop: {trials} trials, {agents} agents (mevagent processes), every agent acknowledged "
            f"by API and bus in {complete}/{trials}; p50 {pct(stops, 0.5) * 1e3:.1f} ms, "
            f"p99 {pct(stops, 0.99) * 1e3:.1f} ms (target p99 <= 100 ms); baseline one direct API call "
            f"p50 {pct(directs, 0.5) * 1e3:.1f} ms: ratio p50 "
            f"{pct(stops, 0.5) / pct(directs, 0.5):.1f}x"
        )
    finally:
        await ops.close()
        await control.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--only", choices=["ingest", "bus", "publisher", "estop"], help="one part of the four")
    args = parser.parse_args()
    run = {args.only} if args.only else {"ingest", "bus", "publisher", "estop"}
    directory = Path(tempfile.mkdtemp(prefix="bench-control-"))
    # The figures depend on what else the machine runs: say how loaded it was.
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    redis_server = RedisServer(directory)
    pg = Postgres()
    redis_server.start()
    try:
        pg.init()
        await migrate(pg.dsn)
        if "ingest" in run:
            redis = Redis.from_url(redis_server.url, password=redis_server.password)
            await ingest_throughput(redis, pg.dsn, args.events)
            await redis.aclose()
        if "bus" in run:
            await bus_to_committed(redis_server.url, redis_server.password, pg.dsn, directory, args.rate, args.seconds)
        if "publisher" in run:
            publisher_cost(directory)
        if "estop" in run:
            await emergency_stop(redis_server, pg, directory, args.trials)
    finally:
        redis_server.stop()
        pg.remove()
        shutil.rmtree(directory, ignore_errors=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come, even into a file
    asyncio.run(main())
