"""MEV analytics benchmark: block classification, pending-swap scoring, backfill, each against a baseline.

The blocks are real: an anvil with the published Uniswap V2 (Router02) and V3 contracts, and a
mainnet-sized block mined on it (about 200 transactions: router swaps single and multi-hop, V3
swaps, sandwiches with victims, cyclic arbitrages, JIT liquidity, plain transfers). It is fetched as
a node serves it (block, receipts, trace_block) and classified from the JSON bytes on one core.

1. Classification p50 per block (target <= 30 ms). Baseline, side by side: decoding the same logs
   and frames with the generic ABI decoder (eth_abi.decode, what ABI-driven tools do per item),
   decoding only, no inspectors.
2. Pending swap -> sandwich-risk score p50/p99 (target p99 <= 1 ms), V2 Router02 and V3 SwapRouter
   calls against the store read from the chain, and two-hop V3 exactInput calls (each hop reduced to one:
   against the whole route searched by regula falsi). Baseline: the same exact attack simulation with
   the victim's limit found by plain bisection over [0, reserve] instead of the closed form / segment walk.
   V3 also side by side with the previous method, regula falsi on exact simulations (about 33 exact
   swap simulations per score, against about 11 with the segment walk's guess confirmed exactly).
3. Backfill blocks/s from the local anvil: ours (JSON-RPC batches of 10 blocks, aiohttp) against
   web3.py fetching block, receipts and traces one request at a time.

Usage: .venv/bin/python bench/analytics.py [--runs N] [--scores N] [--blocks N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

import orjson  # noqa: E402
from eth_abi import decode  # noqa: E402
from eth_abi.packed import encode_packed  # noqa: E402

from mevagent.amm.v2 import get_amount_out  # noqa: E402
from mevagent.analytics import classify_block  # noqa: E402
from mevagent.analytics import decode_logs as L  # noqa: E402
from mevagent.analytics import decode_traces as T  # noqa: E402
from mevagent.analytics import sandwich_risk as SR  # noqa: E402
from mevagent.analytics.backfill import FileSink, backfill  # noqa: E402
from mevagent.analytics.routers import decode_swaps  # noqa: E402
from mevagent.analytics.sandwich_risk import PoolIndex, _attack, _Route, score_swap  # noqa: E402
from testbed.analytics import (  # noqa: E402
    DEADLINE,
    World,
    build_world,
    fetch_block,
    pool_store,
    v3_pool_bc,
)
from testbed.evm import Chain, start_anvil, stop_anvil  # noqa: E402

CLASSIFY_TARGET_MS = 30.0
SCORE_P99_TARGET_US = 1000.0

# Non-indexed argument types per topic / argument types per selector: the generic decoder's input.
_LOG_TYPES = {
    L.TRANSFER: ["uint256"],
    L.V2_SWAP: ["uint256", "uint256", "uint256", "uint256"],
    L.V3_SWAP: ["int256", "int256", "uint160", "uint128", "int24"],
    L.V3_MINT: ["address", "uint128", "uint256", "uint256"],
    L.V3_BURN: ["uint128", "uint256", "uint256"],
}
_CALL_TYPES = {
    T.ERC20_TRANSFER: ["address", "uint256"],
    T.ERC20_TRANSFER_FROM: ["address", "address", "uint256"],
    T.V2_SWAP: ["uint256", "uint256", "address", "bytes"],
    T.V3_SWAP: ["address", "bool", "int256", "uint160", "bytes"],
    T.V3_MINT: ["address", "int24", "int24", "uint128", "bytes"],
    T.V3_BURN: ["int24", "int24", "uint128"],
}


class LocalPairs:
    """The V2 pairs' reserves followed through the block as it is built, so a back-run can sell
    exactly what its front-run will have bought (as a sandwicher's contract does)."""

    def __init__(self, world: World) -> None:
        self.reserves: dict[frozenset[str], dict[str, int]] = {}
        for pair in world.pairs.values():
            r0, r1, _ = pair.functions.getReserves().call()
            t0, t1 = pair.functions.token0().call(), pair.functions.token1().call()
            self.reserves[frozenset((t0, t1))] = {t0: r0, t1: r1}

    def swap(self, path: list[Any], amount: int) -> int:
        for token_in, token_out in itertools.pairwise(path):
            pool = self.reserves[frozenset((token_in.address, token_out.address))]
            out = get_amount_out(amount, pool[token_in.address], pool[token_out.address], 3, 1000)
            pool[token_in.address] += amount
            pool[token_out.address] -= out
            amount = out
        return amount


def big_block(world: World) -> int:
    """One block of ~250 transactions of every kind the classifier knows.

    Each trader trades one way only (someone who buys, then sells the same amount back later with
    others buying in between, is indistinguishable from a sandwich), as most traders in a block do.
    """
    w = world
    a, b, c = w.a, w.b, w.c
    s, arber, jit = w.actors["searcher"], w.actors["arber"], w.actors["jit"]
    victims = [w.actors[n] for n in ("victim1", "victim2", "victim3")]
    sellers = [w.actors[n] for n in ("user1", "user2")]
    local = LocalPairs(w)
    calls: list[tuple[Any, str]] = []

    def v2(sender: str, path: list[Any], amount: int) -> None:
        local.swap(path, amount)
        calls.append((w.v2_path_swap(sender, path, amount), sender))

    for round_ in range(8):
        # A sandwich with three victims on A/B; the back-run sells exactly what the front-run bought.
        bought = local.swap([a, b], 10**20 + round_)
        calls.append((w.v2_path_swap(s, [a, b], 10**20 + round_), s))
        for v in victims:
            v2(v, [a, b], 10**20)
        v2(s, [b, a], bought)
        # Cyclic arbitrages both ways round (one of them loses: not an arbitrage).
        v2(arber, [a, b, c, a], 10**18)
        v2(arber, [a, c, b, a], 10**18)
        # V3 swaps (buyers and sellers) and multi-hop router swaps.
        for i, v in enumerate(victims):
            calls.append((w.v3_single_swap(v, a, b, 10**18 * (i + 1)), v))
            v2(v, [a, b, c], 10**18)
        for i, seller in enumerate(sellers):
            calls.append((w.v3_single_swap(seller, b, a, 10**18 * (i + 2)), seller))
            v2(seller, [c, b], 10**18)
            v2(seller, [b, a], 10**17)
        # More multi-hop router swaps, each trader in its own direction, and plain transfers.
        for v in victims:
            v2(v, [a, b, c], 10**17)
        for seller in sellers:
            v2(seller, [c, b, a], 10**17)
            v2(seller, [c, b, a], 10**16)
        for i, v in enumerate(victims + sellers):
            calls.append((c.functions.transfer(sellers[i % 2], 10**15), v))
    # JIT around the block's V3 swaps.
    token_id = int(w.npm.functions.totalSupply().call()) + 1
    tick = w.v3_pool.functions.slot0().call()[1]
    lower, upper = (tick // 60 - 1) * 60, (tick // 60 + 2) * 60
    t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
    mint = w.npm.functions.mint((t0.address, t1.address, 3000, lower, upper, 10**22, 10**22, 0, 0, jit, 2**64))
    liquidity = mint.call({"from": jit})[1]
    calls = [(mint, jit), *calls, (w.npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, 2**64)), jit)]
    number, receipts = w.mine(calls)
    assert all(r["status"] == 1 for r in receipts), "every transaction of the block must land"
    return number


def naive_decode(raw: dict[str, Any]) -> int:
    """Generic ABI decoding of every log and frame the classifier reads: the baseline."""
    decoded = 0
    for receipt in raw["receipts"]:
        for log in receipt["logs"]:
            types = _LOG_TYPES.get(log["topics"][0]) if log["topics"] else None
            if types is not None and len(log["data"]) > 2:
                decode(types, bytes.fromhex(log["data"][2:]))
                decoded += 1
    for trace in raw["traces"]:
        data = trace["action"].get("input", "0x")
        types = _CALL_TYPES.get(data[:10])
        if types is not None:
            decode(types, bytes.fromhex(data[10:]))
            decoded += 1
    return decoded


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bench_classify(chain: Chain, number: int, runs: int) -> None:
    raw = fetch_block(chain, number)
    payload = orjson.dumps({k: raw[k] for k in ("block", "receipts", "traces")})
    txs, frames = len(raw["block"]["transactions"]), len(raw["traces"])
    logs = sum(len(r["logs"]) for r in raw["receipts"])
    result = classify_block(orjson.loads(payload))
    print(f"block {number}: {txs} transactions, {frames} trace frames, {logs} logs, {len(payload) / 1e6:.1f} MB JSON")
    print(
        f"  found (expected 8, 8, 1): {len(result.sandwiches)} sandwiches, {len(result.arbitrages)} arbitrages,"
        f" {len(result.jit)} JIT,"
        f" {len(result.swaps)} swaps, {len(result.transfers)} transfers, {result.unresolved_swaps} unresolved"
    )
    variants = {
        "logs+traces": None,
        "logs only": frozenset({"logs"}),
        "traces only": frozenset({"traces"}),
    }
    # Round-robin: every run times the baseline and each variant back to back, so load from other
    # processes on the machine falls on all of them alike.
    timings: dict[str, list[float]] = {"baseline": [], "parsed": [], "cpu": [], **{name: [] for name in variants}}
    for _ in range(runs):
        started = time.perf_counter()
        naive_decode(orjson.loads(payload))
        timings["baseline"].append((time.perf_counter() - started) * 1000)
        for name, sources in variants.items():
            started = time.perf_counter()
            parsed = orjson.loads(payload)
            classify_block(parsed) if sources is None else classify_block(parsed, sources)
            timings[name].append((time.perf_counter() - started) * 1000)
        parsed = orjson.loads(payload)
        cpu = time.thread_time()
        classify_block(orjson.loads(payload))
        timings["cpu"].append((time.thread_time() - cpu) * 1000)
        started = time.perf_counter()
        classify_block(parsed)
        timings["parsed"].append((time.perf_counter() - started) * 1000)
    base_p50 = statistics.median(timings["baseline"])
    for name in variants:
        p50 = statistics.median(timings[name])
        verdict = "met" if p50 <= CLASSIFY_TARGET_MS else "MISSED"
        print(
            f"  classify ({name}, JSON parse included): p50 {p50:.1f} ms, p99 {percentile(timings[name], 0.99):.1f} ms"
            f" (target p50 <= {CLASSIFY_TARGET_MS:.0f} ms: {verdict}); baseline decode-only p50 {base_p50:.1f} ms;"
            f" ratio {base_p50 / p50:.1f}x"
        )
    parsed_p50 = statistics.median(timings["parsed"])
    print(
        f"  classify (logs+traces, JSON already parsed, as the live classifier gets it): p50 {parsed_p50:.1f} ms,"
        f" p99 {percentile(timings['parsed'], 0.99):.1f} ms; CPU time of logs+traces with the JSON parse"
        f" (what other processes on a busy machine do not add): p50 {statistics.median(timings['cpu']):.1f} ms"
    )


def naive_score(index: PoolIndex, data: str) -> int:
    """The same attack simulation with the cap found by plain bisection over [0, pool reserve]."""
    (swap,) = decode_swaps(data)
    hops = index.hops(swap)
    assert hops is not None
    route = _Route(hops, swap.exact_in, swap.amount, swap.limit)
    low, high = 0, 1 << 100
    while high - low > 1:
        middle = (low + high) // 2
        if _attack(route, 0, middle) is not None:
            low = middle
        else:
            high = middle
    attack = _attack(route, 0, low) if low else None
    return attack.profit if attack else 0


def previous_score(index: PoolIndex, data: str) -> int:
    """The score as it was before the segment walk: V3 caps by regula falsi on exact simulations only."""
    (swap,) = decode_swaps(data)
    walk = SR._v3_cap
    SR._v3_cap = lambda route, index: None  # the fallback everywhere: what the scorer did before
    try:
        risk = score_swap(index, swap)
    finally:
        SR._v3_cap = walk
    return risk.max_profit if risk else 0


def bench_scores(world: World, count: int) -> None:
    w = world
    index = PoolIndex(pool_store(w))
    victim = w.actors["victim1"]
    calls: dict[str, list[str]] = {"v2": [], "v3": []}
    for i in range(count):
        amount = 10**19 * (1 + i % 50)
        v2_quote = w.router02.functions.getAmountsOut(amount, [w.a.address, w.b.address]).call()[-1] if i < 50 else None
        if v2_quote is not None:
            for slippage in (995, 990, 970):
                fn = w.v2_path_swap(victim, [w.a, w.b], amount, v2_quote * slippage // 1000)
                calls["v2"].append(str(fn._encode_transaction_data()))
                fn = w.v3_single_swap(victim, w.a, w.b, amount * 10, amount * 10 * slippage // 1000 * 9 // 10)
                calls["v3"].append(str(fn._encode_transaction_data()))
    for kind, datas in calls.items():
        ours, ours_cpu, base = [], [], []
        previous, previous_cpu = [], []
        profits = 0
        for data in datas:
            for _ in range(3):
                cpu = time.thread_time_ns()
                started = time.perf_counter_ns()
                (swap,) = decode_swaps(data)
                risk = score_swap(index, swap)
                ours.append((time.perf_counter_ns() - started) / 1000)
                ours_cpu.append((time.thread_time_ns() - cpu) / 1000)
            profits += bool(risk and risk.max_profit)
            if kind == "v3":
                for _ in range(3):
                    cpu = time.thread_time_ns()
                    started = time.perf_counter_ns()
                    previous_score(index, data)
                    previous.append((time.perf_counter_ns() - started) / 1000)
                    previous_cpu.append((time.thread_time_ns() - cpu) / 1000)
            started = time.perf_counter_ns()
            naive_score(index, data)
            base.append((time.perf_counter_ns() - started) / 1000)
        p99 = percentile(ours, 0.99)
        verdict = "met" if p99 <= SCORE_P99_TARGET_US else "MISSED"
        print(
            f"  score {kind} ({len(datas)} pending swaps, {profits} sandwichable): decode+score p50"
            f" {statistics.median(ours):.0f} us, p99 {p99:.0f} us"
            f" (target p99 <= {SCORE_P99_TARGET_US:.0f} us: {verdict});"
            f" baseline bisection p50 {statistics.median(base):.0f} us, p99 {percentile(base, 0.99):.0f} us;"
            f" ratio p99 {percentile(base, 0.99) / p99:.1f}x; CPU time of ours (what a busy machine's other"
            f" processes do not add): p50 {statistics.median(ours_cpu):.0f} us, p99 {percentile(ours_cpu, 0.99):.0f} us"
        )
        if previous:
            print(
                f"  score v3, previous method (regula falsi on exact simulations) side by side: p50"
                f" {statistics.median(previous):.0f} us, p99 {percentile(previous, 0.99):.0f} us; CPU p50"
                f" {statistics.median(previous_cpu):.0f} us, p99 {percentile(previous_cpu, 0.99):.0f} us; ratio"
                f" previous/ours: wall p99 {percentile(previous, 0.99) / p99:.1f}x, CPU p99"
                f" {percentile(previous_cpu, 0.99) / percentile(ours_cpu, 0.99):.1f}x"
            )


def bench_multi_hop(world: World, count: int) -> None:
    """SwapRouter exactInput A -> B -> C over two V3 pools: each attacked hop reduced to one hop (the victim's
    limit carried through the other), sized by the segment walk; side by side, the whole route searched by
    regula falsi on exact simulations (what the scorer did before), with the exact V3 simulations counted."""
    w = world
    index = PoolIndex(pool_store(w, [v3_pool_bc(w)]))
    victim = w.actors["victim1"]
    path = encode_packed(["address", "uint24", "address", "uint24", "address"],
                         [w.a.address, 3000, w.b.address, 3000, w.c.address])  # fmt: skip
    swaps = []
    for i in range(count):
        amount = 3 * 10**20 * (1 + i % 10)
        quote = w.swap_router.functions.exactInput((path, victim, DEADLINE, amount, 0)).call({"from": victim})
        fn = w.swap_router.functions.exactInput((path, victim, DEADLINE, amount, quote * (990 - i % 5) // 1000))
        (swap,) = decode_swaps(str(fn._encode_transaction_data()))
        swaps.append(swap)
    simulate, simulations = SR.simulate_swap, [0]

    def counted(*args: Any) -> Any:
        simulations[0] += 1
        return simulate(*args)

    reduce = SR._reduced
    timings: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "whole": ([], [])}
    counts = {"ours": 0, "whole": 0}
    profits: dict[str, list[int]] = {"ours": [], "whole": []}
    SR.simulate_swap = counted
    try:
        for swap in swaps:
            for name in ("ours", "whole"):  # back to back: load falls on both alike
                SR._reduced = reduce if name == "ours" else (lambda route, hop: None)
                simulations[0] = 0
                cpu, started = time.thread_time_ns(), time.perf_counter_ns()
                risk = score_swap(index, swap)
                timings[name][0].append((time.perf_counter_ns() - started) / 1000)
                timings[name][1].append((time.thread_time_ns() - cpu) / 1000)
                counts[name] += simulations[0]
                profits[name].append(risk.max_profit if risk else 0)
    finally:
        SR.simulate_swap, SR._reduced = simulate, reduce
    gap = max(abs(a - b) / max(1, b) for a, b in zip(profits["ours"], profits["whole"], strict=True))
    (wall, cpu), (wall_before, cpu_before) = timings["ours"], timings["whole"]
    print(
        f"  score v3 two hops ({count} pending exactInput, {sum(p > 0 for p in profits['ours'])} sandwichable):"
        f" p50 {statistics.median(wall):.0f} us, p99 {percentile(wall, 0.99):.0f} us; CPU p50"
        f" {statistics.median(cpu):.0f} us, p99 {percentile(cpu, 0.99):.0f} us; {counts['ours'] / count:.1f} exact"
        f" V3 simulations per score. Whole route by regula falsi (before): p50 {statistics.median(wall_before):.0f}"
        f" us, p99 {percentile(wall_before, 0.99):.0f} us; CPU p50 {statistics.median(cpu_before):.0f} us, p99"
        f" {percentile(cpu_before, 0.99):.0f} us; {counts['whole'] / count:.1f} simulations; profits differ by at"
        f" most {gap:.1e} of them"
    )


def bench_backfill(world: World, blocks: int) -> None:
    w = world
    url = str(w.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    first = w.chain.w3.eth.block_number + 1
    user, other = w.actors["user1"], w.actors["user2"]
    for i in range(blocks):
        w.mine(
            [(w.v2_path_swap(user, [w.a, w.b], 10**18 + i), user), (w.v3_single_swap(other, w.b, w.a, 10**18), other)]
        )
    last = w.chain.w3.eth.block_number
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        asyncio.run(backfill(url, first, last, FileSink(Path(directory)), batch_size=10))
        ours = (last - first + 1) / (time.perf_counter() - started)
    started = time.perf_counter()
    for number in range(first, last + 1):
        block = w.chain.w3.eth.get_block(number, full_transactions=True)
        receipts = w.chain.w3.provider.make_request("eth_getBlockReceipts", [hex(number)])["result"]
        traces = w.chain.w3.provider.make_request("trace_block", [hex(number)])["result"]
        raw = {"block": orjson.loads(w.chain.w3.to_json(block)), "receipts": receipts, "traces": traces}
        classify_block(raw)
    base = (last - first + 1) / (time.perf_counter() - started)
    print(
        f"  backfill {last - first + 1} blocks from local anvil: {ours:.0f} blocks/s (batches of 10);"
        f" baseline web3.py one request at a time {base:.0f} blocks/s; ratio {ours / base:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--scores", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=100)
    args = parser.parse_args()
    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        world = build_world(chain)
        number = big_block(world)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core (anvil runs elsewhere)
        print("MEV analytics benchmark (one core)")
        bench_classify(chain, number, args.runs)
        bench_scores(world, args.scores)
        bench_multi_hop(world, args.scores)
        bench_backfill(world, args.blocks)
    finally:
        stop_anvil(proc)


if __name__ == "__main__":
    main()
