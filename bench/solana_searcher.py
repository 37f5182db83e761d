"""Solana searcher figures, each against a baseline run side by side.
(Not named solana.py: run as a script, that name would shadow the `solana` client package it compares against.)

1. Account update -> affected cycles re-evaluated, with 2,000 Raydium CPMM pools in the book (one core,
   in process): a vault's new data goes through the agent's `SolanaSearcher.on_accounts` (decode, update,
   the cycles through that pool re-sized). Baseline: the same update followed by re-sizing every cycle
   of the book (what a searcher without the pool -> cycle index does).
2. Slot -> bundle received by the simulator's block engine (solana-standin in its own process): on each
   slot notification the agent builds, sends and simulates the bundle for a standing opportunity (its
   executor's `submit`, blockhash kept fresh by `keep_blockhash`), each phase timed; t0 is when the
   simulator began the slot, t1 when its block engine received the bundle (both CLOCK_MONOTONIC, read back
   with the simulator's test-only timing method). Also run: the executor with `simulate_first` (simulated,
   then sent), and the baseline: the unmodified `solana` client for the blockhash (fetched per bundle) and
   the simulation, then the bundle sent.

Usage: .venv/bin/python bench/solana_searcher.py [--pools 2000] [--updates 2000] [--slots 60]    (about two minutes;
       p99 of 60 slots is their maximum: --slots 600 --only slots --no-baseline for a tail worth the name)
       [--only slots] [--no-baseline] [--profile FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

from figures import pct  # noqa: E402
from solders.keypair import Keypair  # noqa: E402

from mevagent.config import RiskLimits  # noqa: E402
from mevagent.risk.gate import ChainLimits, RiskGate  # noqa: E402
from mevagent.solana.book import PoolBook  # noqa: E402
from mevagent.solana.cycles import CycleFinder, CycleSettings  # noqa: E402
from mevagent.solana.executor import ExecutorSettings, SolanaExecutor  # noqa: E402
from mevagent.solana.layouts import RAYDIUM_CPMM, AccountData  # noqa: E402
from mevagent.solana.rpc import BlockEngine, SolanaRpc  # noqa: E402
from testbed.solana.standin import start_standin  # noqa: E402
from testbed.solana.world import (  # noqa: E402
    SOL,
    build_world,
    cpmm_config_data,
    cpmm_pool_data,
    settle_by_transfers,
    spl_owned,
    token_account_data,
)


def in_process_book(n_pools: int, rnd: random.Random):
    """n_pools CPMM pools over 1 base mint and n_pools/10 others, priced consistently (each mint has a price
    in base units, each pool within 0.1 % of it), as a market is between arbitrages: about a third touch
    the base mint."""
    base = Keypair().pubkey()
    others = [Keypair().pubkey() for _ in range(max(2, n_pools // 10))]
    price = {base: 1.0, **{o: 10 ** rnd.uniform(-2, 2) for o in others}}
    authority, config = Keypair().pubkey(), Keypair().pubkey()
    book, pools, vaults = PoolBook(), [], []
    for i in range(n_pools):
        a = base if i % 3 == 0 else rnd.choice(others)
        b = rnd.choice([o for o in others if o != a])
        pool, va, vb = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
        book.add("raydium_cpmm", pool)
        ra = rnd.randrange(10**11, 10**13)
        rb = int(ra * price[a] / price[b] * rnd.uniform(0.999, 1.001))
        pools.append((pool, AccountData(cpmm_pool_data(config, va, vb, a, b), RAYDIUM_CPMM)))
        vaults.append((va, vb, a, b, ra, rb))
    book.apply_many(pools)  # the pools first: then their vaults and config are known
    items = [(config, AccountData(cpmm_config_data(2_500), RAYDIUM_CPMM))]
    for va, vb, a, b, ra, rb in vaults:
        items += [
            (va, spl_owned(token_account_data(a, authority, ra))),
            (vb, spl_owned(token_account_data(b, authority, rb))),
        ]
    book.apply_many(items)
    return book, vaults, base, authority


def bench_updates(n_pools: int, n_updates: int, seed: int) -> None:
    rnd = random.Random(seed)
    book, vaults, base, authority = in_process_book(n_pools, rnd)
    finder = CycleFinder(CycleSettings(base_mint=str(base), max_input=10 * SOL))
    finder.rebuild(book.pools.values())

    def update() -> tuple:
        _, vb, _, b, _, rb = rnd.choice(vaults)
        return vb, spl_owned(token_account_data(b, authority, int(rb * rnd.uniform(0.998, 1.002))))

    ours, full = [], []
    for i in range(n_updates):
        vault, data = update()
        t0 = time.perf_counter_ns()
        finder.evaluate(book.apply_many([(vault, data)]), 0)
        ours.append((time.perf_counter_ns() - t0) / 1e3)
        if i < max(20, n_updates // 20):  # every cycle per update is slow: a sample is enough
            t0 = time.perf_counter_ns()
            book.apply_many([(vault, data)])
            for cycle in finder.cycles:
                finder.size(cycle, 0)
            full.append((time.perf_counter_ns() - t0) / 1e3)
    cycles = len(finder.cycles)
    per_pool = statistics.mean(len(v) for v in finder.by_pool.values()) if finder.by_pool else 0
    print(
        f"\n1. account update -> affected cycles re-evaluated ({n_pools} pools, {cycles} cycles, "
        f"{per_pool:.1f} cycles per pool on average, {len(ours)} updates, one core)"
    )
    print(f"   {'':24}{'p50 us':>12}{'p99 us':>12}")
    print(f"   {'ours (pool index)':24}{pct(ours, 0.5):>12.1f}{pct(ours, 0.99):>12.1f}")
    print(f"   {'baseline (every cycle)':24}{pct(full, 0.5):>12.1f}{pct(full, 0.99):>12.1f}  ({len(full)} updates)")
    p50, p99 = pct(full, 0.5) / pct(ours, 0.5), pct(full, 0.99) / pct(ours, 0.99)
    print(f"   ratio baseline/ours p50 {p50:.1f}x, p99 {p99:.1f}x")


PHASES = ("ticker", "blockhash", "build", "simulate", "send")


@dataclass
class SlotRun:
    """One run's slot -> bundle samples (ms) and their phases (ms per slot, in PHASES' order):
    ticker: the simulator began the slot -> its notification read by the agent (the simulator's own slot
    work and the WebSocket; not the agent's); blockhash: fetched (baseline: every bundle; ours keeps it
    fresh in the background, a fetch on the path when it has none counts in build); build: compiled and
    signed; simulate: the simulation round trip (ours sends first: not on the path, 0); send: encoded and
    POSTed -> received by the block engine."""

    totals: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    # How late a 1 ms sleep woke in the agent's process during the run (ms): large values with little work
    # of ours on the path mean the process was off the CPU (a loaded machine), not busy in our code.
    loop_lag: list[float] = field(default_factory=list)


def _timed(marks: dict[str, float], name: str, fn):
    """`fn` (sync or async) that also notes when it returned in `marks[name]` (CLOCK_MONOTONIC)."""
    if asyncio.iscoroutinefunction(fn):

        async def wrapped_async(*args, **kwargs):
            result = await fn(*args, **kwargs)
            marks[name] = time.monotonic()
            return result

        return wrapped_async

    def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        marks[name] = time.monotonic()
        return result

    return wrapped


async def slot_to_bundle(
    slots: int, baseline: bool, simulate_first: bool = False, profile: cProfile.Profile | None = None
) -> SlotRun:
    standin = start_standin(slot_ms=400, auction_ms=200, jito_rps=1000.0)
    try:
        world = build_world(standin)
        # Deep pools (the same 150 / 140 gap): every slot's bundle lands and pays the same stale quote out of
        # the vaults, which at 100 SOL ran dry after about 60 slots; these last thousands.
        world.add_pool(100_000 * SOL, 15_000_000 * SOL)
        world.add_pool(100_000 * SOL, 14_000_000 * SOL)
        # The bundles land (the test venue pays the stale quote); each slot's bundle is a new transaction (its
        # compute-unit price is the slot's index): an identical one would be deduplicated by the block engine
        # and keep the first receipt's time.
        async with aiohttp.ClientSession() as session:
            rpc, engine = SolanaRpc(session, standin.http), BlockEngine(session, standin.block_engine, rps=1000)
            gate = RiskGate(RiskLimits(max_slippage_bps=0), {"solana": ChainLimits(10**9)}, Path(_tmp()))
            executor = SolanaExecutor(
                rpc,
                [engine],
                world.payer,
                world.ours,
                gate,
                ExecutorSettings(live=True, sol_usd=150.0, simulate_first=simulate_first),
                await engine.tip_accounts(),
                venues={"raydium_cpmm": settle_by_transfers(world.authority)},
            )
            book = PoolBook()
            for p in world.pools:
                book.add("raydium_cpmm", p.address)
            for _ in range(3):
                book.apply_many(await rpc.accounts(book.accounts()))
            # The least tip (tip_share_bps 0): paid every slot, a share of the gross would drain the payer's SOL.
            settings = CycleSettings(base_mint=str(world.base), max_input=50 * SOL, tip_share_bps=0)
            finder = CycleFinder(settings)
            finder.rebuild(book.pools.values())
            best = finder.evaluate(list(book.pools.values()), 0)[0]
            marks: dict[str, float] = {}
            executor.build = _timed(marks, "build", executor.build)  # type: ignore[method-assign]
            rpc.simulate = _timed(marks, "simulate", rpc.simulate)  # type: ignore[method-assign]
            keeper = None if baseline else asyncio.create_task(executor.keep_blockhash())  # as SolanaRoute runs it
            client = None
            if baseline:
                from solana.rpc.async_api import AsyncClient

                client = AsyncClient(standin.http)
            ids: list[str] = []
            seen: list[dict[str, float]] = []
            lags: list[float] = []

            async def lag_probe() -> None:
                while True:
                    start = time.monotonic()
                    await asyncio.sleep(0.001)
                    lags.append((time.monotonic() - start - 0.001) * 1e3)

            prober = asyncio.create_task(lag_probe())
            async with session.ws_connect(standin.ws) as ws:
                await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "slotSubscribe"}).decode())
                async for msg in ws:
                    note = orjson.loads(msg.data)
                    if note.get("method") != "slotNotification":
                        continue
                    marks.clear()
                    marks["note"] = time.monotonic()
                    if profile is not None:
                        profile.enable()
                    micro = 1 + len(ids)
                    if baseline:
                        blockhash = (await client.get_latest_blockhash()).value.blockhash
                        marks["blockhash"] = time.monotonic()
                        built = executor.build(best, blockhash, 400_000, micro)
                        await client.simulate_transaction(built.tx)
                        marks["simulate"] = time.monotonic()
                        ids.append(await engine.send_bundle([built.tx]))
                    else:
                        submitted = await executor.submit(best, 400_000, micro)
                        assert submitted.bundle_id is not None and submitted.simulation is None, submitted
                        ids.append(submitted.bundle_id)
                    if profile is not None:
                        profile.disable()
                    seen.append(dict(marks))
                    if len(ids) >= slots:
                        break
            if client is not None:
                await client.close()
            if keeper is not None:
                keeper.cancel()
            prober.cancel()
            timings = standin.call("standin_bundleTimings", ids)
            run = SlotRun(loop_lag=lags)
            for t, m in zip(timings, seen, strict=True):
                if t is None:
                    continue
                run.totals.append((t["received"] - t["slot_started"]) * 1e3)
                # Each phase ends at its mark and starts at the one before; what ends after the block engine
                # received the bundle (our simulation, sent first) is not on this path: 0.
                ends = {"ticker": m["note"], **{k: v for k, v in m.items() if k != "note"}, "send": t["received"]}
                last = t["slot_started"]
                for name, end in sorted(ends.items(), key=lambda item: item[1]):
                    run.phases[name].append(max(0.0, end - last) * 1e3 if end <= t["received"] else 0.0)
                    last = end if end <= t["received"] else last
                for name in PHASES:
                    if name not in ends:
                        run.phases[name].append(0.0)
            return run
    finally:
        standin.stop()


def _tmp() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="bench-solana-")


def print_slots(runs: dict[str, SlotRun]) -> None:
    ours = runs[OURS]
    print(f"\n2. slot -> bundle received by the simulator's block engine ({len(ours.totals)} slots per row)")
    print(f"   {'':44}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'> 20 ms':>9}")
    for label, run in runs.items():
        over = sum(t > 20 for t in run.totals)
        top = max(run.totals, default=float("nan"))
        print(f"   {label:44}{pct(run.totals, 0.5):>10.2f}{pct(run.totals, 0.99):>10.2f}{top:>10.2f}{over:>9}")
        for name in PHASES:
            values = run.phases[name]
            top = max(values, default=float("nan"))
            print(f"     {name:42}{pct(values, 0.5):>10.2f}{pct(values, 0.99):>10.2f}{top:>10.2f}")
        lag, top, name = run.loop_lag, max(run.loop_lag, default=float("nan")), "(agent loop lag: 1 ms sleep late by)"
        print(f"     {name:42}{pct(lag, 0.5):>10.2f}{pct(lag, 0.99):>10.2f}{top:>10.2f}")
    for label, run in runs.items():
        if label != OURS:
            p50, p99 = pct(run.totals, 0.5) / pct(ours.totals, 0.5), pct(run.totals, 0.99) / pct(ours.totals, 0.99)
            print(f"   ratio {label.split(' (')[0]}/ours p50 {p50:.2f}x, p99 {p99:.2f}x")
    print("   target: p99 <= 20 ms (ticker is the simulator's own slot work and the WebSocket, not the agent's)")


OURS = "ours (bundle sent, then simulated)"
SIM_FIRST = "simulate first (simulated, then sent)"
BASELINE = "baseline (solana-py, blockhash per bundle)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=("updates", "slots"), help="run one of the two figures")
    parser.add_argument("--no-baseline", action="store_true", help="slot -> bundle: ours only")
    parser.add_argument("--profile", type=Path, help="slot -> bundle: cProfile of our side per slot, to this file")
    parser.add_argument("--json", type=Path, help="slot -> bundle: the samples and phases, to this file")
    args = parser.parse_args()
    if args.only != "slots":
        bench_updates(args.pools, args.updates, args.seed)
    if args.only == "updates":
        return
    profile = cProfile.Profile() if args.profile else None
    runs = {OURS: asyncio.run(slot_to_bundle(args.slots, baseline=False, profile=profile))}
    if profile is not None:
        profile.dump_stats(args.profile)
    if not args.no_baseline:
        runs[SIM_FIRST] = asyncio.run(slot_to_bundle(args.slots, baseline=False, simulate_first=True))
        runs[BASELINE] = asyncio.run(slot_to_bundle(args.slots, baseline=True))
    print_slots(runs)
    if args.json:
        args.json.write_bytes(orjson.dumps({k: {"totals": r.totals, "phases": r.phases} for k, r in runs.items()}))


if __name__ == "__main__":
    main()
