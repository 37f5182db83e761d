"""A Uniswap V3 pool's swap, simulated exactly as UniswapV3Pool.swap computes it.

The loop mirrors the contract step for step. In particular the next tick is searched the way
TickBitmap.nextInitializedTickWithinOneWord searches it: never past the end of the current 256-bit
bitmap word. A step that stops at a word boundary with no initialized tick there still splits the
swap in two, and the split changes the rounding; a simulator that jumps straight to the next
initialized tick is off by a few wei whenever a swap crosses a word boundary.

The one shortcut is through ranges without liquidity, where every step swaps nothing: there the
simulation jumps to where the contract's word-by-word walk ends (see _skip_empty_range).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from sortedcontainers import SortedDict

from mevagent.amm.errors import Revert
from mevagent.amm.v3.full_math import MAX_UINT128
from mevagent.amm.v3.swap_math import compute_swap_step
from mevagent.amm.v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

_INT256_LIMIT = 1 << 255

# Searches re-simulate the same pool many times and cross the same ticks, and a tick's price never
# changes: caching saves twenty 256-bit multiplications per step.
_sqrt_ratio_at = lru_cache(maxsize=1 << 14)(get_sqrt_ratio_at_tick)


@dataclass(slots=True)
class V3PoolState:
    """What a swap reads from a pool.

    `ticks` holds every *initialized* tick (liquidityGross > 0) with its liquidityNet, including
    ticks whose liquidityNet is 0: the contract stops a swap step at them all the same.

    A slotted dataclass rather than a pydantic model: it is updated in place from Swap/Mint/Burn
    logs on the hot path and simulated thousands of times per block.
    """

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    tick_spacing: int
    ticks: SortedDict = field(default_factory=SortedDict)

    @classmethod
    def from_ticks(
        cls,
        *,
        sqrt_price_x96: int,
        tick: int,
        liquidity: int,
        fee: int,
        tick_spacing: int,
        ticks: Mapping[int, int],
    ) -> "V3PoolState":
        """Build a state from any {tick: liquidityNet} mapping, checking the ticks are on spacing."""
        off_spacing = [t for t in ticks if t % tick_spacing]
        if off_spacing:
            raise ValueError(f"ticks not multiples of tick spacing {tick_spacing}: {off_spacing[:5]}")
        return cls(sqrt_price_x96, tick, liquidity, fee, tick_spacing, SortedDict(ticks))

    def next_initialized_tick_within_one_word(self, tick: int, lte: bool) -> tuple[int, bool]:
        """TickBitmap.nextInitializedTickWithinOneWord over the sorted initialized ticks."""
        spacing = self.tick_spacing
        compressed = tick // spacing  # floor, as the contract's "round towards negative infinity"
        ticks = self.ticks
        if lte:
            word_start = (compressed - (compressed & 0xFF)) * spacing
            index = ticks.bisect_right(tick) - 1
            if index >= 0:
                candidate = ticks.peekitem(index)[0]
                if candidate >= word_start:
                    return candidate, True
            return word_start, False
        following = compressed + 1
        word_end = (following - (following & 0xFF) + 0xFF) * spacing
        index = ticks.bisect_right(tick)
        if index < len(ticks):
            candidate = ticks.peekitem(index)[0]
            if candidate <= word_end:
                return candidate, True
        return word_end, False


class SwapResult(NamedTuple):
    """The pool's return values and end state; amounts are signed from the pool's side.

    Positive means the pool receives that token, negative means it pays it out.
    """

    amount0: int
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    # Initialized ticks crossed (each one applies a liquidityNet): what a swap's gas grows with.
    ticks_crossed: int


def _add_delta(liquidity: int, delta: int) -> int:
    """LiquidityMath.addDelta: liquidity stays a uint128 or the swap reverts."""
    liquidity += delta
    if liquidity < 0:
        raise Revert("LS")
    if liquidity > MAX_UINT128:
        raise Revert("LA")
    return liquidity


def _skip_empty_range(
    pool: V3PoolState, tick: int, zero_for_one: bool, sqrt_price_limit_x96: int
) -> tuple[int, int, int, bool]:
    """Where the contract's zero-liquidity walk from `tick` ends: (price, tick, liquidity, crossed).

    Either at the next initialized tick, which it crosses, or at the price limit. Only the tick it
    leaves needs care: a zeroForOne walk visits word starts (multiples of 256 spacings) and, ending
    on the limit exactly at one of them, sets the tick one below it as for any boundary it reaches.
    """
    ticks = pool.ticks
    if zero_for_one:
        index = ticks.bisect_right(tick) - 1
        if index >= 0:
            next_tick, liquidity_net = ticks.peekitem(index)
            price = _sqrt_ratio_at(next_tick)
            if price >= sqrt_price_limit_x96:
                return price, next_tick - 1, _add_delta(0, -liquidity_net), True
        end_tick = get_tick_at_sqrt_ratio(sqrt_price_limit_x96)
        if end_tick % (256 * pool.tick_spacing) == 0 and _sqrt_ratio_at(end_tick) == sqrt_price_limit_x96:
            end_tick -= 1
        return sqrt_price_limit_x96, end_tick, 0, False
    index = ticks.bisect_right(tick)
    if index < len(ticks):
        next_tick, liquidity_net = ticks.peekitem(index)
        price = _sqrt_ratio_at(next_tick)
        if price <= sqrt_price_limit_x96:
            return price, next_tick, _add_delta(0, liquidity_net), True
    return sqrt_price_limit_x96, get_tick_at_sqrt_ratio(sqrt_price_limit_x96), 0, False


def default_sqrt_price_limit(zero_for_one: bool) -> int:
    """The loosest limit the pool accepts, as routers pass for "no limit"."""
    return MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1


def simulate_swap(
    pool: V3PoolState,
    zero_for_one: bool,
    amount_specified: int,
    sqrt_price_limit_x96: int | None = None,
) -> SwapResult:
    """UniswapV3Pool.swap without moving tokens: > 0 `amount_specified` is exact input, < 0 exact
    output. Raises Revert wherever the pool would revert. `pool` is not modified.
    """
    if amount_specified == 0:
        raise Revert("AS")
    if not -_INT256_LIMIT < amount_specified < _INT256_LIMIT:
        raise Revert("amount does not fit in int256")
    if sqrt_price_limit_x96 is None:
        sqrt_price_limit_x96 = default_sqrt_price_limit(zero_for_one)
    sqrt_price = pool.sqrt_price_x96
    if zero_for_one:
        if not MIN_SQRT_RATIO < sqrt_price_limit_x96 < sqrt_price:
            raise Revert("SPL")
    elif not sqrt_price < sqrt_price_limit_x96 < MAX_SQRT_RATIO:
        raise Revert("SPL")

    exact_input = amount_specified > 0
    remaining = amount_specified
    calculated = 0
    tick = pool.tick
    liquidity = pool.liquidity
    fee = pool.fee
    ticks = pool.ticks
    crossed = 0

    while remaining != 0 and sqrt_price != sqrt_price_limit_x96:
        if liquidity == 0:
            # Without liquidity every step swaps nothing and only moves the price, one bitmap word
            # at a time: thousands of steps when a thin pool runs dry on the way to its limit.
            # Jump to where that walk ends instead, with the tick the contract would leave.
            sqrt_price, tick, liquidity, jumped_a_tick = _skip_empty_range(
                pool, tick, zero_for_one, sqrt_price_limit_x96
            )
            crossed += jumped_a_tick
            continue
        step_start = sqrt_price
        tick_next, initialized = pool.next_initialized_tick_within_one_word(tick, zero_for_one)
        if tick_next < MIN_TICK:
            tick_next = MIN_TICK
        elif tick_next > MAX_TICK:
            tick_next = MAX_TICK
        sqrt_price_next = _sqrt_ratio_at(tick_next)

        if zero_for_one:
            target = sqrt_price_limit_x96 if sqrt_price_next < sqrt_price_limit_x96 else sqrt_price_next
        else:
            target = sqrt_price_limit_x96 if sqrt_price_next > sqrt_price_limit_x96 else sqrt_price_next
        sqrt_price, amount_in, amount_out, fee_amount = compute_swap_step(sqrt_price, target, liquidity, remaining, fee)

        if exact_input:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount

        if sqrt_price == sqrt_price_next:
            if initialized:
                liquidity_net = ticks[tick_next]
                liquidity = _add_delta(liquidity, -liquidity_net if zero_for_one else liquidity_net)
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price != step_start:
            tick = get_tick_at_sqrt_ratio(sqrt_price)

    if not -_INT256_LIMIT < calculated < _INT256_LIMIT:
        raise Revert("SafeCast: int256")
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return SwapResult(amount0, amount1, sqrt_price, tick, liquidity, crossed)
