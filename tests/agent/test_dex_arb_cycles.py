"""The strategy's cycle index and pre-filter, against brute force on random pool graphs (no node needed).

- The cycles it indexes are exactly the 2- and 3-hop base-token cycles of the graph, whatever order
  the pools arrive in, and each pool lists exactly the cycles through it.
- The pre-filter never drops a cycle that exact sizing finds profitable: with no gas, no builder
  share and no minimum, it emits exactly the cycles the library's size_cycle finds profitable, with
  the same amounts.
"""

import itertools
import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from mevagent.amm.arbitrage import size_cycle
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.core import Head, PoolUpdate
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state.pools import Pool, PoolStore, V2Pool, V3Pool
from mevagent.strategies import DexArbConfig, DexArbStrategy

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


@settings(max_examples=120, deadline=None)
@given(pools=pool_graphs())
def test_pre_filter_keeps_every_profitable_cycle(pools: list[Pool]) -> None:
    # The library's own defaults, so both sides size identically.
    strategy = _strategy(pools, v2_max_scan=4096, v3_refine_radius=64)
    expected = {}
    for cycle in strategy.cycles:
        hops = [strategy.store.pools[hop.pool].hop(hop.token_in) for hop in cycle.hops]
        result = size_cycle(hops)
        if result is not None:
            expected[cycle.hops] = (result.amount_in, result.amount_out)
    event("some cycle profitable" if expected else "no cycle profitable")
    found = strategy.on_pool_updates([PoolUpdate("test", pool.address, 7, 0) for pool in pools])
    assert {o.hops: (o.amount_in, o.amount_out) for o in found} == expected
    assert strategy.stats.verify_mismatches == 0
    # And what it sized is only what the pre-filter let through: at most every cycle once.
    assert strategy.stats.cycles_sized <= len(strategy.cycles)
