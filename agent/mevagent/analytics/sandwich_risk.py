"""How much a sandwich could take from a pending swap: detection and protection only.

Nothing here sends anything. For a decoded swap (routers.py) and the pools' exact state (the
agent's pool store), each hop of the route is considered as the sandwiched pool: a front-run of x
in that hop's input token moves the pool, the victim's swap runs against the moved state (every
amount as the contracts compute it: mevagent.amm), and the back-run sells the front-run's output
back into the pool. The victim's own limit (amountOutMin, or amountInMax for exact output) caps x:
the largest x at which the victim still executes is found exactly, starting from the closed form
on a single V2 hop (a quadratic in x) and by regula falsi on exact simulations otherwise (V3 moves
across tick segments). If the profit already falls before that cap, a golden-section search finds
the best x below it. The score is the profit at that x, in the hop's input token, before gas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import isqrt

from pydantic import BaseModel, ConfigDict

from mevagent.amm.errors import Revert
from mevagent.amm.v2 import get_amount_in, get_amount_out
from mevagent.amm.v3.full_math import Q96
from mevagent.amm.v3.pool import V3PoolState, simulate_swap
from mevagent.analytics.routers import PendingSwap
from mevagent.analytics.v3_walk import cap_guess
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

_GOLDEN = (math.sqrt(5) - 1) / 2


class SandwichRisk(BaseModel):
    """One pending swap's exposure (amounts in base units)."""

    model_config = ConfigDict(frozen=True)

    token_in: str
    token_out: str
    amount_in: int  # what the victim pays (exact input), or would pay now (exact output)
    amount_out: int  # what the victim would receive now
    limit: int  # amountOutMin (exact input) or amountInMax (exact output)
    price_impact_bps: float  # victim's price against the pools' mid prices, fees included
    slippage_bps: float  # the room the victim's limit leaves, relative to the quote
    pool: str  # the pool a sandwich would use ("" when none pays)
    profit_token: str
    max_profit: int  # what the optimal sandwich nets, before gas; 0: not sandwichable
    frontrun_amount_in: int
    backrun_amount_in: int  # the front-run's output, sold back after the victim
    victim_amount_out: int  # the victim's output (exact input) or input (exact output) when sandwiched


@dataclass(slots=True)
class _Hop:
    pool: V2Pool | V3Pool
    token_in: str
    token_out: str


# A pool state in the direction of one hop: V2 (reserve_in, reserve_out, fee, denominator) or V3 state.
State = tuple[int, int, int, int] | V3PoolState


def _state(hop: _Hop) -> State:
    pool = hop.pool
    if isinstance(pool, V2Pool):
        fee = pool.fee_in(hop.token_in)
        if hop.token_in == pool.token0:
            return (pool.reserve0, pool.reserve1, fee, pool.fee_denominator)
        return (pool.reserve1, pool.reserve0, fee, pool.fee_denominator)
    return pool.state


def _zero_for_one(hop: _Hop) -> bool:
    return hop.token_in == hop.pool.token0


def _after_v3(state: V3PoolState, result: tuple[int, int, int, int, int, int]) -> V3PoolState:
    # Ticks do not change on a swap: the moved state shares the sorted tick map.
    return V3PoolState(result[2], result[3], result[4], state.fee, state.tick_spacing, state.ticks)


def swap_in(hop: _Hop, state: State, amount_in: int, reverse: bool = False) -> tuple[int, State]:
    """Exact input through one hop (or back through it): (amount out, state after)."""
    if isinstance(state, tuple):
        reserve_in, reserve_out, fee, denominator = state
        if reverse:
            # The reverse direction of a V2 pair charges its fee on the other token (Camelot).
            pool = hop.pool
            assert isinstance(pool, V2Pool)
            fee = pool.fee_in(hop.token_out)
            out = get_amount_out(amount_in, reserve_out, reserve_in, fee, denominator)
            return out, (reserve_in - out, reserve_out + amount_in, state[2], denominator)
        out = get_amount_out(amount_in, reserve_in, reserve_out, fee, denominator)
        return out, (reserve_in + amount_in, reserve_out - out, fee, denominator)
    zero_for_one = _zero_for_one(hop) != reverse
    result = simulate_swap(state, zero_for_one, amount_in)
    out = -(result.amount1 if zero_for_one else result.amount0)
    return out, _after_v3(state, result)


def swap_out(hop: _Hop, state: State, amount_out: int) -> tuple[int, State]:
    """Exact output through one hop: (amount in, state after). Raises Revert where the router would."""
    if isinstance(state, tuple):
        reserve_in, reserve_out, fee, denominator = state
        needed = get_amount_in(amount_out, reserve_in, reserve_out, fee, denominator)
        return needed, (reserve_in + needed, reserve_out - amount_out, fee, denominator)
    zero_for_one = _zero_for_one(hop)
    result = simulate_swap(state, zero_for_one, -amount_out)
    received = -(result.amount1 if zero_for_one else result.amount0)
    if received != amount_out:
        raise Revert("exact output not filled")  # SwapRouter requires the full amount
    return (result.amount0 if zero_for_one else result.amount1), _after_v3(state, result)


class _Route:
    """The victim's route with one hop's state replaceable."""

    def __init__(self, hops: Sequence[_Hop], exact_in: bool, amount: int, limit: int) -> None:
        self.hops = list(hops)
        self.states = [_state(h) for h in hops]
        self.exact_in, self.amount, self.limit = exact_in, amount, limit
        self.attacks: dict[tuple[int, int], _Attack | None] = {}  # (hop, front-run) -> _attack's answer

    def run(self, index: int, state: State) -> tuple[int, State]:
        """The victim's result (out for exact input, in for exact output) with hop `index` in `state`,
        and that hop's state after the victim."""
        states = list(self.states)
        states[index] = state
        after: State = state
        if self.exact_in:
            amount = self.amount
            for i, hop in enumerate(self.hops):
                amount, moved = swap_in(hop, states[i], amount)
                if i == index:
                    after = moved
            return amount, after
        amount = self.amount
        for i in range(len(self.hops) - 1, -1, -1):
            amount, moved = swap_out(self.hops[i], states[i], amount)
            if i == index:
                after = moved
        return amount, after

    def slack(self, result: int) -> int:
        """>= 0 while the victim's limit still holds."""
        return result - self.limit if self.exact_in else self.limit - result


@dataclass(slots=True)
class _Attack:
    profit: int
    front: int
    back: int
    victim: int


def _attack(route: _Route, index: int, front: int) -> _Attack | None:
    """The sandwich with a front-run of `front` on hop `index`; None if the victim would revert.

    Remembered per route: the cap search's last exact step is the answer's attack too."""
    key = (index, front)
    if key not in route.attacks:
        route.attacks[key] = _simulate_attack(route, index, front)
    return route.attacks[key]


def _simulate_attack(route: _Route, index: int, front: int) -> _Attack | None:
    hop = route.hops[index]
    try:
        bought, moved = swap_in(hop, route.states[index], front)
        if bought <= 0:
            return None
        victim, after = route.run(index, moved)
        if route.slack(victim) < 0:
            return None
        sold, _ = swap_in(hop, after, bought, reverse=True)
    except Revert:
        return None
    return _Attack(sold - front, front, bought, victim)


def _v2_cap_guess(route: _Route, index: int) -> int | None:
    """The largest front-run the victim tolerates on a single exact-input V2 hop, in closed form.

    With g = D - f, P = D·R_in, K = D·g·v·R_out·R_in / m, the victim's output stays >= m while
    g·D·x² + (g(P + g·v) + D·P)·x + P(P + g·v) - K <= 0 (the real-valued curves).
    """
    state = route.states[index]
    if len(route.hops) != 1 or not route.exact_in or not isinstance(state, tuple) or route.limit <= 0:
        return None
    reserve_in, reserve_out, fee, denominator = state
    g, v = denominator - fee, route.amount
    p = denominator * reserve_in
    k = denominator * g * v * reserve_out * reserve_in // route.limit
    a, b, c = g * denominator, g * (p + g * v) + denominator * p, p * (p + g * v) - k
    discriminant = b * b - 4 * a * c
    if discriminant < 0:
        return None
    return max(0, (isqrt(discriminant) - b) // (2 * a))


def _largest_feasible(feasible: Callable[[int], bool], low: int, high: int) -> int:
    """The largest x in [low, high) with feasible(x), given feasible(low) and not feasible(high)."""
    while high - low > 1:
        middle = (low + high) // 2
        if feasible(middle):
            low = middle
        else:
            high = middle
    return low


def _cap(route: _Route, index: int) -> int:
    """The largest front-run on hop `index` the victim's limit tolerates (0 if none)."""

    def feasible(x: int) -> bool:
        return x == 0 or _attack(route, index, x) is not None

    guess = _v2_cap_guess(route, index)
    if guess is not None:
        # The closed form is within rounding of the answer: gallop to a bracket, then bisect.
        step = max(1, guess >> 40)
        if feasible(guess):
            low, high = guess, guess + step
            while feasible(high):
                low, high = high, high + (high - low) * 2
        else:
            high, low = guess, max(0, guess - step)
            while low and not feasible(low):
                high, low = low, max(0, low - (high - low) * 2)
        return _largest_feasible(feasible, low, high)
    walked = _v3_cap(route, index)
    return walked if walked is not None else _regula_falsi(route, index)


def _v3_cap(route: _Route, index: int) -> int | None:
    """The cap on a single V3 hop: the segment walk's real-valued answer (v3_walk), confirmed exactly.

    The guess is within float rounding of the cap; an exact step of 2^-32 of it either side settles it
    in two or three simulations (what is returned is exact: the victim tolerates it, one step more it
    does not). None when the walk cannot tell or the guess is off by more than a few steps: the caller
    falls back to regula falsi."""
    state = route.states[index]
    if len(route.hops) != 1 or not isinstance(state, V3PoolState):
        return None
    guess = cap_guess(state, _zero_for_one(route.hops[index]), route.exact_in, route.amount, route.limit)
    if guess is None:
        return None
    x = int(guess)

    def tolerated(front: int) -> bool:
        slack = _attack_slack(route, index, front)
        return slack is not None and slack >= 0

    step = max(1, x >> 32)
    if x > 0 and _attack(route, index, x) is not None:
        for _ in range(6):
            if not tolerated(x + step):
                return x
            x, step = x + step, step * 4
        return None
    for _ in range(8):
        x, step = max(0, x - step), step * 4
        if x == 0:
            return None
        if _attack(route, index, x) is not None:
            return x
    return None


def _regula_falsi(route: _Route, index: int) -> int:
    """The cap by the Illinois method on the victim's slack, bracketed by growing from the victim's size.

    A front-run too large to fill (a V3 hop runs out of range) counts as leaving the victim nothing:
    slack -limit, which keeps the interpolation going instead of bisecting down from a huge bracket.
    """
    try:
        base_result, _ = route.run(index, route.states[index])
    except Revert:
        return 0
    slack_low = route.slack(base_result)
    if slack_low < 0:
        return 0
    worst = -max(1, route.limit)

    def slack(x: int) -> int:
        value = _attack_slack(route, index, x)
        return worst if value is None else value

    low, high = 0, max(1, route.amount if route.exact_in else route.limit)
    slack_high = slack(high)
    while slack_high >= 0:
        low, slack_low = high, slack_high
        high *= 4
        if high > 1 << 200:
            return low
        slack_high = slack(high)
    side = 0
    # Pinning the cap to the last wei takes many more exact steps for nothing: stop 1e-12 below it
    # (what is returned is still an exact front-run the victim tolerates, its profit exact to the wei).
    for _ in range(200):
        if high - low <= max(1, low >> 40):
            break
        # Where the (falling) slack crosses zero, on the line between the bracket ends.
        guess = low + (high - low) * slack_low // max(1, slack_low - slack_high)
        guess = min(max(guess, low + 1), high - 1)
        value = slack(guess)
        if value < 0:
            high, slack_high = guess, value
            if side == -1:
                slack_low //= 2
            side = -1
        else:
            low, slack_low = guess, value
            if side == 1:
                slack_high //= 2
            side = 1
    if low == 0 or _attack(route, index, low) is not None:
        return low
    return _largest_feasible(lambda x: x == 0 or _attack(route, index, x) is not None, 0, low)


def _attack_slack(route: _Route, index: int, front: int) -> int | None:
    hop = route.hops[index]
    try:
        bought, moved = swap_in(hop, route.states[index], front)
        victim, _ = route.run(index, moved)
    except Revert:
        return None
    return route.slack(victim) if bought > 0 else None


def _first_true(test: Callable[[int], bool], guess: int, low: int, high: int) -> int:
    """The least x in [low, high] with test(x), for a monotone test (false, then true) with test(high); `guess`
    is near it: gallop from it to a bracket, then bisect."""
    guess = min(max(guess, low), high)
    step = 1
    if test(guess):
        top = guess
        bottom = max(low, guess - step)
        while bottom > low and test(bottom):
            top, step = bottom, step * 2
            bottom = max(low, bottom - step)
        if bottom == low and test(low):
            return low
    else:
        bottom = guess
        top = min(high, guess + step)
        while not test(top):
            bottom, step = top, step * 2
            top = min(high, top + step)
    while top - bottom > 1:  # test(bottom) false, test(top) true
        middle = (bottom + top) // 2
        if test(middle):
            top = middle
        else:
            bottom = middle
    return top


def _reduced(route: _Route, index: int) -> _Route | None:
    """Hop `index` of a multi-hop route as the equivalent single-hop problem, or None.

    A front-run on hop `index` moves that pool only: the other hops see their own states whatever it is. On
    exact input, what enters the hop is fixed and what leaves it reaches the victim through the later hops,
    a non-decreasing function G: the victim's limit holds exactly while the hop pays at least y* = min{y :
    G(y) >= limit}. On exact output, what the hop must pay out is fixed and what it takes in is bought through
    the earlier hops, non-decreasing H: the limit holds while it takes at most z* = max{z : H(z) <= limit}. So
    the single hop with the victim's amount at that hop and limit y* (or z*) tolerates exactly the same
    front-runs, each with the same profit: the single-hop closed form (V2) or segment walk (V3) applies."""
    hops, states = route.hops, route.states
    if len(hops) == 1 or [h.pool.address for h in hops].count(hops[index].pool.address) > 1:
        return None

    def forward(start: int, stop: int, amount: int) -> int:
        for i in range(start, stop):
            amount, _ = swap_in(hops[i], states[i], amount)
        return amount

    def backward(start: int, stop: int, amount: int) -> int:
        for i in range(start - 1, stop - 1, -1):
            amount, _ = swap_out(hops[i], states[i], amount)
        return amount

    try:
        if route.exact_in:
            entering = forward(0, index, route.amount)
            leaving, _ = swap_in(hops[index], states[index], entering)

            def pays(y: int) -> bool:
                try:
                    return forward(index + 1, len(hops), y) >= route.limit
                except Revert:  # nothing in, or more than a later pool can take: the victim's swap fails
                    return False

            guess = backward(len(hops), index + 1, route.limit) if route.limit > 0 else 0
            return _Route([hops[index]], True, entering, _first_true(pays, guess, 0, leaving))
        paid_out = backward(len(hops), index + 1, route.amount)
        taking, _ = swap_out(hops[index], states[index], paid_out)

        def too_dear(z: int) -> bool:
            try:
                return backward(index, 0, z) > route.limit
            except Revert:
                return True

        guess = forward(0, index, route.limit) + 1  # what the limit buys through the earlier hops, and one more
        allowed = _first_true(too_dear, guess, taking + 1, 1 << 255) - 1
        return _Route([hops[index]], False, paid_out, allowed)
    except Revert:
        return None


def _best_attack(route: _Route, index: int) -> _Attack | None:
    reduced = _reduced(route, index)
    if reduced is not None:
        single = _best_single(reduced, 0)
        if single is None:
            return None
        full = _attack(route, index, single.front)  # the victim's own result, through the whole route
        if full is not None and full.profit == single.profit:
            return full
    return _best_single(route, index)


def _best_single(route: _Route, index: int) -> _Attack | None:
    # Profit is concave in x and 0 at x = 0: if a small front-run already loses (the pool's fees
    # outweigh what the victim moves), so does every larger one, and the cap need not be searched.
    probe = _attack(route, index, max(1, route.amount >> 12))
    if probe is not None and probe.profit <= 0:
        return None
    cap = _cap(route, index)
    if cap <= 0:
        return None
    best = _attack(route, index, cap)
    if best is None:
        return None
    below = _attack(route, index, cap - max(1, cap >> 16))
    if below is None or below.profit <= best.profit:
        return best if best.profit > 0 else None
    # Profit falls before the cap. It is concave in x (and 0 at x = 0): if a small front-run
    # already loses, every larger one does (the pool's fees outweigh what the victim moves).
    small = _attack(route, index, max(1, cap >> 12))
    if small is None or small.profit <= 0:
        return None
    return _golden_top(route, index, cap, best)


def _golden_top(route: _Route, index: int, cap: int, fallback: _Attack) -> _Attack | None:
    """Golden-section search of the profit's top in (0, cap), one new exact evaluation per step.

    It stops at a width of 1e-6 of the cap: the profit is flat at its top (a front-run off by 1e-6
    of the cap loses about 1e-12 of the profit), and the answer is still an exact, executable
    front-run whose profit is exact to the wei.
    """

    def profit(x: int) -> tuple[int, _Attack | None]:
        attack = _attack(route, index, x) if x > 0 else None
        return (attack.profit if attack else -(1 << 256)), attack

    low, high = 0, cap
    left, right = high - int((high - low) * _GOLDEN), low + int((high - low) * _GOLDEN)
    left_value, right_value = profit(left), profit(right)
    tolerance = max(2, cap // 1_000_000)
    while high - low > tolerance and left < right:
        if left_value[0] < right_value[0]:
            low, left, left_value = left, right, right_value
            right = low + int((high - low) * _GOLDEN)
            right_value = profit(right)
        else:
            high, right, right_value = right, left, left_value
            left = high - int((high - low) * _GOLDEN)
            left_value = profit(left)
    best = max((left_value, right_value), key=lambda v: v[0])[1] or fallback
    return best if best.profit > 0 else None


def _mid_price(hop: _Hop, state: State) -> float:
    """token_out per token_in at the pool's current price, fee excluded."""
    if isinstance(state, tuple):
        return state[1] / state[0]
    price = (state.sqrt_price_x96 / Q96) ** 2  # token1 per token0
    return price if _zero_for_one(hop) else 1.0 / price


class PoolIndex:
    """Pools of a store by token pair (and fee for V3), for the routers' routes."""

    def __init__(self, store: PoolStore, v2_fork: str = "uniswap_v2", v3_fork: str = "uniswap_v3") -> None:
        self.v2: dict[frozenset[str], V2Pool] = {}
        self.v3: dict[tuple[frozenset[str], int], V3Pool] = {}
        for pool in store.pools.values():
            if isinstance(pool, V2Pool) and pool.fork == v2_fork:
                self.v2[frozenset(pool.tokens)] = pool
            elif isinstance(pool, V3Pool) and pool.fork == v3_fork:
                self.v3[(frozenset(pool.tokens), pool.state.fee)] = pool

    def hops(self, swap: PendingSwap) -> list[_Hop] | None:
        hops = []
        path = [t.lower() for t in swap.path]
        for i in range(len(path) - 1):
            pair = frozenset((path[i], path[i + 1]))
            pool = self.v2.get(pair) if swap.fees is None else self.v3.get((pair, swap.fees[i]))
            if pool is None:
                return None
            hops.append(_Hop(pool, path[i], path[i + 1]))
        return hops or None


def score_swap(index: PoolIndex, swap: PendingSwap) -> SandwichRisk | None:
    """The sandwich exposure of one pending swap; None when its route is not in the store or it would revert."""
    hops = index.hops(swap)
    if hops is None:
        return None
    return score_route(hops, swap.exact_in, swap.amount, swap.limit)


def score_route(hops: Sequence[_Hop], exact_in: bool, amount: int, limit: int) -> SandwichRisk | None:
    route = _Route(hops, exact_in, amount, limit)
    try:
        quote, _ = route.run(0, route.states[0])
    except Revert:
        return None
    if route.slack(quote) < 0:
        return None  # reverts as it stands: nothing to take
    amount_in, amount_out = (amount, quote) if exact_in else (quote, amount)
    mid = math.prod(_mid_price(h, s) for h, s in zip(route.hops, route.states, strict=True))
    impact = (1.0 - amount_out / (amount_in * mid)) * 10_000 if amount_in and mid else 0.0
    slippage = (quote - limit) / quote * 10_000 if exact_in else (limit - quote) / quote * 10_000
    best: tuple[int, _Attack] | None = None
    for i in range(len(hops)):
        attack = _best_attack(route, i)
        # Profits in different tokens are not comparable without prices: the first hop that pays
        # sets the token (usually what the victim pays in); later hops replace it only in that token.
        if attack is None:
            continue
        if best is None or (hops[i].token_in == hops[best[0]].token_in and attack.profit > best[1].profit):
            best = (i, attack)
    if best is None:
        return SandwichRisk(
            token_in=hops[0].token_in,
            token_out=hops[-1].token_out,
            amount_in=amount_in,
            amount_out=amount_out,
            limit=limit,
            price_impact_bps=impact,
            slippage_bps=slippage,
            pool="",
            profit_token="",
            max_profit=0,
            frontrun_amount_in=0,
            backrun_amount_in=0,
            victim_amount_out=quote,
        )
    i, attack = best
    return SandwichRisk(
        token_in=hops[0].token_in,
        token_out=hops[-1].token_out,
        amount_in=amount_in,
        amount_out=amount_out,
        limit=limit,
        price_impact_bps=impact,
        slippage_bps=slippage,
        pool=hops[i].pool.address,
        profit_token=hops[i].token_in,
        max_profit=attack.profit,
        frontrun_amount_in=attack.front,
        backrun_amount_in=attack.back,
        victim_amount_out=attack.victim,
    )


def route_hops(store: PoolStore, route: Sequence[tuple[str, str, str]]) -> list[_Hop] | None:
    """(pool address, token in, token out) per hop, resolved in the store; None if a pool is missing."""
    hops = []
    for address, token_in, token_out in route:
        pool = store.pools.get(address.lower())
        if pool is None:
            return None
        hops.append(_Hop(pool, token_in.lower(), token_out.lower()))
    return hops
