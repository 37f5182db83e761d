"""How much to put into a cyclic arbitrage so that out - in is largest, in exact integers.

A cycle is a sequence of hops where each hop's output token is the next hop's input token and the
last hop pays out the token the first hop takes in. The caller builds the hops with reserves (or
pool state) oriented in the direction of travel.

All-V2 cycles use the closed form (every V2 hop is a Möbius map x ↦ a·x / (b + c·x), and so is
their composition, its "virtual reserves"), then search the integers around it.
The real-valued composition is an upper bound on the on-chain integer chain (each hop only loses
to floor division), so every input whose real profit is below the best integer profit found can
be ruled out; what is left is an interval, scanned exhaustively when it is small enough, which
makes the answer the proven integer argmax. When it is too wide to scan (deep pools: floor noise
of a few wei over a flat optimum billions of wei wide) the neighbourhood of the real optimum is
scanned and the result says how much profit could at most be missing.

Cycles with a V3 hop have no closed form: profit is still concave in the input (a composition of
concave increasing segments), so a Fibonacci search (golden-section on integers, one new
evaluation per step) over exact simulate_swap brackets the optimum, and two exact refinements
polish it (see search_cycle). That answer is not proven optimal: ArbResult.gap_bound is None.
"""

from collections.abc import Callable, Sequence
from math import gcd, isqrt
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from mevagent.amm.errors import Revert
from mevagent.amm.v2 import BPS, get_amount_out
from mevagent.amm.v3.pool import V3PoolState, simulate_swap

_INT256_MAX = (1 << 255) - 1
# Profit of an input the chain cannot take (a V3 hop would stop at its price limit, or a contract
# would revert): below any real profit, so searches treat it as minus infinity.
_INFEASIBLE = -(1 << 600)
# Inputs checked on each side of the real optimum when the proof's interval is too wide to scan.
_NEIGHBOURHOOD = 16
# Output stairs compared on each side of an unproven answer (see _best_stair).
_REFINE_STEPS = 4


class V2Hop(NamedTuple):
    """A constant-product pool, reserves oriented in the direction of travel."""

    reserve_in: int
    reserve_out: int
    fee: int = 30
    fee_denominator: int = BPS


class V3Hop(NamedTuple):
    pool: V3PoolState
    zero_for_one: bool
    # Where the swap must stop (None: the pool's own limit). A pool known only within a tick range (the
    # cross-chain engine's published window) is quoted up to its edge: an input the pool could only take
    # by going past it is infeasible, as one running into any price limit is.
    sqrt_price_limit_x96: int | None = None


class BookHop(NamedTuple):
    """An exchange's order book side walked at taker prices (the cross-chain engine's CEX venue), exact.

    `levels` are best first, each (base units resting, price numerator): the price is `numerator /
    price_denominator` quote base units per base base unit. `sell`: base in, quote out (the bids); else quote
    in, base out (the asks). Only whole multiples of `step` base units trade (the market's amount step): a sale
    keeps the remainder of its input unsold (valued at nothing here), a purchase rounds the base bought down (the
    quote left over is counted as spent). The taker fee is `fee_num / fee_den` of what is received, rounded
    up against us. An input deeper than the levels is infeasible: the book is never extrapolated.
    """

    levels: tuple[tuple[int, int], ...]
    price_denominator: int
    sell: bool
    step: int = 1
    fee_num: int = 0
    fee_den: int = 1


def book_out(hop: BookHop, amount_in: int) -> int | None:
    """What walking the book with `amount_in` pays after the taker fee; None past its depth."""
    if hop.sell:
        rest = amount_in - amount_in % hop.step
        paid = 0  # quote base units times price_denominator
        for amount, price in hop.levels:
            take = min(rest, amount)
            paid += take * price
            rest -= take
            if rest == 0:
                break
        if rest:
            return None
        gross, scale = paid, hop.price_denominator
    else:
        rest = amount_in * hop.price_denominator  # quote base units scaled like the prices
        bought = 0
        for amount, price in hop.levels:
            whole = amount * price
            if rest >= whole:
                bought, rest = bought + amount, rest - whole
                continue
            bought += rest // price
            rest = 0
            break
        if rest:
            return None
        gross, scale = bought - bought % hop.step, 1
    # received = gross / scale * (1 - fee), rounded down (the fee rounded up)
    return gross * (hop.fee_den - hop.fee_num) // (scale * hop.fee_den)


def book_cost(hop: BookHop, base: int) -> int | None:
    """The least quote input that buys `base` base units on an ask side (before the step and the fee: ask for a
    whole number of steps); None past its depth."""
    assert not hop.sell
    rest, cost = base, 0
    for amount, price in hop.levels:
        take = min(rest, amount)
        cost, rest = cost + take * price, rest - take
        if rest == 0:
            return -(-cost // hop.price_denominator)
    return None


Hop = V2Hop | V3Hop | BookHop


class ArbResult(BaseModel):
    """A sized cycle, ready for the strategy to price gas and the bribe against."""

    model_config = ConfigDict(frozen=True)

    amount_in: int
    amount_out: int
    profit: int
    # The amount entering each hop, then the cycle's output: len(hops) + 1 entries.
    hop_amounts: tuple[int, ...]
    # An upper bound, in wei of the input token, on the profit a better integer input could add:
    # 0 means amount_in is the proven integer argmax; None means no bound is known (V3 cycles).
    gap_bound: int | None


def hop_out(hop: Hop, amount_in: int) -> int | None:
    """Exact output of one hop, or None where the swap would revert or fill only partly."""
    if amount_in <= 0:
        return 0
    if isinstance(hop, V2Hop):
        try:
            return get_amount_out(amount_in, hop.reserve_in, hop.reserve_out, hop.fee, hop.fee_denominator)
        except Revert:
            return None
    if isinstance(hop, BookHop):
        return book_out(hop, amount_in)
    if amount_in > _INT256_MAX:
        return None
    try:
        result = simulate_swap(hop.pool, hop.zero_for_one, amount_in, hop.sqrt_price_limit_x96)
    except Revert:
        return None
    if hop.zero_for_one:
        taken, paid = result.amount0, -result.amount1
    else:
        taken, paid = result.amount1, -result.amount0
    # The pool keeps the unswapped remainder of an input that runs into the price limit, so that
    # input is not what the cycle pays: treat it as infeasible rather than as a worse trade.
    return paid if taken == amount_in else None


def cycle_amounts(hops: Sequence[Hop], amount_in: int) -> list[int] | None:
    """Amounts through the cycle for `amount_in`: input, then each hop's output; None if infeasible."""
    amounts = [amount_in]
    amount = amount_in
    for hop in hops:
        out = hop_out(hop, amount)
        if out is None:
            return None
        amounts.append(out)
        amount = out
    return amounts


def _profit_function(hops: Sequence[Hop]) -> Callable[[int], int]:
    cache: dict[int, int] = {}

    def profit(amount_in: int) -> int:
        value = cache.get(amount_in)
        if value is None:
            amounts = cycle_amounts(hops, amount_in)
            value = _INFEASIBLE if amounts is None else amounts[-1] - amount_in
            cache[amount_in] = value
        return value

    return profit


def _best_in(profit: Callable[[int], int], lo: int, hi: int) -> tuple[int, int]:
    """(input, profit) maximizing profit over [lo, hi]; the smallest input wins ties."""
    best_x, best_p = lo, profit(lo)
    for x in range(lo + 1, hi + 1):
        p = profit(x)
        if p > best_p:
            best_x, best_p = x, p
    return best_x, best_p


def _result(hops: Sequence[Hop], amount_in: int, gap_bound: int | None) -> ArbResult:
    amounts = cycle_amounts(hops, amount_in)
    assert amounts is not None  # amount_in was chosen among feasible inputs
    return result_of(amounts, gap_bound)


def result_of(amounts: Sequence[int], gap_bound: int | None) -> ArbResult:
    """The ArbResult of a cycle's amounts (input, then each hop's output) as cycle_amounts gives them."""
    return ArbResult(
        amount_in=amounts[0],
        amount_out=amounts[-1],
        profit=amounts[-1] - amounts[0],
        hop_amounts=tuple(amounts),
        gap_bound=gap_bound,
    )


def _changed(profit: Callable[[int], int], x: int, output: int) -> bool:
    """Whether input x no longer pays `output`: it pays more, or the cycle cannot take it."""
    value = profit(x)
    return value == _INFEASIBLE or value + x != output


def _step_start(profit: Callable[[int], int], x: int) -> int:
    """The smallest input that pays the same cycle output as x.

    The output is a non-decreasing staircase in the input (every hop rounds down), and inside one
    stair the profit falls by a wei per wei: the stair's first input is the only candidate there.
    """
    output = profit(x) + x
    same, width = x, 1
    while True:  # gallop left to a lower stair (or to zero input, which pays nothing)
        probe = x - width
        if probe < 1 or _changed(profit, probe, output):
            lower = max(probe, 0)
            break
        same, width = probe, width * 2
    while same - lower > 1:
        middle = (lower + same) // 2
        if _changed(profit, middle, output):
            lower = middle
        else:
            same = middle
    return same


def _next_step_start(profit: Callable[[int], int], x: int, hi: int) -> int | None:
    """The first input above x that pays more than x does, if a feasible one exists up to hi."""
    output = profit(x) + x
    same, width = x, 1
    while True:  # gallop right until the output changes
        probe = min(x + width, hi)
        if _changed(profit, probe, output):
            changed = probe
            break
        if probe == hi:
            return None
        same, width = probe, width * 2
    while changed - same > 1:
        middle = (same + changed) // 2
        if _changed(profit, middle, output):
            changed = middle
        else:
            same = middle
    return None if profit(changed) == _INFEASIBLE else changed


def _best_stair(profit: Callable[[int], int], x: int, hi: int, steps: int) -> tuple[int, int]:
    """Best (input, profit) among the first inputs of x's stair and `steps` stairs either side."""
    start = _step_start(profit, x)
    candidates = [start]
    left = start
    for _ in range(steps):
        if left <= 1:
            break
        left = _step_start(profit, left - 1)
        candidates.append(left)
    right: int | None = start
    for _ in range(steps):
        right = _next_step_start(profit, right, hi)
        if right is None:
            break
        candidates.append(right)
    # Highest profit first, then the smallest input.
    best_p, negated_x = max((profit(candidate), -candidate) for candidate in candidates)
    return -negated_x, best_p


def size_v2_cycle(hops: Sequence[V2Hop], *, max_scan: int = 4096) -> ArbResult | None:
    """The integer input maximizing profit around a cycle of V2 pools; None if nothing is profitable.

    The answer is the proven integer argmax (gap_bound 0) when the interval that can still hold the
    optimum has at most `max_scan` integers; otherwise only the real optimum's neighbourhood is
    checked and gap_bound says how much profit that can at most leave behind.
    """
    if not hops:
        raise ValueError("a cycle needs at least one hop")
    # Compose out(x) = a·x / (b + c·x), hop by hop, over the integers.
    a, b, c = 1, 1, 0
    for hop in hops:
        kept = hop.fee_denominator - hop.fee
        scaled_reserve_in = hop.fee_denominator * hop.reserve_in
        a, b, c = kept * hop.reserve_out * a, scaled_reserve_in * b, scaled_reserve_in * c + kept * a
        common = gcd(gcd(a, b), c)
        a, b, c = a // common, b // common, c // common
    if a <= b:
        # The marginal rate at zero input is a/b: at or below 1 no input earns anything, even before
        # floor division takes its share.
        return None

    profit = _profit_function(hops)
    # The real optimum solves b + c·x = sqrt(a·b); x0 is within one wei of it.
    root = isqrt(a * b)
    x0 = max(1, (root - b) // c)
    best_x, best_p = _best_in(profit, max(1, x0 - 2), x0 + 2)

    # Inputs whose *real* profit reaches `floor_p` solve c·x² + (b + c·P - a)·x + b·P <= 0: the
    # integer optimum (which is at least max(best_p, 1) if anything is profitable) lies in there.
    floor_p = max(best_p, 1)
    linear = b + c * floor_p - a
    discriminant = linear * linear - 4 * c * b * floor_p
    if discriminant < 0:
        return None
    spread = isqrt(discriminant)
    lo = max(1, (-linear - spread - 1) // (2 * c))
    hi = -((linear - spread - 1) // (2 * c))
    if hi - lo + 1 <= max_scan:
        best_x, best_p = _best_in(profit, lo, hi)
        gap_bound = 0
    else:
        # Scanning more of an interval that cannot be covered buys next to nothing (the bound
        # below is already a few wei), so only the immediate neighbourhood is checked.
        candidate_x, candidate_p = _best_in(profit, max(1, x0 - _NEIGHBOURHOOD), x0 + _NEIGHBOURHOOD)
        if candidate_p > best_p:
            best_x, best_p = candidate_x, candidate_p
        # With a coarse token in the cycle the output moves in stairs far wider than that: settle
        # on the best stair nearby, entered at its first input.
        stair_x, stair_p = _best_stair(profit, best_x, hi, _REFINE_STEPS)
        if stair_p > best_p or (stair_p == best_p and stair_x < best_x):
            best_x, best_p = stair_x, stair_p
        # The real maximum is (√a - √b)² / c <= (a + b - 2·isqrt(a·b)) / c.
        gap_bound = -(-(a + b - 2 * root) // c) - best_p
    if best_p <= 0:
        return None
    return _result(hops, best_x, gap_bound)


def _max_cycle_output(hops: Sequence[Hop]) -> int:
    """An upper bound on what the last hop can ever pay out, so on any profitable input."""
    last = hops[-1]
    if isinstance(last, V2Hop):
        return last.reserve_out
    if isinstance(last, BookHop):  # the whole book's depth on that side, fee not taken: an upper bound
        if last.sell:
            return -(-sum(a * p for a, p in last.levels) // last.price_denominator)
        return sum(a for a, _ in last.levels)
    try:
        # Asking for more than the pool holds runs the swap to its price limit: that is all it has.
        drained = simulate_swap(last.pool, last.zero_for_one, -_INT256_MAX, last.sqrt_price_limit_x96)
    except Revert:
        return 0
    return -(drained.amount1 if last.zero_for_one else drained.amount0)


def _fibonacci_search(profit: Callable[[int], int], lo: int, hi: int) -> int:
    """Golden-section search on the integers: an input near the maximum of a concave `profit`."""
    fib = [0, 1]
    while fib[-1] < hi - lo:
        fib.append(fib[-1] + fib[-2])
    k = len(fib) - 1
    # The bracket is [start, start + fib[k]], which may run past hi: those inputs count as
    # infeasible, which keeps the function unimodal.
    start = lo

    def value(x: int) -> int:
        return profit(x) if x <= hi else _INFEASIBLE

    x1, x2 = start + fib[max(k - 2, 0)], start + fib[max(k - 1, 0)]
    f1, f2 = value(x1), value(x2)
    while k > 3:
        if f1 < f2:
            start = x1
            x1, f1 = x2, f2
            k -= 1
            x2 = start + fib[k - 1]
            f2 = value(x2)
        else:
            x2, f2 = x1, f1
            k -= 1
            x1 = start + fib[k - 2]
            f1 = value(x1)
    best_x, _ = _best_in(value, start, min(start + fib[k], hi))
    return best_x


def search_cycle(
    hops: Sequence[Hop], *, max_amount_in: int | None = None, refine_radius: int = 64, refine_steps: int = _REFINE_STEPS
) -> ArbResult | None:
    """Concavity search for any mix of V2 and V3 hops; None if nothing is profitable.

    `max_amount_in` caps the input (inventory or flash-loan size); without it the search is bounded
    by what the last hop can pay out at most. The Fibonacci search brackets the optimum of the
    concave envelope; exact refinements then absorb most of what rounding does to it, not all: on a wide
    plateau the answer can stay a few wei below the integer optimum (not proven: gap_bound None). `refine_radius`
    inputs on each side are evaluated, for floor noise of a few wei near a flat optimum; and the
    first inputs of `refine_steps` output stairs on each side are compared, for coarse tokens (one
    unit of a 6-decimal token is worth ~10^8 wei of an 18-decimal one), where the output only moves
    in stairs far wider than any scan and the search can settle on a neighbouring stair.
    """
    if not hops:
        raise ValueError("a cycle needs at least one hop")
    hi = _max_cycle_output(hops)
    if max_amount_in is not None:
        hi = min(hi, max_amount_in)
    if hi < 1:
        return None
    profit = _profit_function(hops)
    center = _fibonacci_search(profit, 1, hi)
    best_x, best_p = _best_in(profit, max(1, center - refine_radius), min(hi, center + refine_radius))
    if best_p != _INFEASIBLE:
        stair_x, stair_p = _best_stair(profit, best_x, hi, refine_steps)
        if stair_p > best_p or (stair_p == best_p and stair_x < best_x):
            best_x, best_p = stair_x, stair_p
        edge_x, edge_p = _best_at_edge(profit, best_x, hi, refine_radius)
        if edge_p > best_p:
            best_x, best_p = edge_x, edge_p
    if best_p <= 0:
        return None
    return _result(hops, best_x, None)


def _best_at_edge(profit: Callable[[int], int], feasible: int, hi: int, radius: int) -> tuple[int, int]:
    """Best (input, profit) within `radius` below the largest input the cycle can take, if it competes.

    Where a pool runs out of liquidity (or `hi` caps the input) the profit may still be rising: the
    optimum then sits at that edge. Rounding at a tick crossing can leave a dip of a few wei on the
    way, which a concavity search takes for the top (it stops short of a thin range crossed at a
    loss). The edge is found by bisection between a feasible input and `hi`; its neighbourhood is
    scanned only when the edge itself pays at least as much as the answer so far.
    """
    best = (feasible, profit(feasible))
    edge = hi
    if profit(hi) == _INFEASIBLE:
        low, high = feasible, hi
        while high - low > 1:
            middle = (low + high) // 2
            if profit(middle) == _INFEASIBLE:
                high = middle
            else:
                low = middle
        edge = low
    if edge - feasible <= radius or profit(edge) < best[1]:
        return best
    return _best_in(profit, edge - radius, edge)


def size_cycle(hops: Sequence[Hop]) -> ArbResult | None:
    """Size any cycle: the closed form when every hop is V2, the concavity search otherwise."""
    v2_hops = [hop for hop in hops if isinstance(hop, V2Hop)]
    if len(v2_hops) == len(hops):
        return size_v2_cycle(v2_hops)
    return search_cycle(hops)
