"""The strategy's cycle index and pre-filter, against brute force on random pool graphs (no node needed).

- The cycles it indexes are exactly the 2- and 3-hop base-token cycles of the graph, whatever order
  the pools arrive in, and each pool lists exactly the cycles through it.
- The rate pre-filter, the profit bound and the branch and bound never lose the best cycle through
  an updated pool among those the library's size_cycle finds profitable beyond gas, the builder's
  share and the threshold; amounts are the library's where its answer is proven (all-V2).
"""

import itertools
import random
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mevagent.amm.arbitrage import ArbResult, size_cycle
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.core import Head, Hop, PoolUpdate
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state.pools import Pool, PoolStore, V2Pool, V3Pool
from mevagent.strategies.dex_arb import DexArbConfig, DexArbStrategy, search

TOKENS = [f"0x{index:040x}" for index in range(1, 6)]
BASES = TOKENS[:2]


@st.composite
def pool_graphs(draw: st.DrawFn) -> list[Pool]:
    """Up to 9 pools over 5 tokens (two of them base tokens), V2 and V3, several per pair."""
    count = draw(st.integers(2, 9))
    pools: list[Pool] = []
    for index in range(count):
        a, b = sorted(draw(st.lists(st.sampled_from(TOKENS), min_size=2, max_size=2, unique=True)))
        address = f"0x{0xF000 + index:040x}"
        if draw(st.booleans()):
            reserve0 = draw(st.integers(10**15, 10**21))
            # Prices within a few % of 1: some cycles profitable, most not.
            reserve1 = reserve0 * draw(st.integers(950, 1050)) // 1000
            pools.append(V2Pool(address, "uniswap_v2", a, b, reserve0, reserve1, 3, 1000))
        else:
            tick = draw(st.integers(-500, 500))
            spacing = 10
            liquidity = draw(st.integers(10**15, 10**20))
            lower = (tick // spacing - draw(st.integers(1, 40))) * spacing
            upper = (tick // spacing + draw(st.integers(1, 40))) * spacing
            state = V3PoolState.from_ticks(
                sqrt_price_x96=get_sqrt_ratio_at_tick(tick) + draw(st.integers(0, 10**6)),
                tick=tick,
                liquidity=liquidity,
                fee=draw(st.sampled_from([500, 3000])),
                tick_spacing=spacing,
                ticks={lower: liquidity, upper: -liquidity},
            )
            pools.append(V3Pool(address, "uniswap_v3", a, b, state))
    return pools


def _strategy(pools: list[Pool], **config: object) -> DexArbStrategy:
    store = PoolStore("test", block=7)
    for pool in pools:
        store.add(pool)
    pricing = PricingConfig(native_token=BASES[0], tokens={token: {"usd": 1.0, "decimals": 18} for token in TOKENS})
    strategy = DexArbStrategy(store, DexArbConfig(base_tokens=tuple(BASES), **config), Pricer(pricing, store))
    strategy.on_head(Head("test", 7, "0x", "0x", 0, 0))
    return strategy


def _brute_force_cycles(pools: list[Pool], max_hops: int) -> set[tuple[tuple[str, ...], str]]:
    """(pool addresses in order, base token) of every cycle, by trying every sequence of pools."""
    found = set()
    for hops in range(2, max_hops + 1):
        for sequence in itertools.permutations(pools, hops):
            for base in BASES:
                path = [base]
                for pool in sequence:
                    if path[-1] not in pool.tokens:
                        break
                    path.append(pool.token1 if path[-1] == pool.token0 else pool.token0)
                else:
                    middle = path[1:-1]
                    if path[-1] == base and base not in middle and len(set(middle)) == len(middle):
                        found.add((tuple(pool.address for pool in sequence), base))
    return found


def _indexed(strategy: DexArbStrategy) -> set[tuple[tuple[str, ...], str]]:
    return {(tuple(hop.pool for hop in cycle.hops), cycle.tokens_in[0]) for cycle in strategy.cycles}


@settings(max_examples=150, deadline=None)
@given(pools=pool_graphs(), max_hops=st.sampled_from([2, 3]), seed=st.integers(0, 2**32))
def test_cycle_index_is_every_cycle_once_in_any_pool_order(pools: list[Pool], max_hops: int, seed: int) -> None:
    expected = _brute_force_cycles(pools, max_hops)
    built = _strategy(pools, max_hops=max_hops)
    assert _indexed(built) == expected
    assert len(built.cycles) == len(expected)  # no cycle twice

    # Pools discovered one by one, in another order, through updates: the same cycles.
    shuffled = list(pools)
    random.Random(seed).shuffle(shuffled)
    grown = _strategy([], max_hops=max_hops)
    for pool in shuffled:
        grown.store.add(pool)
        grown.on_pool_updates([PoolUpdate("test", pool.address, 7, 0)])
    assert _indexed(grown) == expected
    for pool in pools:
        through = {(tuple(hop.pool for hop in c.hops), c.tokens_in[0]) for c in grown.cycles_of(pool.address)}
        assert through == {cycle for cycle in expected if pool.address in cycle[0]}


# Hub pools (at least _VECTOR_MIN cycles) are pre-filtered and bounded as numpy vectors; these graphs
# are small, so the second run sends every pool down that path: both must keep the same cycles.
@pytest.mark.parametrize("vector_min", [search._VECTOR_MIN, 1], ids=["scalar", "vector"])
@settings(max_examples=120, deadline=None)
@given(
    pools=pool_graphs(),
    gas_price=st.sampled_from([0, 10**3, 10**6, 10**8]),
    builder_share_bps=st.sampled_from([0, 3000, 9000]),
    min_profit_threshold=st.sampled_from([0.0, 1e-6, 1e-4]),
)
def test_bounds_keep_every_cycle_that_clears_the_minimum(
    vector_min: int, pools: list[Pool], gas_price: int, builder_share_bps: int, min_profit_threshold: float
) -> None:
    """The rate pre-filter, the profit bound and the branch and bound never lose the best cycle.

    Expected, per updated pool: the best of the cycles through it that the library's size_cycle (no
    pre-filter, no bound, unbounded search) finds profitable by more than gas, the builder's share
    and the threshold, priced independently here (every token is worth 1 USD per 10^18 units).
    """
    with mock.patch.object(search, "_VECTOR_MIN", vector_min):
        _keeps_every_cycle_that_clears_the_minimum(pools, gas_price, builder_share_bps, min_profit_threshold)


def _keeps_every_cycle_that_clears_the_minimum(
    pools: list[Pool], gas_price: int, builder_share_bps: int, min_profit_threshold: float
) -> None:
    strategy = _strategy(
        pools,
        v2_max_scan=4096,
        v3_refine_radius=64,
        v3_refine_steps=4,
        builder_share_bps=builder_share_bps,
        min_profit_threshold=min_profit_threshold,
    )
    strategy.on_head(Head("test", 7, "0x", "0x", 0, gas_price))

    def net_of(result: ArbResult, length: int) -> float:
        cost = strategy.config.gas_limits[length] * gas_price + result.profit * builder_share_bps // 10_000
        return (result.profit - cost) / 1e18

    expected: dict[tuple[Hop, ...], ArbResult] = {}
    knife_edge: set[tuple[Hop, ...]] = set()
    for cycle in strategy.cycles:
        hops = [strategy.store.pools[hop.pool].hop(hop.token_in) for hop in cycle.hops]
        result = size_cycle(hops)
        if result is None:
            continue
        net_usd = net_of(result, len(hops))
        # The knife edge, where rounding (of USD floats, of a V3 search) decides either way: allowed, not required.
        if abs(net_usd - max(min_profit_threshold, 0.0)) <= 1e-9 * max(1.0, result.profit / 1e18):
            knife_edge.add(cycle.hops)
        elif net_usd > 0 and net_usd >= min_profit_threshold:
            expected[cycle.hops] = result
    event("some cycle clears the minimum" if expected else "no cycle clears the minimum")
    profitable = set(expected) | knife_edge
    for pool in pools:
        # One pool's update: every cycle it brings in trades through it, so only one can execute;
        # the strategy must find the best of them (it may skip the rest once none can beat it).
        through = {hops: result for hops, result in expected.items() if any(h.pool == pool.address for h in hops)}
        found = strategy.on_pool_updates([PoolUpdate("test", pool.address, 7, 0)])
        assert strategy.stats.verify_mismatches == 0
        assert {o.hops for o in found} <= profitable
        for opportunity in found:
            assert opportunity.net_profit_usd > 0 and opportunity.net_profit_usd >= min_profit_threshold
            if all(hop.kind == "v2" for hop in opportunity.hops):
                # The closed form's answer is the proven integer argmax: the same input as the library's.
                library = expected.get(opportunity.hops)
                if library is not None:
                    assert (opportunity.amount_in, opportunity.amount_out) == (library.amount_in, library.amount_out)
        if not through:
            continue
        assert found, "a cycle through the updated pool clears the minimum, and nothing was emitted"
        best_expected = max(net_of(result, len(hops)) for hops, result in through.items())
        # V3 searches are not proven optimal and bracket differently here (bounded) than in the
        # library (unbounded): allow their rounding noise, nothing more.
        assert found[0].net_profit_usd >= best_expected - 1e-12 - 1e-9 * abs(best_expected)


@settings(max_examples=80, deadline=None)
@given(pools=pool_graphs(), seed=st.integers(0, 2**32))
def test_a_batch_of_updates_sizes_each_cycle_once_on_either_path(pools: list[Pool], seed: int) -> None:
    # The engine hands the strategy every pool that moved in a block at once: a cycle through two of
    # them is sized once, and the vector path (which drops cycles already seen with numpy) agrees with
    # the scalar one to the wei.
    order = [pool.address for pool in pools]
    random.Random(seed).shuffle(order)
    answers = []
    for vector_min in (search._VECTOR_MIN, 1):
        with mock.patch.object(search, "_VECTOR_MIN", vector_min):
            strategy = _strategy(pools)
            found = strategy.on_pool_updates([PoolUpdate("test", address, 7, 0) for address in order])
        assert len({o.hops for o in found}) == len(found)
        assert strategy.stats.cycles_sized <= len(strategy.cycles)
        answers.append(sorted((o.id, o.amount_in, o.amount_out) for o in found))
    event(f"opportunities in the batch: {min(len(answers[0]), 3)}+")
    assert answers[0] == answers[1]
