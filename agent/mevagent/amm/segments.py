"""Sizing a cycle with V3 hops by walking its segments: a closed form per stretch of constant liquidity.

Between initialized ticks a V3 pool trades exactly like a constant-product pool with reserves
L/√P and L·√P (fee on the input, kept out of the curve), and a V2 hop is one throughout. So as long
as no hop of the cycle reaches its next initialized tick, the cycle composes into one Möbius map
out(x) = a·x / (1 + k·x) whose best input is (√a - 1) / k. The walk computes that
optimum for the current segment; if it lies beyond the input at which the first V3 hop reaches its
next tick, it moves every hop to that input, crosses the tick (applying its liquidityNet) and
repeats. Profit is concave in the input, so the first segment whose optimum lies inside it (or
whose marginal rate starts at or below 1) holds the global optimum.

All of that is float arithmetic on the real-valued curves, a few dozen operations per segment,
instead of the dozens of exact 256-bit simulations a concavity search needs. The exact integers
come after: the contracts' math (cycle_amounts) at the real optimum, so what is returned is what
the chain pays. Each hop only loses to rounding against its real
curve, so the real optimum's profit is also an upper bound (to float precision) on any integer
input's: a caller can drop a cycle whose real best cannot cover its costs without one exact step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mevagent.amm.arbitrage import ArbResult, Hop, V2Hop, cycle_amounts, result_of
from mevagent.amm.v3.tick_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK

_Q96 = float(1 << 96)
_LOG_SQRT_BASE = math.log(1.0001) / 2
# The exact swap refuses to run past these (the loosest limit a router passes).
_MIN_SQRT = (MIN_SQRT_RATIO + 1) / _Q96
_MAX_SQRT = (MAX_SQRT_RATIO - 1) / _Q96
# A walk that has not converged after this many tick crossings is not worth finishing on the hot path.
MAX_SEGMENTS = 64


class SegmentLimit(Exception):
    """The walk crossed MAX_SEGMENTS ticks without reaching the optimum: size this cycle another way."""


@dataclass(frozen=True, slots=True)
class RealOptimum:
    """The cycle's best input and profit on the real-valued curves (token units of the first hop)."""

    amount_in: float
    profit: float
    segments: int  # segments walked: 1 when no hop leaves its current tick range


class _Curve:
    """One hop as a real-valued curve that can be moved along its input: g, h of x -> g·x / (1 + h·x)."""

    __slots__ = ("capacity", "g", "h")

    g: float
    h: float
    capacity: float  # input (fee included) that ends the current segment; inf for a V2 hop

    def advance(self, amount_in: float, to_boundary: bool) -> None:
        raise NotImplementedError


class _V2Curve(_Curve):
    __slots__ = ("kept", "reserve_in", "reserve_out")

    def __init__(self, hop: V2Hop) -> None:
        self.kept = (hop.fee_denominator - hop.fee) / hop.fee_denominator
        self.reserve_in, self.reserve_out = float(hop.reserve_in), float(hop.reserve_out)
        self.capacity = math.inf
        self._set()

    def _set(self) -> None:
        self.g = self.kept * self.reserve_out / self.reserve_in
        self.h = self.kept / self.reserve_in

    def advance(self, amount_in: float, to_boundary: bool) -> None:
        # The transaction swaps once per hop: moving the fee-less part of the input into the curve
        # keeps the rest of the walk on that one-shot curve exactly (in the reals).
        effective = self.kept * amount_in
        paid = self.reserve_out * effective / (self.reserve_in + effective)
        self.reserve_in += effective
        self.reserve_out -= paid
        self._set()


class _V3Curve(_Curve):
    __slots__ = ("_net", "boundary", "down", "kept", "liquidity", "sqrt_price", "tick", "ticks")

    tick: int | None  # the initialized tick the segment ends at; None: the price limit

    def __init__(self, hop: Hop) -> None:
        state = hop.pool
        self.down = hop.zero_for_one  # token0 in: the price falls
        self.kept = (1_000_000 - state.fee) / 1_000_000
        self.sqrt_price = state.sqrt_price_x96 / _Q96
        self.liquidity = state.liquidity  # exact: liquidityNet is applied as the contract applies it
        # Initialized ticks in the direction of travel, as the contract meets them: going down it
        # crosses ticks at or below the current tick, going up those above it.
        if self.down:
            self.ticks: Iterator[int] = state.ticks.irange(maximum=state.tick, reverse=True)
        else:
            self.ticks = state.ticks.irange(minimum=state.tick + 1)
        self._net = state.ticks
        self.boundary = 0.0
        self._next_boundary()

    def _next_boundary(self) -> None:
        """Point at the next initialized tick (or the price limit) and recompute the segment."""
        tick = next(self.ticks, None)
        self.tick = tick
        if tick is None or not MIN_TICK <= tick <= MAX_TICK:
            self.boundary = _MIN_SQRT if self.down else _MAX_SQRT
        else:
            self.boundary = math.exp(tick * _LOG_SQRT_BASE)
        self._set()

    def _set(self) -> None:
        root, liquidity = self.sqrt_price, float(self.liquidity)
        if liquidity <= 0.0:
            self.g, self.h, self.capacity = 0.0, math.inf, 0.0
            return
        if self.down:  # reserves in/out: L/√P of token0, L·√P of token1
            self.g = self.kept * root * root
            self.h = self.kept * root / liquidity
            net = liquidity * (1.0 / self.boundary - 1.0 / root)
        else:
            self.g = self.kept / (root * root)
            self.h = self.kept / (liquidity * root)
            net = liquidity * (self.boundary - root)
        self.capacity = max(net, 0.0) / self.kept

    def at_limit(self) -> bool:
        return self.tick is None

    def advance(self, amount_in: float, to_boundary: bool) -> None:
        if to_boundary or self.liquidity <= 0:
            # Land on the tick exactly (no float drift into the next range) and cross it.
            self.sqrt_price = self.boundary
            if self.tick is not None:
                net = self._net[self.tick]
                self.liquidity += -net if self.down else net
            self._next_boundary()
            return
        effective = self.kept * amount_in / float(self.liquidity)
        if self.down:
            self.sqrt_price = 1.0 / (1.0 / self.sqrt_price + effective)
        else:
            self.sqrt_price += effective
        self._set()


def real_optimum(hops: Sequence[Hop], max_amount_in: float = math.inf) -> RealOptimum | None:
    """The best input of the cycle on its real curves, walking tick segments; None if none profits.

    Raises SegmentLimit when the walk does not converge within MAX_SEGMENTS crossings.
    """
    curves: list[_Curve] = [_V2Curve(hop) if isinstance(hop, V2Hop) else _V3Curve(hop) for hop in hops]
    taken = paid = 0.0  # cycle input so far and what the last hop paid for it
    for segment in range(1, MAX_SEGMENTS + 1):
        left = max_amount_in - taken
        if left <= 0.0:
            return _answer(taken, paid, segment)
        # Compose the hops; on the way, the cycle input at which each hop's segment ends.
        a, k = 1.0, 0.0
        end = left
        for curve in curves:
            # This hop's input is a·x / (1 + k·x) of the cycle's: invert it at the hop's capacity.
            # room <= 0: the hops before it cannot deliver that much, the boundary is out of reach.
            room = a - k * curve.capacity if curve.capacity else a
            if curve.capacity == 0.0:
                end = 0.0
            elif room > 0.0 and curve.capacity < math.inf:
                end = min(end, curve.capacity / room)
            a, k = a * curve.g, k + a * curve.h
        if end > 0.0:
            if a <= 1.0:
                return _answer(taken, paid, segment)  # the marginal rate is at most 1: done
            best = (math.sqrt(a) - 1.0) / k
            if best <= end or end == left:  # inside the segment, or the caller's cap ends it
                best = min(best, end)
                return _answer(taken + best, paid + _through(a, k, best), segment)
        # else a hop sits on its next tick or in a range without liquidity: it crosses first.
        # Move every hop to the end of the segment; the hop(s) that reach their tick cross it.
        amount = end
        for curve in curves:
            reached = amount >= curve.capacity * (1.0 - 1e-12)
            out = _through(curve.g, curve.h, amount)
            if reached and isinstance(curve, _V3Curve) and curve.at_limit():
                # The pool runs out of price range: no larger input fills.
                return _answer(taken + end, paid + _through(a, k, end), segment)
            curve.advance(amount, reached)
            amount = out
        taken += end
        paid += amount
    raise SegmentLimit(f"no optimum within {MAX_SEGMENTS} tick crossings")


def _through(a: float, k: float, amount: float) -> float:
    """What x -> a·x / (1 + k·x) pays for `amount`; 0 for none (k may be inf: a range without liquidity)."""
    return a * amount / (1.0 + k * amount) if amount > 0.0 else 0.0


def _answer(taken: float, paid: float, segments: int) -> RealOptimum | None:
    if taken < 1.0 or paid <= taken:
        return None
    return RealOptimum(taken, paid - taken, segments)


def exact_at(hops: Sequence[Hop], amount_in: float) -> ArbResult | None:
    """The contracts' integers at the real optimum; None if that input does not profit.

    Near the optimum the real profit is flat, so neighbouring integers differ by rounding only; the
    exception is a coarse token inside the cycle (6 decimals against 18), whose unit makes the output
    a staircase: the input here can sit up to one such unit (in the input token) past the start of
    its stair. That is what is left on the table, measured in bench/agent_hot_path.py; scanning for
    the stair costs dozens of exact simulations on the hot path.
    """
    center = max(1, int(amount_in))
    amounts = cycle_amounts(hops, center)
    if amounts is None:
        # Float rounding put the optimum's integer just past where a pool runs out of range.
        center = max(1, int(amount_in * (1.0 - 1e-9)) - 1)
        amounts = cycle_amounts(hops, center)
    if amounts is None or amounts[-1] <= center:
        return None
    return result_of(amounts, None)
