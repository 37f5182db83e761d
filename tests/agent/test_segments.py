"""The segment walk (mevagent.amm.segments) against the concavity search and the exact contract math.

Deep pools (liquidity 10^18..10^21 around price 1, several initialized ticks each side) so the
real-valued curves and the integers agree to ~1e-12 and the walk has ticks to cross:

- its answer earns at least what search_cycle's exhaustive concavity search earns (to 1e-9 of the
  profit), and its hop amounts are the contracts' integers (cycle_amounts);
- its real optimum's profit bounds the exact profit of every input tried (the property the strategy
  prunes with);
- it crosses ticks, ranges without liquidity and stops where a pool runs out of price range;
- a walk longer than MAX_SEGMENTS raises SegmentLimit, and the strategy then sizes by search.
"""

import itertools

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mevagent.amm import V2Hop, V3Hop, V3PoolState, cycle_amounts, search_cycle, segments
from mevagent.amm.arbitrage import Hop
from mevagent.amm.segments import MAX_SEGMENTS, SegmentLimit, exact_at, real_optimum
from mevagent.amm.v3 import get_sqrt_ratio_at_tick
from mevagent.core import Head, PoolUpdate
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state.pools import PoolStore, V2Pool, V3Pool
from mevagent.strategies.dex_arb import DexArbConfig, DexArbStrategy

SPACING = 10
E18 = 10**18


@st.composite
def deep_v3_pools(draw: st.DrawFn, at_tick: int = 0) -> V3PoolState:
    """Adjacent positions around `at_tick`, 1-6 on each side, some with a gap between them."""
    below = sorted(draw(st.sets(st.integers(1, 60), min_size=1, max_size=6)))
    above = sorted(draw(st.sets(st.integers(1, 60), min_size=1, max_size=6)))
    bounds = sorted({at_tick // SPACING - b for b in below} | {at_tick // SPACING + a for a in above})
    ticks: dict[int, int] = {}
    liquidity = 0
    for lower, upper in itertools.pairwise(bounds):
        if draw(st.integers(0, 5)) == 0:
            continue  # no position here: a range the swap crosses without liquidity
        amount = draw(st.integers(10**18, 10**21))
        ticks[lower * SPACING] = ticks.get(lower * SPACING, 0) + amount
        ticks[upper * SPACING] = ticks.get(upper * SPACING, 0) - amount
        if lower * SPACING <= at_tick < upper * SPACING:
            liquidity += amount
    if not ticks:
        ticks = {bounds[0] * SPACING: 10**20, bounds[-1] * SPACING: -(10**20)}
        liquidity = 10**20
    return V3PoolState.from_ticks(
        sqrt_price_x96=get_sqrt_ratio_at_tick(at_tick) + draw(st.integers(0, 10**9)),
        tick=at_tick,
        liquidity=liquidity,
        fee=draw(st.sampled_from([100, 500, 3000, 10000])),
        tick_spacing=SPACING,
        ticks=ticks,
    )


def _check_against_search(hops: list[Hop]) -> int:
    """Assert the walk's answer against the search's; returns the segments walked (0: nothing profits)."""
    reference = search_cycle(hops, refine_radius=16, refine_steps=0)
    optimum = real_optimum(hops)
    result = exact_at(hops, optimum.amount_in) if optimum else None
    if reference is None:
        # Nothing the search found: the walk may still find a sliver, but it must be real.
        if result is not None:
            assert cycle_amounts(hops, result.amount_in) == list(result.hop_amounts)
        return 0
    assert optimum is not None, "the walk found nothing where the search found a profit"
    assert result is not None
    assert result.profit >= reference.profit - reference.profit // 10**9 - 2
    assert cycle_amounts(hops, result.amount_in) == list(result.hop_amounts)
    # The real curve pays at least what the integers pay, anywhere: a safe bound to prune with.
    assert optimum.profit * (1 + 1e-9) >= max(result.profit, reference.profit)
    return optimum.segments


@settings(max_examples=120, deadline=None)
@given(
    pool=deep_v3_pools(),
    zero_for_one=st.booleans(),
    reserve=st.integers(10**20, 10**22),
    premium_bps=st.integers(1, 800),
)
def test_v3_then_v2_earns_what_the_search_earns(
    pool: V3PoolState, zero_for_one: bool, reserve: int, premium_bps: int
) -> None:
    # The V3 pool at price ~1, then a V2 pool paying premium_bps more: the walk crosses ticks to get there.
    hops: list[Hop] = [V3Hop(pool, zero_for_one), V2Hop(reserve, reserve * (10_000 + premium_bps) // 10_000, 3, 1000)]
    event(f"segments walked: {_check_against_search(hops)}")


@settings(max_examples=80, deadline=None)
@given(
    cheap=deep_v3_pools(at_tick=0),
    dear=st.integers(5, 120).flatmap(lambda gap: deep_v3_pools(at_tick=-gap * SPACING)),
    v2_reserve=st.integers(10**20, 10**22),
)
def test_three_hops_two_v3_pools_earn_what_the_search_earns(
    cheap: V3PoolState, dear: V3PoolState, v2_reserve: int
) -> None:
    # token0 -> token1 in the pool at tick 0, token1 -> token0 where token0 is dearer (lower tick:
    # fewer token1 per token0... so the cycle runs the other way round), through a V2 hop at price 1.
    hops: list[Hop] = [V3Hop(dear, False), V3Hop(cheap, True), V2Hop(v2_reserve, v2_reserve, 25, 10000)]
    event(f"segments walked: {_check_against_search(hops)}")


def _ladder(ticks_below: int) -> V3PoolState:
    """One wide position around the price with `ticks_below` initialized ticks inside it (liquidityNet
    0: other positions' edges that cancel out), each of which a swap down must stop at."""
    liquidity = 10**20
    ticks = dict.fromkeys((-index * SPACING for index in range(1, ticks_below + 1)), 0)
    ticks[SPACING] = -liquidity
    ticks[-(ticks_below + 1) * SPACING] = liquidity
    return V3PoolState.from_ticks(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0) - 1,
        tick=-1,
        liquidity=liquidity,
        fee=500,
        tick_spacing=SPACING,
        ticks=ticks,
    )


def test_a_gap_without_liquidity_is_crossed_for_free() -> None:
    # Liquidity at [-10, +10] spacings and again at [-60, -30]: selling token0 hard runs through the empty
    # (-30, -10) range. The walk must land beyond it and agree with the search.
    ticks = {-10 * SPACING: 10**20, 10 * SPACING: -(10**20), -60 * SPACING: 10**21, -30 * SPACING: -(10**21)}
    pool = V3PoolState.from_ticks(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0), tick=0, liquidity=10**20, fee=500, tick_spacing=SPACING, ticks=ticks
    )
    reserve = 10**22
    hops: list[Hop] = [V3Hop(pool, True), V2Hop(reserve, reserve * 1_060 // 1000, 3, 1000)]
    optimum = real_optimum(hops)
    assert optimum is not None and optimum.segments >= 3  # in range, through the gap, into the deep range
    _check_against_search(hops)


def test_a_pool_run_to_its_price_limit_caps_the_input() -> None:
    # One narrow position and nothing beyond it: past its lower tick the pool cannot fill any input,
    # so the optimum is at most what takes the price to MIN_SQRT_RATIO (and nothing past it is returned).
    pool = V3PoolState.from_ticks(
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        tick=0,
        liquidity=10**18,
        fee=500,
        tick_spacing=SPACING,
        ticks={-SPACING: 10**18, SPACING: -(10**18)},
    )
    hops: list[Hop] = [V3Hop(pool, True), V2Hop(10**24, 10**26, 3, 1000)]
    optimum = real_optimum(hops)
    assert optimum is not None
    result = exact_at(hops, optimum.amount_in)
    assert result is not None and cycle_amounts(hops, result.amount_in) == list(result.hop_amounts)
    _check_against_search(hops)


def test_a_walk_past_max_segments_gives_up_and_the_caller_searches() -> None:
    pool = _ladder(MAX_SEGMENTS + 10)
    hops: list[Hop] = [V3Hop(pool, True), V2Hop(10**24, 10**24 * 12 // 10, 3, 1000)]
    with pytest.raises(SegmentLimit):
        real_optimum(hops)
    assert search_cycle(hops, refine_radius=4, refine_steps=0) is not None


def test_the_strategy_sizes_a_long_walk_by_search(monkeypatch: pytest.MonkeyPatch) -> None:
    w, t = f"0x{1:040x}", f"0x{2:040x}"
    store = PoolStore("test", block=7)
    store.add(V3Pool(f"0x{0xA1:040x}", "uniswap_v3", w, t, _ladder(20)))
    # W is cheap in the V2 pair (1.2 W per T): sell W in the V3 pool, down through its ladder of ticks,
    # and buy it back in the pair.
    store.add(V2Pool(f"0x{0xB2:040x}", "uniswap_v2", w, t, 10**22, 10**22 * 10 // 12, 3, 1000))
    pricer = Pricer(PricingConfig(native_token=w, tokens={w: {"usd": 3000.0, "decimals": 18}}), store)
    strategy = DexArbStrategy(store, DexArbConfig(base_tokens=(w,)), pricer)
    strategy.on_head(Head("test", 7, "0x", "0x", 0, 10**9))
    walked = strategy.on_pool_updates([PoolUpdate("test", f"0x{0xB2:040x}", 7, 0)])
    assert walked and strategy.stats.searched == 0
    monkeypatch.setattr(segments, "MAX_SEGMENTS", 2)
    searched = strategy.on_pool_updates([PoolUpdate("test", f"0x{0xB2:040x}", 7, 0)])
    assert strategy.stats.searched == 1
    # Same state, two sizing methods: both land on the same trade to within rounding.
    assert searched and abs(searched[0].amount_out - searched[0].amount_in - walked[0].gross_profit) <= (
        walked[0].gross_profit // 10**6
    )
