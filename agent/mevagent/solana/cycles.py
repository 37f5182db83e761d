"""2- and 3-hop cycles from a base mint through the tracked pools, sized exactly, net of fees and tip.

Profit of a constant-product cycle is concave in its input, so an integer ternary search finds the best
input; every candidate is quoted hop by hop with the pools' exact integer math. Cheap pre-filter first:
a cycle whose marginal rate at a small input is not above 1 cannot be profitable at any size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from solders.pubkey import Pubkey

from .raydium import Pool, QuoteError

LAMPORTS_PER_SIGNATURE = 5_000


class CycleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_mint: str  # the token every cycle starts and ends in (wrapped SOL on mainnet)
    max_input: int = Field(gt=0)  # base-mint units one cycle may spend
    probe_input: int = Field(default=10_000, gt=0)  # the pre-filter's small input
    compute_unit_limit: int = Field(default=400_000, gt=0, le=1_400_000)
    compute_unit_price_micro_lamports: int = Field(default=10_000, ge=0)
    tip_share_bps: int = Field(default=5_000, ge=0, le=10_000)  # share of gross profit bid to the block engine
    min_tip_lamports: int = Field(default=1_000, ge=1_000)  # the block engine's floor
    min_profit_lamports: int = Field(default=0, ge=0)  # net of every cost


@dataclass(frozen=True, slots=True)
class Leg:
    pool: Pool
    zero_for_one: bool
    mint_in: Pubkey
    mint_out: Pubkey


@dataclass(frozen=True, slots=True)
class Cycle:
    legs: tuple[Leg, ...]

    @property
    def key(self) -> tuple[tuple[str, bool], ...]:
        return tuple((str(leg.pool.address), leg.zero_for_one) for leg in self.legs)


@dataclass(frozen=True, slots=True)
class Sized:
    cycle: Cycle
    amount_in: int
    amounts: tuple[int, ...]  # the output of each leg, exact
    gross: int
    priority_fee: int
    base_fee: int
    tip: int
    slot: int
    versions: tuple[int, ...]  # each pool's state version it was computed on
    # The compute budget its priority_fee was computed with: what the transaction must ask for.
    compute_unit_limit: int = 0
    compute_unit_price_micro_lamports: int = 0

    @property
    def amount_out(self) -> int:
        return self.amounts[-1]

    @property
    def net(self) -> int:
        return self.gross - self.priority_fee - self.base_fee - self.tip


def run_cycle(cycle: Cycle, amount_in: int) -> tuple[int, ...] | None:
    amounts, amount = [], amount_in
    for leg in cycle.legs:
        try:
            amount = leg.pool.quote(amount, leg.zero_for_one)
        except QuoteError:
            return None
        if amount <= 0:
            return None
        amounts.append(amount)
    return tuple(amounts)


def enumerate_cycles(pools: Iterable[Pool], base_mint: Pubkey) -> list[Cycle]:
    """Every 2- and 3-hop cycle base -> ... -> base through distinct pools (each direction once)."""
    edges: dict[Pubkey, list[Leg]] = {}
    for pool in pools:
        a, b = pool.mints
        edges.setdefault(a, []).append(Leg(pool, True, a, b))
        edges.setdefault(b, []).append(Leg(pool, False, b, a))
    cycles = []
    for first in edges.get(base_mint, ()):
        for second in edges.get(first.mint_out, ()):
            if second.pool is first.pool:
                continue
            if second.mint_out == base_mint:
                cycles.append(Cycle((first, second)))
                continue
            for third in edges.get(second.mint_out, ()):
                if third.mint_out == base_mint and third.pool is not first.pool and third.pool is not second.pool:
                    cycles.append(Cycle((first, second, third)))
    return cycles


class CycleFinder:
    """Cycles indexed by pool: an account update re-evaluates only the cycles through the pools it changed."""

    def __init__(self, settings: CycleSettings) -> None:
        self.settings = settings
        self.base = Pubkey.from_string(settings.base_mint)
        self.cycles: list[Cycle] = []
        self.by_pool: dict[Pubkey, list[Cycle]] = {}

    def rebuild(self, pools: Iterable[Pool]) -> None:
        ready = [p for p in pools if p.ready()]
        self.cycles = enumerate_cycles(ready, self.base)
        self.by_pool = {}
        for cycle in self.cycles:
            for leg in cycle.legs:
                self.by_pool.setdefault(leg.pool.address, []).append(cycle)

    def affected(self, pools: Iterable[Pool]) -> list[Cycle]:
        seen: dict[tuple, Cycle] = {}
        for pool in pools:
            for cycle in self.by_pool.get(pool.address, ()):
                seen.setdefault(cycle.key, cycle)
        return list(seen.values())

    def costs(self, gross: int) -> tuple[int, int, int]:
        s = self.settings
        priority = s.compute_unit_limit * s.compute_unit_price_micro_lamports // 1_000_000
        tip = max(s.min_tip_lamports, gross * s.tip_share_bps // 10_000)
        return priority, LAMPORTS_PER_SIGNATURE, tip

    def size(self, cycle: Cycle, slot: int) -> Sized | None:
        """The best input for `cycle` and what it nets after costs; None when nothing is worth sending."""
        s = self.settings
        probe = run_cycle(cycle, s.probe_input)
        if probe is None or probe[-1] <= s.probe_input:
            return None
        lo, hi = s.probe_input, s.max_input
        profit = lambda a: (r[-1] - a) if (r := run_cycle(cycle, a)) is not None else -1  # noqa: E731
        while hi - lo > 2:
            m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
            if profit(m1) < profit(m2):
                lo = m1 + 1
            else:
                hi = m2 - 1
        best = max(range(lo, hi + 1), key=profit)
        amounts = run_cycle(cycle, best)
        if amounts is None or amounts[-1] <= best:
            return None
        gross = amounts[-1] - best
        priority, base_fee, tip = self.costs(gross)
        versions = tuple(leg.pool.version for leg in cycle.legs)
        sized = Sized(cycle, best, amounts, gross, priority, base_fee, tip, slot, versions,
                      s.compute_unit_limit, s.compute_unit_price_micro_lamports)  # fmt: skip
        return sized if sized.net > s.min_profit_lamports else None

    def evaluate(self, pools: Iterable[Pool], slot: int) -> list[Sized]:
        """Every profitable cycle through `pools`, best net first."""
        found = [s for c in self.affected(pools) if (s := self.size(c, slot)) is not None]
        return sorted(found, key=lambda s: s.net, reverse=True)
