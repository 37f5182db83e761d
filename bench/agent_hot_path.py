"""Hot-path benchmark of the DEX arbitrage strategy: one pool update -> every affected cycle re-evaluated.

Part 1, scale: a synthetic but realistic pool store (5,000 Uniswap V2/V3-style pools over ~1,500
tokens with 6, 8 and 18 decimals; WETH, four hub tokens, a long tail; V3 pools with a wide position
and a ladder of narrow ones) and every 2/3-hop WETH cycle through it (> 20,000). A stream of trader
swaps is applied to the store with the exact AMM math; after each one the strategy is handed that
pool's update and timed. Whatever it finds is then traded in the store (another searcher would),
which moves those pools again and feeds their updates back into the stream, so the market stays
near-aligned the way a real one does. Figures: p50/p99 per update and updates per second on one
core, against the targets (p99 <= 200 us, >= 20,000 updates/s).

Part 2, side by side on the same anvil and pools: a smaller DEX (V2 pairs from two factories and
V3 pools from the published artifacts) deployed on anvil; each block one trader swap lands. Ours:
the swapped pool's state arrives (as the collector would deliver it: not timed) and the strategy
re-evaluates that pool's cycles. Baseline, what a user would otherwise run: every block, refresh all
reserves/slot0/liquidity with one batched eth_call through web3.py, rebuild the state, re-scan all
cycles (with the same pre-filter and sizing code, so the ratio isolates the design, not the math).

Usage: .venv/bin/python bench/agent_hot_path.py [--updates N] [--blocks N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import math
import pstats
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

from mevagent.amm.arbitrage import search_cycle  # noqa: E402
from mevagent.amm.errors import Revert  # noqa: E402
from mevagent.amm.segments import exact_at, real_optimum  # noqa: E402
from mevagent.amm.v2 import get_amount_out  # noqa: E402
from mevagent.amm.v3.pool import V3PoolState, simulate_swap  # noqa: E402
from mevagent.amm.v3.tick_math import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick  # noqa: E402
from mevagent.core import Head, Opportunity, PoolUpdate  # noqa: E402
from mevagent.pricing import Pricer, PricingConfig  # noqa: E402
from mevagent.state.pools import Pool, PoolStore, V2Pool, V3Pool  # noqa: E402
from mevagent.strategies.dex_arb import DexArbConfig, DexArbStrategy  # noqa: E402

P99_TARGET_US = 200.0
RATE_TARGET = 20_000.0
WETH = "0x" + "ee" * 20
GWEI = 10**9
WETH_USD = 3000.0
V3_TIERS = {500: 10, 3000: 60, 10000: 200}


def _address(n: int) -> str:
    return f"0x{n:040x}"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- a synthetic market ----------------------------------------------------------------------------


@dataclass(slots=True)
class Market:
    store: PoolStore
    price_wei: dict[str, float]  # value of one smallest unit in wei of WETH
    hubs: frozenset[str]
    weights: list[float]  # how often each pool (store order) trades


def _v3_state(rng: random.Random, price: float, depth: int, fee: int) -> V3PoolState:
    """A V3 pool at `price` (token1 per token0, smallest units): a wide position and a narrow ladder."""
    spacing = V3_TIERS[fee]
    tick = math.floor(math.log(price) / math.log(1.0001))
    tick = max(MIN_TICK + 100 * spacing, min(MAX_TICK - 100 * spacing, tick))
    sqrt_price = get_sqrt_ratio_at_tick(tick) + rng.randrange(1 << 40)
    root = sqrt_price / (1 << 96)
    liquidity = max(1, int(depth * root))  # L = x·√P for token0 depth x
    center = tick - tick % spacing
    ticks: dict[int, int] = {}
    wide = (center - 400 * spacing, center + 400 * spacing)
    active = liquidity
    ticks[wide[0]] = ticks.get(wide[0], 0) + liquidity
    ticks[wide[1]] = ticks.get(wide[1], 0) - liquidity
    for k in range(-6, 6, 2):
        narrow = liquidity // 2
        lower, upper = center + k * spacing, center + (k + 2) * spacing
        ticks[lower] = ticks.get(lower, 0) + narrow
        ticks[upper] = ticks.get(upper, 0) - narrow
        if lower <= tick < upper:
            active += narrow
    return V3PoolState.from_ticks(
        sqrt_price_x96=sqrt_price, tick=tick, liquidity=active, fee=fee, tick_spacing=spacing, ticks=ticks
    )


def build_market(rng: random.Random, n_pools: int = 5000) -> Market:
    decimals = {WETH: 18}
    price_whole = {WETH: 1.0}  # in WETH
    hubs = [_address(0xB0 + i) for i in range(4)]  # USDC, USDT (6 decimals), DAI (18), WBTC (8)
    for hub, dec, whole in zip(hubs, (6, 6, 18, 8), (1 / 3000, 1 / 3000, 1 / 3000, 20.0), strict=True):
        decimals[hub], price_whole[hub] = dec, whole
    store = PoolStore("bench", block=1)
    weights: list[float] = []
    serial = 0x1000

    def add(a: str, b: str, kind: str, tvl_weth: float) -> None:
        nonlocal serial
        serial += 1
        token0, token1 = sorted((a, b))
        p0 = price_whole[token0] * 10**18 / 10 ** decimals[token0]
        p1 = price_whole[token1] * 10**18 / 10 ** decimals[token1]
        x = int(tvl_weth * 1e18 / 2 / p0)
        noise = 1 + rng.uniform(-0.001, 0.001)  # pools of a pair agree to within 0.1%
        address = _address(serial)
        if kind in ("uniswap_v2", "sushiswap"):
            y = int(x * p0 / p1 * noise)
            store.add(V2Pool(address, kind, token0, token1, max(x, 1000), max(y, 1000), 3, 1000))
        else:
            fee = int(kind.removeprefix("v3_"))
            store.add(V3Pool(address, "uniswap_v3", token0, token1, _v3_state(rng, p0 / p1 * noise, x, fee)))
        weights.append(math.sqrt(tvl_weth))

    for hub in hubs:
        for kind in ("uniswap_v2", "sushiswap", "v3_500", "v3_3000"):
            add(WETH, hub, kind, rng.uniform(5_000, 50_000))
    for i, a in enumerate(hubs):
        for b in hubs[i + 1 :]:
            add(a, b, "v3_500", rng.uniform(1_000, 10_000))
    tail: list[str] = []
    serial_token = 0x10000
    while len(store) < n_pools:
        serial_token += 1
        token = _address(serial_token)
        decimals[token] = rng.choice((18, 18, 18, 9, 6))
        price_whole[token] = math.exp(rng.uniform(math.log(1e-7), math.log(10.0)))
        tail.append(token)
        tvl = math.exp(rng.uniform(math.log(5), math.log(2_000)))
        kinds = rng.sample(("uniswap_v2", "sushiswap", "v3_3000", "v3_10000"), rng.choice((1, 2, 2, 3)))
        for kind in kinds:
            add(WETH, token, kind, tvl * rng.uniform(0.3, 1.0))
        if rng.random() < 0.45:
            add(
                token,
                rng.choice(hubs[:3] if rng.random() < 0.8 else hubs),
                rng.choice(("uniswap_v2", "v3_3000")),
                tvl / 3,
            )
        if len(tail) > 10 and rng.random() < 0.7:
            add(token, rng.choice(tail[:-1]), rng.choice(("uniswap_v2", "v3_3000", "sushiswap")), tvl / 4)
    price_wei = {token: price_whole[token] * 10**18 / 10 ** decimals[token] for token in decimals}
    return Market(store, price_wei, frozenset(hubs), weights)


def pricing_for(store: PoolStore) -> Pricer:
    return Pricer(PricingConfig(native_token=WETH, tokens={WETH: {"usd": WETH_USD, "decimals": 18}}), store)


def strategy_config() -> DexArbConfig:
    return DexArbConfig(
        base_tokens=(WETH,),
        min_profit_bps=1.0,
        min_profit_threshold=1.0,
        builder_share_bps=5000,
        priority_fee_wei=GWEI,
        gas_limits={2: 220_000, 3: 320_000},
    )


# -- trading in the store --------------------------------------------------------------------------


def swap_in_store(pool: Pool, token_in: str, amount: int) -> int | None:
    """Apply an exact-input swap to the pool's state, as the chain would; the output, or None if refused."""
    if amount <= 0:
        return None
    try:
        if isinstance(pool, V2Pool):
            zero_in = token_in == pool.token0
            reserve_in, reserve_out = (pool.reserve0, pool.reserve1) if zero_in else (pool.reserve1, pool.reserve0)
            out = get_amount_out(amount, reserve_in, reserve_out, pool.fee, pool.fee_denominator)
            if out <= 0:
                return None
            if zero_in:
                pool.reserve0, pool.reserve1 = pool.reserve0 + amount, pool.reserve1 - out
            else:
                pool.reserve1, pool.reserve0 = pool.reserve1 + amount, pool.reserve0 - out
            return out
        zero_for_one = token_in == pool.token0
        result = simulate_swap(pool.state, zero_for_one, amount)
    except Revert:
        return None
    taken = result.amount0 if zero_for_one else result.amount1
    if taken != amount:
        return None
    state = pool.state
    state.sqrt_price_x96, state.tick, state.liquidity = result.sqrt_price_x96, result.tick, result.liquidity
    return -(result.amount1 if zero_for_one else result.amount0)


def _depth(pool: Pool, token: str) -> int:
    """Roughly how much of `token` the pool holds (V3: virtual reserves at the current price)."""
    if isinstance(pool, V2Pool):
        return pool.reserve0 if token == pool.token0 else pool.reserve1
    root = pool.state.sqrt_price_x96 / (1 << 96)
    return int(pool.state.liquidity / root) if token == pool.token0 else int(pool.state.liquidity * root)


def trader_swap(rng: random.Random, pool: Pool) -> None:
    """A trader's swap: 0.0001%..0.3% of the pool's depth on the input side, either direction."""
    token_in = rng.choice(pool.tokens)
    share = math.exp(rng.uniform(math.log(1e-6), math.log(3e-3)))
    swap_in_store(pool, token_in, int(_depth(pool, token_in) * share))


def take(store: PoolStore, opportunity: Opportunity) -> bool:
    """Trade an opportunity in the store (pools only move if every hop pays what was predicted)."""
    amount = opportunity.amount_in
    for hop in opportunity.hops:
        out = swap_in_store(store.pools[hop.pool], hop.token_in, amount)
        if out is None:
            raise AssertionError(f"a hop of an emitted opportunity was refused: {opportunity.id}")
        amount = out
    if amount != opportunity.amount_out:
        raise AssertionError(f"store paid {amount}, strategy predicted {opportunity.amount_out}")
    return True


def compare_sizing(store: PoolStore, opportunity: Opportunity) -> tuple[int, int, int, int]:
    """The segment walk and the concavity search (search_cycle, the sizing before it) on one cycle."""
    hops = [store.pools[hop.pool].hop(hop.token_in) for hop in opportunity.hops]
    started = time.perf_counter_ns()
    optimum = real_optimum(hops)
    walked = exact_at(hops, optimum.amount_in) if optimum else None
    walk_ns = time.perf_counter_ns() - started
    started = time.perf_counter_ns()
    searched = search_cycle(hops, refine_radius=8, refine_steps=0)
    search_ns = time.perf_counter_ns() - started
    return walk_ns, search_ns, walked.profit if walked else 0, searched.profit if searched else 0


# -- part 1: scale ---------------------------------------------------------------------------------


@dataclass(slots=True)
class HotPathRun:
    latencies_ns: list[int]
    kinds: list[str]  # "prefilter only" or "sized"
    bounded: list[int]
    found: int
    taken: int
    per_pool_max: int
    per_pool_mean: float
    # With compare: per emitted cycle with a V3 hop, the strategy's sizing against the concavity search
    # it replaced, on the same state: (walk ns, search ns, walk profit, search profit).
    sizing: list[tuple[int, int, int, int]]


def run_hot_path(
    market: Market, strategy: DexArbStrategy, rng: random.Random, updates: int, compare: bool = False
) -> HotPathRun:
    """`updates` timed updates; with `compare`, each emitted V3 cycle is also sized by the search (a
    separate run: the search's garbage and cache misses would land in the next update's latency)."""
    store = market.store
    pools = list(store.pools.values())
    cumulative = list(itertools.accumulate(market.weights))
    pending: deque[str] = deque()
    latencies: list[int] = []
    kinds: list[str] = []
    bounded: list[int] = []  # cycles that passed the rate pre-filter and got the profit bound
    found_total = taken_total = 0
    sizing: list[tuple[int, int, int, int]] = []
    stats = strategy.stats
    for _ in range(updates):
        if pending:
            address = pending.popleft()
        else:
            pool = rng.choices(pools, cum_weights=cumulative)[0]
            trader_swap(rng, pool)
            address = pool.address
        store.block += 1
        sized_before, bounded_before = stats.cycles_sized, stats.cycles_bounded
        update = PoolUpdate("bench", address, store.block, 0)
        started = time.perf_counter_ns()
        found = strategy.on_pool_updates([update])
        latencies.append(time.perf_counter_ns() - started)
        kinds.append("sized" if stats.cycles_sized > sized_before else "prefilter only")
        bounded.append(stats.cycles_bounded - bounded_before)
        found_total += len(found)
        for opportunity in found if compare else ():
            if any(hop.kind == "v3" for hop in opportunity.hops):
                sizing.append(compare_sizing(store, opportunity))
        used: set[str] = set()
        for opportunity in found:  # best first; another searcher takes what does not overlap
            touched = {hop.pool for hop in opportunity.hops}
            if touched & used:
                continue
            take(store, opportunity)
            used |= touched
            taken_total += 1
        pending.extend(sorted(used))
    per_pool = [len(strategy.cycles_of(pool.address)) for pool in pools]
    per_pool_mean = statistics.fmean(per_pool)
    return HotPathRun(latencies, kinds, bounded, found_total, taken_total, max(per_pool), per_pool_mean, sizing)


# -- part 2: side by side on anvil -----------------------------------------------------------------


def anvil_strategy(store: PoolStore, weth: str) -> DexArbStrategy:
    pricer = Pricer(PricingConfig(native_token=weth, tokens={weth: {"usd": WETH_USD, "decimals": 18}}), store)
    config = DexArbConfig.model_validate(strategy_config().model_dump() | {"base_tokens": (weth,)})
    strategy = DexArbStrategy(store, config, pricer)
    strategy.on_head(Head("anvil", store.block, "0x", "0x", 0, 10 * GWEI))
    return strategy


def run_side_by_side(rng: random.Random, blocks: int) -> dict[str, float]:
    from testbed.evm import (
        DEADLINE,
        V2_CORE,
        V3_CORE,
        Chain,
        deploy_token,
        deploy_v3_stack,
        read_v3_pool,
        start_anvil,
        stop_anvil,
    )

    e18 = 10**18

    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        deploy_started = time.perf_counter()
        weth = deploy_token(chain)
        tail = [deploy_token(chain) for _ in range(30)]
        factories = [chain.deploy(f"{V2_CORE}/UniswapV2Factory.json", chain.account) for _ in range(2)]
        tokens = [weth, *tail]
        by_address = {token.address.lower(): token for token in tokens}
        v3_factory, npm, router, lens = deploy_v3_stack(chain, tokens)
        price = {weth.address.lower(): 1.0} | {t.address.lower(): math.exp(rng.uniform(-3, 3)) for t in tail}
        v2_pairs, v3_pools = [], []

        def add_v2(factory_index: int, a, b) -> None:
            factory = factories[factory_index]
            chain.transact(factory.functions.createPair(a.address, b.address))
            pair = chain.at(f"{V2_CORE}/UniswapV2Pair.json", factory.functions.getPair(a.address, b.address).call())
            token0, token1 = sorted((a, b), key=lambda t: int(t.address, 16))
            depth = rng.uniform(50, 500) * e18
            noise = 1 + rng.uniform(-0.001, 0.001)
            reserve0 = int(depth / price[token0.address.lower()])
            reserve1 = int(depth / price[token1.address.lower()] * noise)
            chain.transact(token0.functions.transfer(pair.address, reserve0))
            chain.transact(token1.functions.transfer(pair.address, reserve1))
            chain.transact(pair.functions.sync())
            v2_pairs.append(pair)

        def add_v3(a, b) -> None:
            token0, token1 = sorted((a, b), key=lambda t: int(t.address, 16))
            chain.transact(v3_factory.functions.createPool(token0.address, token1.address, 3000))
            pool = chain.at(
                f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json",
                v3_factory.functions.getPool(token0.address, token1.address, 3000).call(),
            )
            ratio = price[token0.address.lower()] / price[token1.address.lower()] * (1 + rng.uniform(-0.001, 0.001))
            tick = math.floor(math.log(ratio) / math.log(1.0001))
            chain.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(tick)))
            center = tick - tick % 60
            depth = rng.uniform(50, 500) * e18
            for lower, upper, share in ((center - 6000, center + 6000, 1.0), (center - 120, center + 180, 0.2)):
                amounts = (
                    int(depth * share / price[token0.address.lower()]),
                    int(depth * share / price[token1.address.lower()]),
                )
                params = (token0.address, token1.address, 3000, lower, upper, *amounts, 0, 0, chain.account, DEADLINE)
                chain.transact(npm.functions.mint(params))
            v3_pools.append((pool, center - 6000, center + 180))

        for token in tail:
            add_v2(0, weth, token)
            add_v2(1, weth, token)
            add_v3(weth, token)
        pairs_done = set()
        while len(v2_pairs) + len(v3_pools) < 150:
            a, b = rng.sample(tail, 2)
            key = tuple(sorted((a.address, b.address)))
            if key in pairs_done:
                continue
            pairs_done.add(key)
            add_v2(0, a, b)
        deploy_seconds = time.perf_counter() - deploy_started

        tick_maps = {pool.address.lower(): dict(read_v3_pool(lens, pool, lo, hi).ticks) for pool, lo, hi in v3_pools}
        v3_tokens = {
            pool.address.lower(): (pool.functions.token0().call().lower(), pool.functions.token1().call().lower())
            for pool, _, _ in v3_pools
        }
        v2_tokens = {
            pair.address.lower(): (pair.functions.token0().call().lower(), pair.functions.token1().call().lower())
            for pair in v2_pairs
        }

        def batched_store(block: int) -> PoolStore:
            """The baseline's refresh: one batched eth_call round trip through web3.py for every pool."""
            with w3.batch_requests() as batch:
                for pair in v2_pairs:
                    batch.add(pair.functions.getReserves())
                for pool, _, _ in v3_pools:
                    batch.add(pool.functions.slot0())
                    batch.add(pool.functions.liquidity())
                results = batch.execute()
            store = PoolStore("anvil", block=block)
            for pair, (reserve0, reserve1, _) in zip(v2_pairs, results[: len(v2_pairs)], strict=True):
                address = pair.address.lower()
                store.add(V2Pool(address, "uniswap_v2", *v2_tokens[address], reserve0, reserve1, 3, 1000))
            v3_results = results[len(v2_pairs) :]
            for index, (pool, _, _) in enumerate(v3_pools):
                slot0, liquidity = v3_results[2 * index], v3_results[2 * index + 1]
                address = pool.address.lower()
                state = V3PoolState.from_ticks(
                    sqrt_price_x96=slot0[0],
                    tick=slot0[1],
                    liquidity=liquidity,
                    fee=3000,
                    tick_spacing=60,
                    ticks=tick_maps[address],
                )
                store.add(V3Pool(address, "uniswap_v3", *v3_tokens[address], state))
            return store

        weth_address = weth.address.lower()
        ours_store = batched_store(w3.eth.block_number)
        ours = anvil_strategy(ours_store, weth_address)
        # The baseline keeps its cycle list too (enumerating it every block would be a strawman);
        # it only replaces every pool's state each block.
        base_store = batched_store(w3.eth.block_number)
        baseline = anvil_strategy(base_store, weth_address)
        contracts = {pair.address.lower(): pair for pair in v2_pairs} | {p.address.lower(): p for p, _, _ in v3_pools}

        ours_ns, base_ns, refresh_ns, found_ours, found_base = [], [], [], 0, 0
        addresses = list(contracts)
        for _ in range(blocks):
            # A trader's swap lands in the next block.
            address = rng.choice(addresses)
            entry = ours_store.pools[address]
            token_in = rng.choice(entry.tokens)
            amount = int(_depth(entry, token_in) * math.exp(rng.uniform(math.log(1e-5), math.log(1e-2))))
            if amount <= 0:
                continue
            if isinstance(entry, V2Pool):
                reserve_in, reserve_out = (
                    (entry.reserve0, entry.reserve1) if token_in == entry.token0 else (entry.reserve1, entry.reserve0)
                )
                out = get_amount_out(amount, reserve_in, reserve_out)
                chain.transact(by_address[token_in].functions.transfer(contracts[address].address, amount))
                outs = (0, out) if token_in == entry.token0 else (out, 0)
                chain.transact(contracts[address].functions.swap(*outs, chain.account, b""))
            else:
                token_out = entry.token1 if token_in == entry.token0 else entry.token0
                params = (
                    w3.to_checksum_address(token_in),
                    w3.to_checksum_address(token_out),
                    3000,
                    chain.account,
                    DEADLINE,
                    amount,
                    0,
                    0,
                )
                chain.transact(router.functions.exactInputSingle(params))
            block = w3.eth.block_number

            # Ours: the collector delivers the swapped pool's state (not timed), the strategy re-evaluates.
            contract = contracts[address]
            if isinstance(entry, V2Pool):
                entry.reserve0, entry.reserve1, _ = contract.functions.getReserves().call()
            else:
                slot0 = contract.functions.slot0().call()
                entry.state.sqrt_price_x96, entry.state.tick = slot0[0], slot0[1]
                entry.state.liquidity = contract.functions.liquidity().call()
            ours_store.block = block
            started = time.perf_counter_ns()
            found_ours += len(ours.on_pool_updates([PoolUpdate("anvil", address, block, started)]))
            ours_ns.append(time.perf_counter_ns() - started)

            # Baseline: refresh everything with one batched eth_call, then re-scan every cycle.
            started = time.perf_counter_ns()
            fresh = batched_store(block)
            refreshed = time.perf_counter_ns()
            base_store.pools.update(fresh.pools)
            base_store.block = block
            found_base += len(baseline.on_pool_updates([PoolUpdate("anvil", a, block, 0) for a in fresh.pools]))
            base_ns.append(time.perf_counter_ns() - started)
            refresh_ns.append(refreshed - started)
        return {
            "pools": len(contracts),
            "v3_pools": len(v3_pools),
            "cycles": len(ours.cycles),
            "blocks": len(ours_ns),
            "deploy_s": deploy_seconds,
            "ours_p50_us": _percentile(ours_ns, 0.5) / 1e3,
            "ours_p99_us": _percentile(ours_ns, 0.99) / 1e3,
            "base_p50_us": _percentile(base_ns, 0.5) / 1e3,
            "base_p99_us": _percentile(base_ns, 0.99) / 1e3,
            "refresh_p50_us": _percentile(refresh_ns, 0.5) / 1e3,
            "found_ours": found_ours,
            "found_base": found_base,
        }
    finally:
        stop_anvil(proc)


# -- report ----------------------------------------------------------------------------------------


def _row(label: str, value: str, target: str = "", verdict: str = "") -> None:
    print(f"  {label:<44} {value:>16}  {target:<14} {verdict}")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30_000, help="timed pool updates at scale")
    parser.add_argument("--blocks", type=int, default=150, help="anvil blocks for the side-by-side run")
    parser.add_argument("--pools", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the hot path and print where time goes")
    parser.add_argument("--skip-anvil", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    wall = time.perf_counter()

    market = build_market(rng, args.pools)
    started = time.perf_counter()
    strategy = DexArbStrategy(market.store, strategy_config(), pricing_for(market.store))
    index_seconds = time.perf_counter() - started
    strategy.on_head(Head("bench", 1, "0x", "0x", 0, 10 * GWEI))
    counts = {"v2": 0, "v3": 0}
    for pool in market.store.pools.values():
        counts["v2" if isinstance(pool, V2Pool) else "v3"] += 1
    two_hop = sum(1 for cycle in strategy.cycles if len(cycle.pools) == 2)

    run_hot_path(market, strategy, rng, 2_000)  # warm-up: caches, and the market settles after its noise
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    run = run_hot_path(market, strategy, rng, args.updates)
    if profiler:
        profiler.disable()
    sizing = run_hot_path(market, strategy, rng, args.updates // 3, compare=True).sizing
    lat_us = [ns / 1e3 for ns in run.latencies_ns]
    p50, p99 = _percentile(lat_us, 0.5), _percentile(lat_us, 0.99)
    rate = len(lat_us) / (sum(lat_us) / 1e6)
    sized = [v for v, kind in zip(lat_us, run.kinds, strict=True) if kind == "sized"]
    filtered = [v for v, kind in zip(lat_us, run.kinds, strict=True) if kind != "sized"]

    print(
        "DEX arbitrage hot path: one pool update -> every affected cycle re-evaluated (one core, Python "
        f"{sys.version.split()[0]})"
    )
    print()
    print(
        f"Scale: {len(market.store)} pools ({counts['v2']} V2, {counts['v3']} V3), {len(strategy.cycles)} cycles "
        f"({two_hop} 2-hop, {len(strategy.cycles) - two_hop} 3-hop) from WETH; index built in {index_seconds:.2f} s"
    )
    print(f"       cycles per pool: mean {run.per_pool_mean:.1f}, max {run.per_pool_max}; {len(lat_us)} timed updates")
    print()
    _row("metric", "measured", "target", "")
    _row("p50 per update", f"{p50:.1f} us")
    _row("p99 per update", f"{p99:.1f} us", f"<= {P99_TARGET_US:.0f} us", _verdict(p99 <= P99_TARGET_US))
    _row("updates per second (one core)", f"{rate:,.0f}", f">= {RATE_TARGET:,.0f}", _verdict(rate >= RATE_TARGET))
    _row("updates that needed exact sizing", f"{len(sized)} ({100 * len(sized) / len(lat_us):.1f}%)")
    if filtered:
        _row("  pre-filter only: p50 / p99", f"{_percentile(filtered, 0.5):.1f} / {_percentile(filtered, 0.99):.1f} us")
    if sized:
        _row("  with exact sizing: p50 / p99", f"{_percentile(sized, 0.5):.0f} / {_percentile(sized, 0.99):.0f} us")
    slow = [kind for v, kind in zip(lat_us, run.kinds, strict=True) if v > P99_TARGET_US]
    if slow:
        _row(
            f"updates over {P99_TARGET_US:.0f} us: sized / pre-filter only",
            f"{slow.count('sized')} / {slow.count('prefilter only')}",
        )
    slow_bounded = [
        n for v, n, kind in zip(lat_us, run.bounded, run.kinds, strict=True) if v > P99_TARGET_US and kind != "sized"
    ]
    if slow_bounded:
        _row("  pre-filter only over it: cycles bounded (mean)", f"{statistics.fmean(slow_bounded):.0f}")
    _row("cycles pre-filtered per update (mean)", f"{strategy.stats.cycles_checked / strategy.stats.updates:.1f}")
    _row("opportunities emitted / taken", f"{run.found} / {run.taken}")
    _row("re-simulation mismatches", f"{strategy.stats.verify_mismatches}")
    _row("V3 walks past 64 ticks, sized by search", f"{strategy.stats.searched}")
    if sizing:
        walk_us = [w / 1e3 for w, _, _, _ in sizing]
        search_us = [s / 1e3 for _, s, _, _ in sizing]
        left = [max(0, s - w) / s for _, _, w, s in sizing if s > 0]
        print()
        print(f"V3 cycle sizing, side by side on the {len(sizing)} emitted cycles with a V3 hop (same state):")
        print(f"  {'':<44} {'walk':>12} {'search':>12} {'search/walk':>14}")
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            walk, search = _percentile(walk_us, q), _percentile(search_us, q)
            print(f"  {label + ' time':<44} {walk:>9.0f} us {search:>9.0f} us {search / walk:>13.0f}x")
        print(
            f"  {'profit left vs the search: median / max':<44} {statistics.median(left):>12.1e} {max(left):>12.1e}"
            "  (relative; a coarse token's stair)"
        )
        better = sum(1 for _, _, w, s in sizing if w > s)
        print(f"  {'walk earned more / the same or less':<44} {better:>12} {len(sizing) - better:>12}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print()
        print("Where the time goes (cProfile, by own time):")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))

    if not args.skip_anvil:
        side = run_side_by_side(rng, args.blocks)
        print()
        print(
            f"Side by side on anvil: {side['pools']} pools ({side['v3_pools']} V3), {side['cycles']} cycles, "
            f"{side['blocks']} blocks with one trader swap each (deployed in {side['deploy_s']:.1f} s)"
        )
        print()
        print(f"  {'per block':<44} {'ours':>12} {'baseline':>12} {'baseline/ours':>14}")
        for label, ours_key, base_key in (("p50", "ours_p50_us", "base_p50_us"), ("p99", "ours_p99_us", "base_p99_us")):
            ratio = side[base_key] / side[ours_key]
            print(f"  {label + ' latency':<44} {side[ours_key]:>9.1f} us {side[base_key]:>9.1f} us {ratio:>13.0f}x")
        print(f"  {'  of which batched eth_call refresh (p50)':<44} {'':>12} {side['refresh_p50_us']:>9.1f} us")
        print(f"  {'opportunities reported':<44} {side['found_ours']:>12} {side['found_base']:>12}")
        print("  (ours: the strategy on the swapped pool's update; baseline: one web3.py batched eth_call for all")
        print("   pools + a re-scan of every cycle with the same pre-filter and sizing, every block)")
    print()
    print(f"total bench time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
