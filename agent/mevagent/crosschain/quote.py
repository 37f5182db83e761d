"""A published V3 pool (mevagent.bus.events.V3Quote) as the exact V3 math quotes it: the state over the published
ticks, and a swap on it stopped at the published range's edge."""

from __future__ import annotations

from mevagent.amm.arbitrage import V3Hop
from mevagent.amm.v3 import MAX_TICK, MIN_TICK, V3PoolState, get_sqrt_ratio_at_tick
from mevagent.bus.events import V3Quote


def v3_state(quote: V3Quote) -> V3PoolState:
    """The pool as its agent published it: exact within [tick_lower, tick_upper], unknown beyond."""
    return V3PoolState.from_ticks(
        sqrt_price_x96=quote.sqrt_price_x96, tick=quote.tick, liquidity=quote.liquidity, fee=quote.fee,
        tick_spacing=quote.tick_spacing, ticks={t.tick: t.liquidity_net for t in quote.ticks},
    )  # fmt: skip


def v3_hop(quote: V3Quote, state: V3PoolState, zero_for_one: bool) -> V3Hop:
    """A swap on the published V3 pool, stopped at the published range's edge in its direction (past it the
    ticks are unknown: an input that needs more is infeasible). The edges are whole bitmap words, where the
    pool's own loop ends a step too; at MIN_TICK/MAX_TICK there is nothing beyond, so the pool's own limit."""
    if zero_for_one:
        limit = get_sqrt_ratio_at_tick(quote.tick_lower) if quote.tick_lower > MIN_TICK else None
    else:
        limit = get_sqrt_ratio_at_tick(quote.tick_upper) if quote.tick_upper < MAX_TICK else None
    return V3Hop(state, zero_for_one, limit)
