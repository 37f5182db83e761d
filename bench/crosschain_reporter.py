"""The agents' PairPriceReporter on a V3 pool: what a block costs when the pool's price moved too little to publish.

A busy V3 pool is reported on after every block that swapped in it, and most swaps move its price by less than
`min_move_bps` while leaving its liquidity and ticks alone: the reporter then publishes nothing, and what it spent
finding that out is all it costs. One pool (spacing 1, `v3_words` 8: 17 bitmap words, 4,352 spacings) with
N initialized ticks in the range (nested positions, evenly spread), N in 64, 1,024 and 4,096 (MAX_V3_TICKS);
each block moves sqrtPriceX96 by one unit (far below 1 bps, however many blocks), so nothing is published.

Figures per block, one core, same run:
- observe: `PairPriceReporter.observe([pool], block)` on such a block (publishes nothing);
- baseline: what the reporter did on such a block before it compared the raw state: every V3Tick model of the
  range built, then the tuple compared with the last one published;
- published: a block whose price moved by `min_move_bps` (models, depth and event built; informative).
The ratio is observe over the baseline.

Run: .venv/bin/python bench/crosschain_reporter.py [--blocks 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from math import isqrt

from mevagent.amm.v3 import V3PoolState, get_tick_at_sqrt_ratio
from mevagent.bus.events import Event, V3Tick
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec
from mevagent.state.pools import PoolStore, V3Pool

WETH = "0x" + "11" * 20  # token0
USD = "0x" + "22" * 20
POOL = "0x" + "33" * 20
WORDS = 8
SPAN = (2 * WORDS + 1) * 256  # spacings in the published range at spacing 1


def pool_state(count: int) -> V3PoolState:
    """Spacing 1 at 3,000 USD per WETH: `count` initialized ticks evenly spread over the published range."""
    sqrt_p = isqrt(3000 << 192)
    tick = get_tick_at_sqrt_ratio(sqrt_p)
    word = tick >> 8
    lower, step = (word - WORDS) * 256, SPAN // count
    edges = [lower + k * step for k in range(count)]
    ticks: dict[int, int] = {}
    liquidity = 0
    for k in range(count // 2):  # nested: the outermost pair first
        low, high = edges[k], edges[count - 1 - k]
        ticks[low], ticks[high] = 10**20, -(10**20)
        liquidity += 10**20 if low <= tick < high else 0
    return V3PoolState.from_ticks(
        sqrt_price_x96=sqrt_p, tick=tick, liquidity=liquidity, fee=500, tick_spacing=1, ticks=ticks
    )


def per_block(run: Callable[[int], object], blocks: int, rounds: int) -> float:
    """Best of `rounds` mean seconds per block."""
    best = float("inf")
    for r in range(rounds):
        started = time.perf_counter()
        for b in range(blocks):
            run(r * blocks + b)
        best = min(best, (time.perf_counter() - started) / blocks)
    return best


def measure(count: int, blocks: int, rounds: int) -> tuple[float, float, float, int]:
    state = pool_state(count)
    store = PoolStore("arbitrum", block=1)
    store.add(V3Pool(POOL, "uniswap_v3", WETH, USD, state))
    published: list[Event] = []
    config = PairPricesConfig(pairs=(PairSpec(pool=POOL, base=WETH),), sell_sizes=(10**18,), v3_words=WORDS)
    reporter = PairPriceReporter("a1", store, config, published.append)
    assert reporter.observe([POOL], 1) == 1
    in_range = len(published[0].v3.ticks)  # type: ignore[attr-defined]

    def quiet(block: int) -> None:
        state.sqrt_price_x96 += 1  # a swap too small to publish
        assert reporter.observe([POOL], block) == 0

    observe = per_block(quiet, blocks, rounds)

    word = (state.tick // state.tick_spacing) >> 8
    lower, upper = (word - WORDS) * 256, (word + WORDS + 1) * 256 - 1
    last = tuple(V3Tick(tick=t, liquidity_net=n) for t, n in state.ticks.items() if lower <= t <= upper)

    def before(_: int) -> None:
        ticks = state.ticks
        start, end = ticks.bisect_left(lower), ticks.bisect_right(upper)
        assert tuple(V3Tick(tick=t, liquidity_net=ticks[t]) for t in ticks.islice(start, end)) == last

    baseline = per_block(before, blocks, rounds)

    def moved(block: int) -> None:
        state.sqrt_price_x96 += state.sqrt_price_x96 // 5_000 * (1 if block % 2 else -1)  # +-2 bps
        assert reporter.observe([POOL], block) == 1

    publish = per_block(moved, max(1, blocks // 10), rounds)
    return observe, baseline, publish, in_range


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'ticks':>6} {'observe us':>11} {'baseline us':>12} {'ratio':>7} {'published us':>13}")
    for count in (64, 1024, 4096):
        observe, baseline, publish, in_range = measure(count, args.blocks, args.rounds)
        print(f"{in_range:>6} {observe * 1e6:>11.1f} {baseline * 1e6:>12.1f} {observe / baseline:>7.3f} "
              f"{publish * 1e6:>13.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
