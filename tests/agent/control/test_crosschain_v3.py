"""V3 pools in the cross-chain price graph, without a node: what the agent's reporter publishes of a V3 pool (whole
tick-bitmap words around the tick, every initialized tick there), that the engine's quote over the published
ticks is the full pool's exact swap wherever it stays in the range and refused wherever it would leave it, and
that V2-V3 and V3-V3 gaps are sized over those quotes and priced exactly. (On the pools' real contracts:
test_crosschain_legs's V3 tests.)"""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from math import isqrt
from pathlib import Path
from typing import Any

import orjson
import pytest
from mevcontrol.crosschain import CrossChainEngine, _gross_bound, _v3_bound
from mevcontrol.positions import ExecutionConfig, Position, PositionBook

from mevagent.amm.arbitrage import V2Hop, V3Hop, cycle_amounts
from mevagent.amm.v2 import get_amount_out
from mevagent.amm.v3 import V3PoolState, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio, simulate_swap
from mevagent.bus.events import Command, CrossChainLegCommand, CrossChainLegResult, PairPrice, decode_event, encode
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec
from mevagent.crosschain.quote import v3_hop, v3_state
from mevagent.state.pools import PoolStore, V2Pool, V3Pool
from testbed.crosschain import registry_file

from .test_crosschain_anvil import E18, _config

WETH = "0x" + "11" * 20  # token0 (the lower address)
TUSD = "0x" + "22" * 20
POOL = "0x" + "33" * 20
PAIR = "0x" + "44" * 20


def _state(price_tusd_per_weth: int, spacing: int, positions: list[tuple[int, int, int]]) -> V3PoolState:
    """A pool at the price with liquidity `positions` (lower, upper, L): its initialized ticks and active liquidity."""
    sqrt_p = isqrt(price_tusd_per_weth << 192)
    tick = get_tick_at_sqrt_ratio(sqrt_p)
    ticks: dict[int, int] = {}
    active = 0
    for lower, upper, liquidity in positions:
        ticks[lower] = ticks.get(lower, 0) + liquidity
        ticks[upper] = ticks.get(upper, 0) - liquidity
        active += liquidity if lower <= tick < upper else 0
    return V3PoolState.from_ticks(
        sqrt_price_x96=sqrt_p, tick=tick, liquidity=active, fee=3000, tick_spacing=spacing, ticks=ticks
    )


def _ladder(centre: int, spacing: int, count: int, step: int, liquidity: int) -> list[tuple[int, int, int]]:
    """`count` nested positions around `centre`, `step` spacings wider each: an initialized tick every `step`."""
    base = centre // spacing * spacing
    return [(base - k * step * spacing, base + k * step * spacing, liquidity) for k in range(1, count + 1)]


def _v3_event(state: V3PoolState, words: int = 2, chain: str = "beta") -> PairPrice:
    store = PoolStore(chain, block=7)
    store.add(V3Pool(POOL, "uniswap_v3", WETH, TUSD, state))
    published: list[Any] = []
    config = PairPricesConfig(pairs=(PairSpec(pool=POOL, base=WETH),), sell_sizes=(E18,), v3_words=words)
    reporter = PairPriceReporter("xb", store, config, published.append)
    assert reporter.observe([POOL], 7) == 1
    assert reporter.observe([POOL], 8) == 0  # unmoved
    (event,) = published
    return event


def test_the_reporter_publishes_whole_bitmap_words_around_the_tick_and_the_event_round_trips() -> None:
    spacing = 10
    state = _state(3060, spacing, _ladder(80_000, spacing, 60, 50, 10**21))  # an initialized tick every 500
    event = _v3_event(state, words=1)
    v3 = event.v3
    assert v3 is not None and v3.base_is_token0 and v3.fee == 3000 and v3.tick_spacing == spacing
    word = (state.tick // spacing) >> 8
    assert (v3.tick_lower, v3.tick_upper) == ((word - 1) * 2560, ((word + 2) * 256 - 1) * spacing)
    inside = [(t, n) for t, n in state.ticks.items() if v3.tick_lower <= t <= v3.tick_upper]
    assert [(t.tick, t.liquidity_net) for t in v3.ticks] == inside and 0 < len(inside) < len(state.ticks)
    assert (v3.sqrt_price_x96, v3.liquidity, v3.tick) == (state.sqrt_price_x96, state.liquidity, state.tick)
    assert event.sell[0].amount_out == -simulate_swap(state, True, E18).amount1  # depth from the full state
    assert 3059 < event.price < 3061
    # The wire: big integers as strings, read back equal; an event without `v3` (a V2 pool, or from an agent
    # that predates V3) still decodes, as a constant-product pool.
    assert decode_event(encode(event)) == event
    old = orjson.loads(encode(event))
    del old["v3"]
    assert decode_event(orjson.dumps(old)).v3 is None  # type: ignore[attr-defined]


def test_a_v3_pool_is_published_again_when_its_price_or_its_ticks_move() -> None:
    state = _state(3060, 60, _ladder(80_000, 60, 3, 10, 10**22))
    store = PoolStore("beta", block=1)
    store.add(V3Pool(POOL, "uniswap_v3", WETH, TUSD, state))
    published: list[Any] = []
    config = PairPricesConfig(pairs=(PairSpec(pool=POOL, base=WETH),), min_move_bps=10)
    reporter = PairPriceReporter("xb", store, config, published.append)
    assert reporter.observe([POOL], 1) == 1
    state.sqrt_price_x96 += state.sqrt_price_x96 // 100_000  # 0.2 bps: below min_move_bps
    assert reporter.observe([POOL], 2) == 0
    state.sqrt_price_x96 += state.sqrt_price_x96 // 1_000  # 20 bps
    assert reporter.observe([POOL], 3) == 1
    state.ticks[state.tick // 60 * 60 + 120] = 5  # a mint in range: the depth changed at the same price
    assert reporter.observe([POOL], 4) == 1
    state.ticks[state.tick // 60 * 60 + 120] = 7  # the same tick, another liquidityNet
    assert reporter.observe([POOL], 5) == 1
    state.liquidity += 1  # the active liquidity alone
    assert reporter.observe([POOL], 6) == 1
    assert reporter.observe([POOL], 7) == 0
    # The range's edges are published: a tick move across a bitmap word with no new tick in range is published too.
    word = (state.tick // 60) >> 8
    state.tick = (word + 1) * 256 * 60
    assert reporter.observe([POOL], 8) == 1 and published[-1].v3.tick_lower == (word - 1) * 256 * 60
    # min_move_bps 0: every price move is published, an unchanged pool still is not.
    reporter.config = PairPricesConfig(pairs=config.pairs, min_move_bps=0)
    assert reporter.observe([POOL], 9) == 0
    state.sqrt_price_x96 += 1
    assert reporter.observe([POOL], 10) == 1
    assert len(published) == 7


def test_the_reporters_depth_is_the_pools_exact_output_and_0_where_the_pool_cannot_fill_it() -> None:
    """V2: the pair's getAmountOut both ways, 0 for a size the router's SafeMath would revert on. V3: the exact
    swap both ways, 0 for a size the pool fills only partly (its liquidity runs out before the input does)."""
    store = PoolStore("beta", block=3)
    store.add(V2Pool(PAIR, "uniswap_v2", WETH, TUSD, 100 * E18, 300_000 * E18, 30, 10_000))
    state = _state(3060, 60, _ladder(80_000, 60, 3, 10, 10**22))
    store.add(V3Pool(POOL, "uniswap_v3", WETH, TUSD, state))
    published: list[Any] = []
    config = PairPricesConfig(
        pairs=(PairSpec(pool=PAIR, base=WETH), PairSpec(pool=POOL, base=WETH)),
        buy_sizes=(3000 * E18, 1 << 250), sell_sizes=(E18, 10**30),
    )  # fmt: skip
    assert PairPriceReporter("xb", store, config, published.append).observe([PAIR, POOL], 3) == 2
    v2, v3 = published
    weth, tusd = 100 * E18, 300_000 * E18
    assert [(d.amount_in, d.amount_out) for d in v2.buy] == [(3000 * E18, get_amount_out(3000 * E18, tusd, weth)),
                                                             (1 << 250, 0)]  # fmt: skip
    assert [d.amount_out for d in v2.sell] == [get_amount_out(size, weth, tusd) for size in (E18, 10**30)]
    bought, drained = simulate_swap(state, False, 3000 * E18), simulate_swap(state, True, 10**30)
    assert bought.amount1 == 3000 * E18 and drained.amount0 < 10**30  # the second runs out of liquidity
    assert [d.amount_out for d in v3.buy] == [-bought.amount0, 0]
    assert [d.amount_out for d in v3.sell] == [-simulate_swap(state, True, E18).amount1, 0]


@pytest.mark.parametrize("zero_for_one", [True, False])
def test_the_engines_quote_is_the_pools_swap_within_the_published_range_and_refused_beyond(zero_for_one: bool) -> None:
    # Spacing 1, one word each side (768 ticks in all), a tick every 40: quotes inside, at and past the edge.
    state = _state(3060, 1, _ladder(80_000, 1, 40, 40, 10**20))
    event = _v3_event(state, words=1)
    assert event.v3 is not None
    hop = v3_hop(event.v3, v3_state(event.v3), zero_for_one)
    low, high = get_sqrt_ratio_at_tick(event.v3.tick_lower), get_sqrt_ratio_at_tick(event.v3.tick_upper)
    inside = refused = 0
    for exponent in range(15, 24):
        for mantissa in (1, 3):
            amount = mantissa * 10**exponent
            full = simulate_swap(state, zero_for_one, amount)  # the pool, every tick known
            quoted = cycle_amounts([hop], amount)
            if low < full.sqrt_price_x96 < high:
                inside += 1
                assert quoted is not None and quoted[-1] == -(full.amount1 if zero_for_one else full.amount0)
            else:
                refused += 1
                assert quoted is None, amount  # past the published ticks: refused, never guessed
    assert inside >= 4 and refused >= 4
    assert isinstance(hop, V3Hop) and hop.sqrt_price_limit_x96 == (low if zero_for_one else high)


@pytest.mark.parametrize("buy_v3", [False, True])
def test_v2_v3_and_v3_v3_gaps_are_sized_over_the_published_ticks_and_priced_exactly(
    buy_v3: bool, tmp_path: Path
) -> None:
    """Buy WETH on alpha at 3,000 (a V2 pair, or a V3 pool), sell it on beta's V3 pool at 3,060: the gap's
    amounts are the full pools' exact swaps, and its net is the gross less the costs as for V2."""
    both = ("alpha", "beta")
    engine = CrossChainEngine(_config(registry_file(tmp_path, dict.fromkeys(both, WETH), dict.fromkeys(both, TUSD))))
    sell_state = _state(3060, 60, _ladder(80_000, 60, 20, 5, 10**21))
    buy_state = _state(3000, 60, _ladder(80_000, 60, 20, 5, 10**21))
    if buy_v3:
        buy_event = _v3_event(buy_state, chain="alpha")
    else:
        store = PoolStore("alpha", block=5)
        store.add(V2Pool(PAIR, "uniswap_v2", WETH, TUSD, 100 * E18, 300_000 * E18, 30, 10_000))
        published: list[Any] = []
        reporter = PairPriceReporter("xa", store, PairPricesConfig(pairs=(PairSpec(pool=PAIR, base=WETH),)),
                                     published.append)  # fmt: skip
        reporter.observe([PAIR], 5)
        (buy_event,) = published
    assert engine.absorb(buy_event) == []
    (opp,) = engine.absorb(_v3_event(sell_state, chain="beta"))
    assert (opp.buy_chain, opp.sell_chain, opp.sell_v3_fee) == ("alpha", "beta", 3000)
    assert opp.buy_v3_fee == (3000 if buy_v3 else None)
    # The full pools (every tick) pay exactly the gap's amounts.
    if buy_v3:
        bought = -simulate_swap(buy_state, False, opp.amount_in).amount0  # TUSD (token1) in, WETH out
    else:
        (_, bought) = cycle_amounts([V2Hop(300_000 * E18, 100 * E18)], opp.amount_in)  # type: ignore[misc]
    assert bought == opp.base_amount
    assert -simulate_swap(sell_state, True, opp.base_amount).amount1 == opp.amount_out
    assert opp.gross == opp.amount_out - opp.amount_in > 0
    assert opp.net == opp.gross - opp.gas_cost - opp.bridge_cost - opp.builder_payment > 0
    # The gas of a V3 leg is v3_leg_gas's: alpha 1 gwei, beta 2 gwei, ETH at 3,000 (test_crosschain_anvil's config).
    gas = (250_000 if buy_v3 else 150_000) * 10**9 + 250_000 * 2 * 10**9
    assert opp.gas_cost == gas * 3000
    assert engine.stats.sized_v3 >= 1
    # The fixed-cost pre-test's bound (a V3 pool as the constant-product pool of its most liquidity in range)
    # is above what the pools pay.
    buy, sell = engine.quotes[("alpha", POOL if buy_v3 else PAIR)], engine.quotes[("beta", POOL)]
    assert _gross_bound(buy, sell) >= opp.gross
    # Costs the bound cannot pay: the gap is refused before any V3 sizing.
    engine.gas_wei = {"alpha": 10**15, "beta": 10**15}
    engine._fixed.clear()
    sized = engine.stats.sized_v3
    assert engine.absorb(sell.event) == [] and engine.stats.sized_v3 == sized
    assert engine.stats.below_fixed_costs >= 1


def test_the_v3_bound_is_the_pools_largest_liquidity_in_range() -> None:
    """Liquidity 1 at the price, 5 further up, 3 further down (outside the range: 100): the bound's reserves are
    those of liquidity 5, at the pool's price."""
    state = _state(3060, 60, [])
    centre = state.tick // 60 * 60
    state = _state(3060, 60, [(centre - 600, centre + 600, 1), (centre + 120, centre + 240, 4),
                              (centre - 300, centre - 120, 2), (centre + 300_000, centre + 300_060, 100)])  # fmt: skip
    event = _v3_event(state, words=1)
    assert event.v3 is not None and state.liquidity == 1
    r_weth, r_tusd = _v3_bound(event.v3, v3_state(event.v3))
    assert r_weth == 5 * (1 << 96) // state.sqrt_price_x96 + 1 and r_tusd == 5 * state.sqrt_price_x96 // (1 << 96) + 1


def test_an_empty_pool_against_a_v3_pool_is_no_gap(tmp_path: Path) -> None:
    both = ("alpha", "beta")
    engine = CrossChainEngine(_config(registry_file(tmp_path, dict.fromkeys(both, WETH), dict.fromkeys(both, TUSD))))
    v3 = _v3_event(_state(3060, 60, _ladder(80_000, 60, 3, 5, 10**21)), chain="beta")
    empty = v3.model_copy(update={"chain": "alpha", "v3": v3.v3.model_copy(update={"sqrt_price_x96": 0})})  # type: ignore[union-attr]
    v2 = v3.model_copy(update={"chain": "alpha", "v3": None, "reserve_base": 0})
    for other in (empty, v2):
        fresh = CrossChainEngine(engine.config, engine.registry)
        assert fresh.absorb(other) == [] and fresh.absorb(v3) == []


class _Fleet:
    """What the position book needs of the control plane, recording the commands it sends."""

    def __init__(self) -> None:
        self.sent: list[CrossChainLegCommand] = []

    def refusal(self, adding_usd: Decimal) -> str:
        return ""

    async def send(self, agent: str, command: Command) -> None:
        assert isinstance(command, CrossChainLegCommand)
        self.sent.append(command)

    async def record_position(self, record: dict[str, Any], version: int) -> None:
        return None

    async def open_position(self, record: dict[str, Any], version: int, commands: list[CrossChainLegCommand]) -> None:
        self.sent.extend(commands)


@pytest.mark.parametrize("beyond", [False, True])
def test_a_landed_v3_leg_is_sold_back_for_the_exact_quote_or_left_stuck_when_no_quote_exists(
    beyond: bool, tmp_path: Path
) -> None:
    """Alpha's V2 buy rejected, beta's V3 sale landed: sold back on the V3 pool for the exact V3 quote after the
    sale; a sale whose buy-back would go past the published ticks is never sent with a guessed (or zero) min_out:
    the position is stuck, and an operator's retry is refused while no quote exists."""
    both = ("alpha", "beta")
    engine = CrossChainEngine(_config(registry_file(tmp_path, dict.fromkeys(both, WETH), dict.fromkeys(both, TUSD))))
    sell_state = _state(3060, 1, _ladder(80_000, 1, 40, 40, 10**21))  # spacing 1, one word each side: ±256+
    store = PoolStore("alpha", block=5)
    store.add(V2Pool(PAIR, "uniswap_v2", WETH, TUSD, 100 * E18, 300_000 * E18, 30, 10_000))
    published: list[Any] = []
    PairPriceReporter("xa", store, PairPricesConfig(pairs=(PairSpec(pool=PAIR, base=WETH),)), published.append).observe(
        [PAIR], 5
    )
    engine.absorb(published[0])
    (opp,) = engine.absorb(_v3_event(sell_state, words=1))
    fleet = _Fleet()
    book = PositionBook(ExecutionConfig.model_validate({"agents": {"alpha": "xa", "beta": "xb"}}), engine, fleet)

    async def scenario() -> Position:
        position = book.consider(opp)
        assert position is not None
        await asyncio.sleep(0)
        buy, sell = position.legs["buy"].command, position.legs["sell"].command
        sold = 10**28 if beyond else opp.amount_out  # what the V3 sale paid (beyond: far more than the range holds)
        for command, status, out in ((buy, "rejected", 0), (sell, "landed", sold)):
            book.on_result(CrossChainLegResult(
                agent=command.agent, command_id=command.id, position_id=position.id, leg=command.leg,
                chain=command.chain, status=status, token_in=command.token_in, token_out=command.token_out,
                amount_in=command.amount_in if status == "landed" else 0, amount_out=out,
            ))  # fmt: skip
        await asyncio.sleep(0)
        if beyond:
            with pytest.raises(ValueError, match="past the ticks its agent published"):
                await book.retry_unwind(position.id)
        return position

    position = asyncio.run(scenario())
    unwinds = [c for c in fleet.sent if c.leg == "unwind"]
    if beyond:
        assert position.state == "stuck" and unwinds == [], position.steps
        assert "not sent: selling" in position.steps[-1]
        return
    (unwind,) = unwinds
    after = simulate_swap(sell_state, True, opp.base_amount)  # the sale: WETH (token0) in
    moved = dataclasses.replace(sell_state, sqrt_price_x96=after.sqrt_price_x96, tick=after.tick,
                                liquidity=after.liquidity)  # fmt: skip
    back = -simulate_swap(moved, False, opp.amount_out).amount0
    assert (unwind.chain, unwind.pool, unwind.v3_fee, unwind.amount_in) == ("beta", POOL, 3000, opp.amount_out)
    assert unwind.expected_out == back and unwind.min_out == back * (10_000 - 100) // 10_000
    assert position.state == "unwinding"
