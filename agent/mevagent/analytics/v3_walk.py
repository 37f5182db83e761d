"""A V3 pool in one direction as a real-valued curve walked segment by segment: the sandwich cap's first guess.

Between initialized ticks a V3 pool trades like a constant-product pool with reserves L/sqrtP and L*sqrtP,
the fee taken off the input and kept out of the curve. Because the fee leaves the curve, two swaps in
the same direction pay exactly (in the reals) what one swap of their sum pays: the front-run x and then
the victim's v move the pool as x + v does, and the victim receives F(x + v) - F(x), where F(t) is what
an input of t pays from the current state. `DirectedCurve` holds F as the list of its segments (cumulative
input and output at each initialized tick, built lazily as far as an argument needs), so F and its
inverse cost a bisection over the segment starts and a few float operations, instead of an exact
256-bit simulation that walks the tick bitmap each time.

`cap_guess` solves, on those curves, for the largest front-run that leaves the victim its limit; the
caller confirms it with the exact integer simulation (mevagent.analytics.sandwich_risk) in two or three
steps, so what is returned is always an exact, executable front-run.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator

from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK

_Q96 = float(1 << 96)
_LOG_SQRT_BASE = math.log(1.0001) / 2
_MIN_SQRT = (MIN_SQRT_RATIO + 1) / _Q96
_MAX_SQRT = (MAX_SQRT_RATIO - 1) / _Q96
MAX_SEGMENTS = 256  # tick crossings a guess may walk; beyond, the caller falls back to exact search


class DirectedCurve:
    """F(t): what an input of t (fee included) pays from `state`, going down (token0 in) or up."""

    __slots__ = ("_at_end", "_down", "_kept", "_liquidity", "_net", "_sqrt", "_ticks", "ins", "outs", "segments")

    def __init__(self, state: V3PoolState, down: bool) -> None:
        self._down = down
        self._kept = (1_000_000 - state.fee) / 1_000_000
        self._sqrt = state.sqrt_price_x96 / _Q96
        self._liquidity = state.liquidity
        self._net = state.ticks
        self._ticks: Iterator[int] = (
            state.ticks.irange(maximum=state.tick, reverse=True) if down else state.ticks.irange(minimum=state.tick + 1)
        )
        self._at_end = False
        self.ins = [0.0]  # cumulative input at the start of each segment (and the end of the last)
        self.outs = [0.0]
        self.segments: list[tuple[float, float]] = []  # (sqrt price at its start, liquidity)

    def _extend(self) -> bool:
        if self._at_end or len(self.segments) >= MAX_SEGMENTS:
            return False
        tick = next(self._ticks, None)
        if tick is None or not MIN_TICK <= tick <= MAX_TICK:
            boundary, self._at_end = (_MIN_SQRT if self._down else _MAX_SQRT), True
        else:
            boundary = math.exp(tick * _LOG_SQRT_BASE)
        root, liquidity = self._sqrt, float(self._liquidity)
        room_in = room_out = 0.0
        if liquidity > 0.0:
            if self._down:
                room_in, room_out = liquidity * (1.0 / boundary - 1.0 / root), liquidity * (root - boundary)
            else:
                room_in, room_out = liquidity * (boundary - root), liquidity * (1.0 / root - 1.0 / boundary)
        self.segments.append((root, liquidity))
        self.ins.append(self.ins[-1] + max(room_in, 0.0) / self._kept)
        self.outs.append(self.outs[-1] + max(room_out, 0.0))
        self._sqrt = boundary
        if tick is not None and not self._at_end:
            net = self._net[tick]
            self._liquidity += -net if self._down else net
        return True

    def out(self, amount_in: float) -> float | None:
        """F(amount_in); None when the pool's price range cannot fill it."""
        while not self.segments or self.ins[-1] < amount_in:
            if not self._extend():
                return None
        i = min(bisect_right(self.ins, amount_in) - 1, len(self.segments) - 1)
        root, liquidity = self.segments[i]
        if liquidity <= 0.0:
            return self.outs[i]
        effective = self._kept * (amount_in - self.ins[i]) / liquidity
        if self._down:
            return self.outs[i] + liquidity * (root - 1.0 / (1.0 / root + effective))
        return self.outs[i] + liquidity * (1.0 / root - 1.0 / (root + effective))

    def input_for(self, amount_out: float) -> float | None:
        """F⁻¹(amount_out): the input that pays `amount_out`; None when the pool cannot pay it."""
        while not self.segments or self.outs[-1] < amount_out:
            if not self._extend():
                return None
        i = min(bisect_right(self.outs, amount_out) - 1, len(self.segments) - 1)
        root, liquidity = self.segments[i]
        if liquidity <= 0.0:
            return self.ins[i]
        taken = (amount_out - self.outs[i]) / liquidity
        if self._down:
            moved = root - taken
            return self.ins[i] + (1.0 / moved - 1.0 / root) * liquidity / self._kept if moved > 0.0 else None
        inverse = 1.0 / root - taken
        return self.ins[i] + (1.0 / inverse - root) * liquidity / self._kept if inverse > 0.0 else None


def cap_guess(state: V3PoolState, down: bool, exact_in: bool, amount: int, limit: int) -> float | None:
    """The largest front-run (in the victim's input token) after which a single-hop victim still gets its
    limit, on the real curves; None when the walk cannot tell (too many ticks, no crossing found)."""
    curve = DirectedCurve(state, down)
    v, m = float(amount), float(limit)

    def slack(x: float) -> float:
        if exact_in:  # the victim's output F(x + v) - F(x) against amountOutMin
            before, after = curve.out(x), curve.out(x + v)
            return -m if before is None or after is None else after - before - m
        # exact output: the victim's input F⁻¹(F(x) + v) - x against amountInMax
        before = curve.out(x)
        needed = None if before is None else curve.input_for(before + v)
        return -m if needed is None else m - (needed - x)

    low, high = 0.0, max(1.0, v if exact_in else m)
    slack_low, slack_high = slack(low), slack(high)
    if slack_low < 0.0:
        return None
    while slack_high >= 0.0:
        low, slack_low = high, slack_high
        high *= 4.0
        if high > 1e60:
            return None
        slack_high = slack(high)
    return _illinois(slack, low, high, slack_low, slack_high)


def _illinois(f: Callable[[float], float], low: float, high: float, f_low: float, f_high: float) -> float:
    """Where the falling f crosses zero in [low, high] (f(low) >= 0 > f(high)), to 1e-13 of low."""
    side = 0
    for _ in range(100):
        if high - low <= max(1.0, low * 1e-13):
            break
        guess = low + (high - low) * f_low / (f_low - f_high)
        if not low < guess < high:
            guess = (low + high) / 2.0
        value = f(guess)
        if value < 0.0:
            high, f_high = guess, value
            if side == -1:
                f_low /= 2.0
            side = -1
        else:
            low, f_low = guess, value
            if side == 1:
                f_high /= 2.0
            side = 1
    return low
