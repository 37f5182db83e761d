"""DEX-DEX arbitrage over 2- and 3-hop cycles that start and end in a base token.

The token graph of the pool store is enumerated once into cycles (each new pool adds only the
cycles through it), and every pool knows the cycles it is part of, so a batch of pool updates
re-evaluates only the union of their cycles. Each of those first passes a pre-filter that costs a
few float multiplications: the product of the hops' marginal rates at zero input, fees included.
Every hop's output is concave in its input (V2 by its formula, V3 because the price only moves
against the taker), so out(x) <= m·x for the cycle's product m, and no input earns more than
(m - 1) per unit: a cycle with m <= 1 + min_profit_bps cannot clear the threshold and is dropped
without touching an integer. A survivor then gets a second bound, still in floats: each hop is
replaced by a constant-product pool that pays at least as much for any input (a V2 pool is one; a
V3 pool is dominated by a constant-product pool at its current price with the largest liquidity
it would meet in that direction, since more liquidity only moves the price less), and the
composition's real maximum profit must cover gas at the current base fee, the
builder's share and min_profit_threshold. Only cycles that pass both are sized exactly (closed form
for all-V2; with a V3 hop, the segment walk of amm/segments.py: the closed form per stretch of
constant liquidity, whose real optimum must again cover the costs before one exact simulation runs at
it), re-simulated hop by hop with the contracts' integer math, priced and filtered. A hub pool's
hundreds of cycles go through the pre-filter and the bound as numpy vectors (_VECTOR_MIN).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Self, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mevagent import core
from mevagent.amm.arbitrage import ArbResult, V2Hop, V3Hop, search_cycle, size_v2_cycle
from mevagent.amm.errors import Revert
from mevagent.amm.segments import SegmentLimit, exact_at, real_optimum
from mevagent.amm.v2 import get_amount_out
from mevagent.amm.v3.pool import V3PoolState, simulate_swap
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.pricing import Address, Pricer
from mevagent.state.pools import Pool, PoolStore, V2Pool
from mevagent.strategies import builder_payment as payment_of

_BPS = 10_000
_Q96 = float(1 << 96)
# Float rounding in the rate product is ~1e-15 relative; the margin keeps a cycle sitting exactly
# on the threshold from being dropped by it (the exact sizing decides those).
_RATE_MARGIN = 1e-9
# The same for the profit bound and the input bound, upwards.
_BOUND_MARGIN = 1.0 + 1e-6
# A pool in at least this many cycles (a hub) has its cycles pre-filtered and bounded as numpy vectors:
# a Python loop over hundreds of scattered tuples and floats costs ~300 us when they are not in the CPU
# cache (they never are: the next update is another pool), the vectors ~20 us. Below it numpy's
# per-call overhead costs more than the loop.
_VECTOR_MIN = 48
# The bound's arithmetic is written once for a cycle's floats and for a hub's vectors.
_F = TypeVar("_F", float, np.ndarray)


class DexArbConfig(BaseModel):
    """The strategy's settings for one chain (validated before the strategy is built)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_tokens: tuple[Address, ...] = Field(min_length=1)
    max_hops: Literal[2, 3] = 3
    # Net profit (after gas and the builder's share) relative to the input, and in USD.
    min_profit_bps: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    min_profit_threshold: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    # Share of the gross profit paid to the builder (coinbase transfer), in basis points.
    builder_share_bps: int = Field(default=0, ge=0, le=_BPS)
    priority_fee_wei: int = Field(default=0, ge=0)
    # Gas the arbitrage transaction is given, by number of hops.
    gas_limits: dict[int, int] = Field(default_factory=lambda: {2: 250_000, 3: 350_000})
    # Integers the V2 closed form may scan to prove its argmax; above it, the neighbourhood is checked.
    v2_max_scan: int = Field(default=256, ge=1)
    # Inputs checked on each side of the V3 concavity search's answer (floor noise near a flat optimum).
    v3_refine_radius: int = Field(default=8, ge=0)
    # Output stairs compared on each side of it (coarse tokens): each costs a gallop of simulations.
    v3_refine_steps: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _gas_for_every_length(self) -> Self:
        missing = [hops for hops in range(2, self.max_hops + 1) if self.gas_limits.get(hops, 0) <= 0]
        if missing:
            raise ValueError(f"gas_limits needs a positive gas limit for {missing} hops")
        if len(set(self.base_tokens)) != len(self.base_tokens):
            raise ValueError("base_tokens lists a token twice")
        return self


@dataclass(frozen=True, slots=True)
class Cycle:
    pools: tuple[int, ...]  # pool indices, in the order of travel
    tokens_in: tuple[str, ...]  # the token entering each hop; tokens_in[0] is the base token
    hops: tuple[core.Hop, ...]
    slots: tuple[int, ...]  # rate slot of each hop
    padded: tuple[int, int, int]  # the same, a 2-hop cycle ending in slot 0 (the identity hop)
    cost_key: int  # index of (base token, length) in the per-update cost vectors


@dataclass(slots=True)
class DexArbStats:
    """Counters of the hot path, for metrics and the benchmark."""

    updates: int = 0
    cycles_checked: int = 0  # pre-filter evaluations
    cycles_bounded: int = 0  # survivors of the rate pre-filter, given the profit bound
    cycles_sized: int = 0  # survivors of both, sized exactly
    unprofitable: int = 0  # sized, but nothing cleared the minimum profit
    verify_mismatches: int = 0  # the re-simulation disagreed with the sizing: never emitted
    searched: int = 0  # V3 cycles whose segment walk did not converge: sized by the concavity search
    unpriced: int = 0  # a token or gas could not be valued in USD right now
    found: int = 0


def _other(pool: Pool, token: str) -> str:
    return pool.token1 if token == pool.token0 else pool.token0


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def resimulate(pools: Sequence[Pool], tokens_in: Sequence[str], amount_in: int) -> list[int] | None:
    """Amounts through the cycle as the contracts compute them, hop by hop; None if a hop reverts.

    Independent of the sizing code on purpose: it is the check that what is emitted is what the
    chain pays. A V3 hop that would stop at its price limit with input left over is refused.
    """
    amounts = [amount_in]
    amount = amount_in
    try:
        for pool, token_in in zip(pools, tokens_in, strict=True):
            if isinstance(pool, V2Pool):
                if token_in == pool.token0:
                    reserve_in, reserve_out = pool.reserve0, pool.reserve1
                else:
                    reserve_in, reserve_out = pool.reserve1, pool.reserve0
                if not pool.quotable:  # a stable Camelot pair: x·y is not what it pays
                    return None
                fee = pool.fee_in(token_in)  # charged on the input token: per direction on Camelot
                amount = get_amount_out(amount, reserve_in, reserve_out, fee, pool.fee_denominator)
                if amount <= 0:  # UniswapV2Pair: INSUFFICIENT_OUTPUT_AMOUNT
                    return None
            else:
                zero_for_one = token_in == pool.token0
                result = simulate_swap(pool.state, zero_for_one, amount)
                taken, paid = (result.amount0, -result.amount1) if zero_for_one else (result.amount1, -result.amount0)
                if taken != amount:
                    return None
                amount = paid
            amounts.append(amount)
    except Revert:
        return None
    return amounts


def _grown(vector: np.ndarray, length: int, fill: float) -> np.ndarray:
    """`vector` with room for at least `length` rows (doubling, so adding pools stays linear)."""
    capacity = len(vector)
    while capacity < length:
        capacity *= 2
    grown = np.full((capacity, *vector.shape[1:]), fill, dtype=vector.dtype)
    grown[: len(vector)] = vector
    return grown


def _composed(g0: _F, g1: _F, g2: _F, h0: _F, h1: _F, h2: _F) -> tuple[_F, _F]:
    """(a, c) of three hops x -> g·x / (1 + h·x) composed into out(x) = a·x / (1 + c·x).

    Every hop is a constant-product pool in this normalised form (g = kept·R_out/R_in is its marginal
    rate at zero input, h = kept/R_in), and so is their composition : its real
    maximum of out(x) - x is (√a - 1)² / c at x = (√a - 1) / c, and out(x) > x only below (a - 1) / c.
    """
    return g0 * g1 * g2, h0 + g0 * (h1 + g1 * h2)


def _optimum(a: _F, k: _F) -> tuple[_F, _F]:
    """(most profit, largest profitable input) of out(x) = a·x / (1 + k·x), for a > 1 and k > 0."""
    gap = a**0.5 - 1.0
    return gap * gap / k, (a - 1.0) / k


@dataclass(frozen=True, slots=True)
class _Costs:
    """What a unit of gross profit is worth and what gas costs, per cost key, as lists and vectors."""

    unit: list[float]
    gas: list[float]
    unit_v: np.ndarray
    gas_v: np.ndarray


def _max_liquidity(state: V3PoolState) -> tuple[float, float]:
    """The largest liquidity a swap from the current price can meet going down, and going up."""
    ticks = state.ticks
    split = ticks.bisect_right(state.tick)
    keys = ticks.keys()
    liquidity = best_below = state.liquidity
    for index in range(split - 1, -1, -1):  # zeroForOne crosses these downwards: L -= liquidityNet
        liquidity -= ticks[keys[index]]
        best_below = max(best_below, liquidity)
    liquidity = best_above = state.liquidity
    for index in range(split, len(keys)):
        liquidity += ticks[keys[index]]
        best_above = max(best_above, liquidity)
    return float(best_below), float(best_above)


class DexArbStrategy:
    """core.Strategy: cyclic arbitrage across the V2/V3 pools of one chain's pool store."""

    name = "dex_arb"

    def __init__(self, store: PoolStore, config: DexArbConfig, pricer: Pricer) -> None:
        unpriced = [token for token in (*config.base_tokens, pricer.native_token) if not pricer.can_price(token)]
        if unpriced:
            raise ValueError(f"pricing: no price configured for base/native token(s) {sorted(set(unpriced))}")
        self.store = store
        self.config = config
        self.pricer = pricer
        self.stats = DexArbStats()
        self._bases = frozenset(config.base_tokens)
        self._base_fee = 0
        # Only cycles whose best case clears min_profit_bps are sized.
        self._min_rate = (1.0 + config.min_profit_bps / _BPS) * (1.0 - _RATE_MARGIN)
        self._pool_index: dict[str, int] = {}
        self._pools: list[Pool] = []
        self._by_pair: dict[tuple[str, str], list[int]] = {}
        self._by_token: dict[str, list[int]] = {}
        # Marginal rate of each pool and direction, fees included: slot 0 is a constant 1.0 so a
        # 2-hop cycle can use the same three-factor product as a 3-hop one; pool k's token0->token1
        # rate is at 1 + 2k, token1->token0 at 2 + 2k.
        self._rates: list[float] = [1.0]
        # Per rate slot, h = kept / R_in of the dominating constant-product hop (its g is the rate;
        # see _composed). Slot 0 is the identity: g 1, h 0.
        self._h: list[float] = [0.0]
        # The same rates and h as contiguous vectors, and per cycle its padded slots and cost key,
        # for the pools that take the vector path (_VECTOR_MIN); grown by doubling.
        self._rates_v = np.ones(64)
        self._h_v = np.zeros(64)
        self._cycle_slots_v = np.zeros((64, 3), dtype=np.intp)
        self._cycle_cost_v = np.zeros(64, dtype=np.intp)
        # Per hub rate slot: (entries when built, cycle indices, other slot, other slot), rebuilt
        # when cycles were added through it.
        self._slot_vectors: dict[int, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._base_index = {base: i for i, base in enumerate(config.base_tokens)}
        self.cycles: list[Cycle] = []
        # Per rate slot: (cycle index, other rate slot, other rate slot) of every cycle through it,
        # so an update multiplies only the other hops' rates against threshold / own rate.
        self._slot_cycles: list[list[tuple[int, int, int]]] = [[]]
        for address in store.pools:
            self.add_pool(address)

    # -- the token graph -------------------------------------------------------------------------

    def add_pool(self, address: str) -> int:
        """Index a pool of the store and every cycle through it; returns how many cycles it added."""
        if address in self._pool_index:
            return 0
        pool = self.store.pools[address]
        index = len(self._pools)
        self._pool_index[address] = index
        self._pools.append(pool)
        self._slot_cycles.extend(([], []))
        for slots in (self._rates, self._h):
            slots.extend((0.0, 0.0))
        if len(self._rates) > len(self._rates_v):
            self._rates_v = _grown(self._rates_v, len(self._rates), 1.0)
            self._h_v = _grown(self._h_v, len(self._rates), 0.0)
        self._refresh_rates(index)
        self._by_pair.setdefault(_pair(pool.token0, pool.token1), []).append(index)
        self._by_token.setdefault(pool.token0, []).append(index)
        self._by_token.setdefault(pool.token1, []).append(index)
        # Only pools indexed so far are seen, so every cycle is added once: with its last pool.
        before = len(self.cycles)
        for base in self.config.base_tokens:
            for pools in self._cycles_through(index, base):
                self._add_cycle(base, pools)
        return len(self.cycles) - before

    def _cycles_through(self, p: int, base: str) -> list[tuple[int, ...]]:
        pool = self._pools[p]
        found: list[tuple[int, ...]] = []
        if base in pool.tokens:
            x = _other(pool, base)
            for q in self._by_pair.get(_pair(base, x), ()):
                if q != p:
                    found += [(p, q), (q, p)]
            if self.config.max_hops == 3:
                for q in self._by_token.get(x, ()):
                    y = _other(self._pools[q], x)
                    if q == p or y in (base, x):
                        continue
                    for r in self._by_pair.get(_pair(y, base), ()):
                        # base -> x -> y -> base, and the same pools the other way round.
                        found += [(p, q, r), (r, q, p)]
        elif self.config.max_hops == 3:
            for x, y in ((pool.token0, pool.token1), (pool.token1, pool.token0)):
                for q in self._by_pair.get(_pair(base, x), ()):
                    for r in self._by_pair.get(_pair(y, base), ()):
                        found.append((q, p, r))
        return found

    def _add_cycle(self, base: str, pools: tuple[int, ...]) -> None:
        tokens_in = []
        slots = []
        hops = []
        token = base
        for p in pools:
            pool = self._pools[p]
            tokens_in.append(token)
            slots.append(1 + 2 * p + (token != pool.token0))
            token_out = _other(pool, token)
            hops.append(core.Hop(pool.address, "v2" if isinstance(pool, V2Pool) else "v3", token, token_out))
            token = token_out
        index = len(self.cycles)
        padded = (slots[0], slots[1], slots[2] if len(slots) == 3 else 0)  # slot 0 is the identity hop
        cost_key = 2 * self._base_index[base] + len(slots) - 2
        self.cycles.append(Cycle(pools, tuple(tokens_in), tuple(hops), tuple(slots), padded, cost_key))
        if index >= len(self._cycle_cost_v):
            self._cycle_slots_v = _grown(self._cycle_slots_v, index + 1, 0)
            self._cycle_cost_v = _grown(self._cycle_cost_v, index + 1, 0)
        self._cycle_slots_v[index] = padded
        self._cycle_cost_v[index] = cost_key
        for k, slot in enumerate(slots):
            others = padded[:k] + padded[k + 1 :]
            self._slot_cycles[slot].append((index, others[0], others[1]))

    def _refresh_rates(self, p: int) -> None:
        pool = self._pools[p]
        forward, backward = 1 + 2 * p, 2 + 2 * p
        if isinstance(pool, V2Pool):
            # The fee is charged on the input token, so each direction keeps its own share (Camelot
            # sets one per token; for every other fork the two are equal).
            kept0 = (pool.fee_denominator - pool.fee_in(pool.token0)) / pool.fee_denominator
            kept1 = (pool.fee_denominator - pool.fee_in(pool.token1)) / pool.fee_denominator
            reserve0, reserve1 = float(pool.reserve0), float(pool.reserve1)
            # A pair that is not x·y (a stable Camelot pair) gets zero rates: no cycle through it passes.
            if reserve0 > 0.0 and reserve1 > 0.0 and pool.quotable:
                self._set(forward, kept0 * reserve1 / reserve0, kept0 / reserve0)
                self._set(backward, kept1 * reserve0 / reserve1, kept1 / reserve1)
            else:
                self._set(forward, 0.0, 0.0)
                self._set(backward, 0.0, 0.0)
            return
        state = pool.state
        kept = (1_000_000 - state.fee) / 1_000_000
        root = state.sqrt_price_x96 / _Q96
        price = root * root  # token1 per token0 at the current price: no later step trades better
        below, above = _max_liquidity(state)
        # As a constant-product pool at this price with liquidity L: R0 = L/√P of token0, R1 = L·√P of
        # token1; the dominating hop takes the largest L the swap can meet in that direction.
        if price > 0.0 and below > 0.0:
            self._set(forward, kept * price, kept * root / below)
        else:
            self._set(forward, 0.0, 0.0)
        if price > 0.0 and above > 0.0:
            self._set(backward, kept / price, kept / (above * root))
        else:
            self._set(backward, 0.0, 0.0)

    def _set(self, slot: int, rate: float, h: float) -> None:
        self._rates[slot] = rate
        self._h[slot] = h
        self._rates_v[slot] = rate
        self._h_v[slot] = h

    def cycles_of(self, address: str) -> list[Cycle]:
        p = self._pool_index[address]
        return [self.cycles[entry[0]] for slot in (1 + 2 * p, 2 + 2 * p) for entry in self._slot_cycles[slot]]

    # -- the hot path ----------------------------------------------------------------------------

    def on_head(self, head: core.Head) -> None:
        if head.chain == self.store.chain:
            self._base_fee = head.base_fee

    def on_pool_updates(self, updates: Sequence[core.PoolUpdate]) -> list[core.Opportunity]:
        """Opportunities on the store's current state through the updated pools, best first.

        The cycles one updated pool brings in all trade through that pool, so at most one of them
        can execute against this state: they are sized in decreasing order of their profit bound,
        and sizing stops at the first whose bound cannot beat the best net profit found in the group
        (branch and bound: the group's best is never missed, hundreds of cycles through a busy hub
        pool do not all get sized).
        """
        rates = self._rates
        threshold = self._min_rate
        groups: list[list[tuple[float, int, int]]] = []
        seen: set[int] = set()
        checked = 0
        costs: _Costs | None = None
        for update in updates:
            if update.chain != self.store.chain:
                continue
            pool = self.store.pools.get(update.pool)
            if pool is None:
                continue
            p = self._pool_index.get(update.pool)
            if p is None:
                self.add_pool(update.pool)
                p = self._pool_index[update.pool]
            else:
                # The syncer may replace a pool object (reconciliation) rather than update it.
                self._pools[p] = pool
            self._refresh_rates(p)
            self.stats.updates += 1
            bounded: list[tuple[float, int, int]] = []
            for slot in (1 + 2 * p, 2 + 2 * p):
                entries = self._slot_cycles[slot]
                own = rates[slot]
                checked += len(entries)
                if own <= 0.0:
                    continue
                limit = threshold / own
                if len(entries) >= _VECTOR_MIN:
                    costs = costs or self._costs()
                    bounded += self._bounded_vector(slot, limit, seen, costs)
                    continue
                survivors = [c for c, a, b in entries if rates[a] * rates[b] > limit and c not in seen]
                if survivors:
                    seen.update(survivors)
                    costs = costs or self._costs()
                    bounded += self._bounded(survivors, costs)
            if bounded:
                groups.append(bounded)
        self.stats.cycles_checked += checked
        found = []
        for bounded in groups:
            assert costs is not None  # a bounded cycle was priced with them
            found += self._best_of(bounded, costs)
        found.sort(key=lambda o: o.net_profit_usd, reverse=True)
        self.stats.found += len(found)
        return found

    def _bounded(self, survivors: list[int], costs: _Costs) -> list[tuple[float, int, int]]:
        """(bound on net profit in USD, cycle, bound on its input) of the survivors worth sizing."""
        rates, h, unit_of, gas_of = self._rates, self._h, costs.unit, costs.gas
        floor = self.config.min_profit_threshold
        bounded = []
        for c in survivors:
            cycle = self.cycles[c]
            unit = unit_of[cycle.cost_key]
            if math.isnan(unit):
                self.stats.unpriced += 1
                continue
            self.stats.cycles_bounded += 1
            s0, s1, s2 = cycle.padded
            a, k = _composed(rates[s0], rates[s1], rates[s2], h[s0], h[s1], h[s2])
            if a <= 1.0 or not k > 0.0:
                continue
            profit, reach = _optimum(a, k)
            net_bound = profit * _BOUND_MARGIN * unit - gas_of[cycle.cost_key]
            if net_bound > 0.0 and net_bound >= floor:
                bounded.append((net_bound, c, int(reach * _BOUND_MARGIN) + 2))
        return bounded

    def _bounded_vector(self, slot: int, limit: float, seen: set[int], costs: _Costs) -> list[tuple[float, int, int]]:
        """_bounded with the rate pre-filter, for a hub's rate slot, as numpy vectors (_VECTOR_MIN)."""
        entries = self._slot_cycles[slot]
        cached = self._slot_vectors.get(slot)
        if cached is None or cached[0] != len(entries):
            columns = np.array(entries, dtype=np.intp)
            cached = (len(entries), columns[:, 0].copy(), columns[:, 1].copy(), columns[:, 2].copy())
            self._slot_vectors[slot] = cached
        _, cycles, other_a, other_b = cached
        rates = self._rates_v
        survivors = cycles[rates[other_a] * rates[other_b] > limit]
        if seen and survivors.size:
            survivors = survivors[~np.isin(survivors, np.fromiter(seen, dtype=np.intp, count=len(seen)))]
        if not survivors.size:
            return []
        listed = survivors.tolist()
        seen.update(listed)
        if len(listed) < _VECTOR_MIN // 2:  # a handful: the scalar loop is cheaper than ~20 numpy calls
            return self._bounded(listed, costs)
        keys = self._cycle_cost_v[survivors]
        unit = costs.unit_v[keys]
        priced = ~np.isnan(unit)
        priced_count = int(priced.sum())
        self.stats.unpriced += survivors.size - priced_count
        self.stats.cycles_bounded += priced_count
        slots = self._cycle_slots_v[survivors]
        g, h = rates[slots], self._h_v[slots]
        a, k = _composed(g[:, 0], g[:, 1], g[:, 2], h[:, 0], h[:, 1], h[:, 2])
        with np.errstate(all="ignore"):  # cycles a <= 1 or k <= 0 compute nonsense and are masked out
            profit, reach = _optimum(a, k)
            net_bound = profit * _BOUND_MARGIN * unit - costs.gas_v[keys]
            keep = priced & (a > 1.0) & (k > 0.0) & (net_bound > 0.0) & (net_bound >= self.config.min_profit_threshold)
        return [
            (float(net_bound[j]), int(survivors[j]), int(float(reach[j]) * _BOUND_MARGIN) + 2)
            for j in np.flatnonzero(keep)
        ]

    def _best_of(self, bounded: list[tuple[float, int, int]], costs: _Costs) -> list[core.Opportunity]:
        """Size the group's cycles by decreasing bound on net profit, until none can beat the best."""
        bounded.sort(reverse=True)
        found: list[core.Opportunity] = []
        best = -math.inf
        for net_bound, c, max_amount_in in bounded:
            if net_bound <= best:
                break
            opportunity = self._evaluate(self.cycles[c], max_amount_in, costs)
            if opportunity is not None:
                found.append(opportunity)
                best = max(best, opportunity.net_profit_usd)
        return found

    def _costs(self) -> _Costs:
        """Per cost key (base token, cycle length): USD per unit of gross profit the searcher keeps after
        the builder's share, and the gas cost in USD at the current base fee; NaN where unpriceable."""
        config, pricer = self.config, self.pricer
        kept_share = 1.0 - config.builder_share_bps / _BPS
        gas_price = self._base_fee + config.priority_fee_wei
        unit_of = [math.nan] * (2 * len(config.base_tokens))
        gas_of = [math.nan] * (2 * len(config.base_tokens))
        for i, base in enumerate(config.base_tokens):
            unit = pricer.usd_per_unit(base)
            if unit is None or unit <= 0.0:
                continue
            for length in range(2, config.max_hops + 1):
                gas_usd = pricer.wei_usd(config.gas_limits[length] * gas_price)
                if gas_usd is not None:
                    unit_of[2 * i + length - 2], gas_of[2 * i + length - 2] = unit * kept_share, gas_usd
        return _Costs(unit_of, gas_of, np.array(unit_of), np.array(gas_of))

    def _evaluate(self, cycle: Cycle, max_amount_in: int, costs: _Costs) -> core.Opportunity | None:
        self.stats.cycles_sized += 1
        pools = [self._pools[p] for p in cycle.pools]
        hops = [pool.hop(token) for pool, token in zip(pools, cycle.tokens_in, strict=True)]
        result = self._size(hops, cycle, max_amount_in, costs)
        if result is None:
            self.stats.unprofitable += 1
            return None
        amounts = resimulate(pools, cycle.tokens_in, result.amount_in)
        if amounts is None or tuple(amounts) != result.hop_amounts:
            self.stats.verify_mismatches += 1
            return None
        return self._priced(cycle, result)

    def _size(self, hops: list[V2Hop | V3Hop], cycle: Cycle, max_amount_in: int, costs: _Costs) -> ArbResult | None:
        """Closed form for all-V2 cycles; the segment walk with a V3 hop, the concavity search if it
        does not converge. max_amount_in: no input at or above it can profit (the dominating cycle
        already loses there)."""
        v2_hops = [hop for hop in hops if isinstance(hop, V2Hop)]
        if len(v2_hops) == len(hops):
            return size_v2_cycle(v2_hops, max_scan=self.config.v2_max_scan)
        try:
            optimum = real_optimum(hops, float(max_amount_in))
        except SegmentLimit:
            self.stats.searched += 1
            return search_cycle(
                hops,
                max_amount_in=max_amount_in,
                refine_radius=self.config.v3_refine_radius,
                refine_steps=self.config.v3_refine_steps,
            )
        if optimum is None:
            return None
        # The real optimum's profit bounds every integer input's: a cycle it cannot pay for is dropped
        # before any exact simulation.
        net_bound = optimum.profit * _BOUND_MARGIN * costs.unit[cycle.cost_key] - costs.gas[cycle.cost_key]
        if net_bound <= 0.0 or net_bound < self.config.min_profit_threshold:
            return None
        return exact_at(hops, optimum.amount_in)

    def _priced(self, cycle: Cycle, result: ArbResult) -> core.Opportunity | None:
        config = self.config
        pricer = self.pricer
        base = cycle.tokens_in[0]
        gross = result.profit
        notional_usd = pricer.amount_usd(base, result.amount_in)
        profit_usd = pricer.amount_usd(base, gross)
        gross_wei = pricer.to_wei(base, gross)
        if notional_usd is None or profit_usd is None or gross_wei is None:
            self.stats.unpriced += 1
            return None
        gas_limit = config.gas_limits[len(cycle.pools)]
        gas_price = self._base_fee + config.priority_fee_wei
        builder_payment = payment_of(gross_wei, config.builder_share_bps)
        gas_cost_usd = pricer.wei_usd(gas_limit * gas_price + builder_payment)
        if gas_cost_usd is None:
            self.stats.unpriced += 1
            return None
        net_usd = profit_usd - gas_cost_usd
        if (
            net_usd <= 0.0
            or net_usd < config.min_profit_threshold
            or net_usd * _BPS < config.min_profit_bps * notional_usd
        ):
            self.stats.unprofitable += 1
            return None
        chain, block = self.store.chain, self.store.block
        key = f"{chain}|{block}|{'/'.join(h.pool for h in cycle.hops)}|{base}|{result.amount_in}"
        return core.Opportunity(
            chain=chain,
            strategy=self.name,
            block=block,
            hops=cycle.hops,
            amount_in=result.amount_in,
            amount_out=result.amount_out,
            gas_limit=gas_limit,
            gas_price=gas_price,
            builder_payment=builder_payment,
            notional_usd=notional_usd,
            profit_usd=profit_usd,
            gas_cost_usd=gas_cost_usd,
            found_ns=time.perf_counter_ns(),
            id=hashlib.sha256(key.encode()).hexdigest()[:32],
            route=ARB_CONTRACT,
        )
