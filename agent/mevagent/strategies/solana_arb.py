"""Solana cycle arbitrage as a plug-in: 2- and 3-hop cycles from the chain's base mint through its tracked
Raydium AMM v4/CPMM/CLMM, Orca Whirlpool and Meteora DLMM pools (mevagent.solana.cycles), sized exactly
and net of base fee, priority fee and tip, sent through the `solana_bundle` route (mevagent.solana.route:
the risk gate before signing, dry-run unless the chain is live).

It consumes the `PoolUpdate`s the chain's Solana collector emits after it applied an account change to the
pool book (state "solana_pools"); slots reach it as `Head`s. Each batch yields at most the best cycle: the
route runs one at a time, and a second cycle through the same pools would be sized on state the first
is about to change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field
from solders.pubkey import Pubkey

from mevagent import metrics_names as names
from mevagent.config import StrategyConfig
from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.solana.book import PoolBook
from mevagent.solana.cycles import CycleFinder, CycleSettings, Sized
from mevagent.solana.executor import opportunity_of
from mevagent.solana.price import LAMPORTS_PER_SOL, SolPrice, sol_price
from mevagent.solana.route import ROUTE, SolanaRoute
from mevagent.strategies import StrategyContext, StrategyPlugin

NAME = "solana_arb"

COUNTERS: dict[names.Metric, str] = {
    names.STRATEGY_POOL_UPDATES: "updates",
    names.STRATEGY_CYCLES_CHECKED: "cycles_checked",
    names.STRATEGY_UNPROFITABLE: "unprofitable",
    names.STRATEGY_UNPRICED: "unpriced",
}


class Settings(StrategyConfig):
    """The `strategies.solana_arb` section (amounts in the base mint's units: lamports for wrapped SOL)."""

    max_input: Annotated[int, Field(gt=0)] = 10 * LAMPORTS_PER_SOL
    probe_input: Annotated[int, Field(gt=0)] = 10_000
    compute_unit_limit: Annotated[int, Field(gt=0, le=1_400_000)] = 400_000
    compute_unit_price_micro_lamports: Annotated[int, Field(ge=0)] = 10_000
    tip_share_bps: Annotated[int, Field(ge=0, le=10_000)] = 5_000
    min_tip_lamports: Annotated[int, Field(ge=1_000)] = 1_000


def cycle_settings(section: Settings, base_mint: str, sol_usd: float) -> CycleSettings:
    """The search's settings: the section's min_profit_threshold (USD) as a floor in lamports."""
    return CycleSettings(
        base_mint=base_mint,
        max_input=section.max_input,
        probe_input=min(section.probe_input, section.max_input),
        compute_unit_limit=section.compute_unit_limit,
        compute_unit_price_micro_lamports=section.compute_unit_price_micro_lamports,
        tip_share_bps=section.tip_share_bps,
        min_tip_lamports=section.min_tip_lamports,
        min_profit_lamports=int(section.min_profit_threshold / sol_usd * LAMPORTS_PER_SOL),
    )


class SolanaArb:
    name = NAME
    consumes = (PoolUpdate,)

    def __init__(self, ctx: StrategyContext, book: PoolBook, price: SolPrice) -> None:
        assert ctx.chain.solana is not None
        self.chain = ctx.chain.name
        self.book, self.price = book, price
        self.base_mint = ctx.chain.solana.base_mint
        self.section = self._section(ctx)
        # The price the finder's floor was last set at (None: not yet): `_priced` sets it before every search,
        # so the placeholder floor below is never searched with.
        self.sol_usd: float | None = None
        self.finder = CycleFinder(cycle_settings(self.section, self.base_mint, math.inf))
        self.slot = 0
        self.updates = self.cycles_checked = self.unprofitable = self.unpriced = 0
        self._ready: frozenset[Pubkey] = frozenset()
        ctx.settings.subscribe(self._settings_changed)

    @staticmethod
    def _section(ctx: StrategyContext) -> Settings:
        section = ctx.settings.strategies[NAME]
        assert isinstance(section, Settings)  # the config validated it with this model
        return section

    def _settings_changed(self, settings: object) -> None:
        section = getattr(settings, "strategies", {}).get(NAME)
        if isinstance(section, Settings) and section != self.section:
            self.section = section
            self.sol_usd = None  # the floor is set from the new section at the next batch's price
            self.finder = CycleFinder(cycle_settings(section, self.base_mint, math.inf))
            self._ready = frozenset()  # re-enumerate on the next batch

    def on_head(self, head: Head) -> None:
        self.slot = max(self.slot, head.number)

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        pools = self.book.pools
        changed = [p for e in events if isinstance(e, PoolUpdate) and (p := pools.get(Pubkey.from_string(e.pool)))]
        self.updates += len(changed)
        ready = frozenset(a for a, p in pools.items() if p.ready())
        if ready != self._ready:  # a pool became quotable (or stopped being): cycles are re-enumerated
            self._ready = ready
            self.finder.rebuild(pools.values())
        sol_usd = self._priced()
        if sol_usd is None:  # never search (nor value) a cycle on a missing price
            self.unpriced += 1 if changed else 0
            return []
        slot = max([self.slot, *(e.block for e in events if isinstance(e, PoolUpdate))])
        self.cycles_checked += len(self.finder.affected(changed))
        found = self.finder.evaluate(changed, slot)
        best = next((s for s in found if self._worth_it(s)), None)
        if best is None:
            self.unprofitable += 1 if changed else 0
            return []
        return [opportunity_of(best, sol_usd, self.chain, NAME, ROUTE)]

    def _priced(self) -> float | None:
        """SOL's USD price for this batch, the finder's floor (min_profit_threshold in lamports) set at it;
        None when there is none."""
        sol_usd = self.price.sol_usd()
        if sol_usd is not None and sol_usd != self.sol_usd:
            self.sol_usd = sol_usd
            self.finder.settings = cycle_settings(self.section, self.base_mint, sol_usd)
        return sol_usd

    def _worth_it(self, sized: Sized) -> bool:
        return sized.net * 10_000 >= self.section.min_profit_bps * sized.amount_in

    def counters(self) -> list[int]:
        return [getattr(self, attr) for attr in COUNTERS.values()]

    def describe(self) -> str:
        return f"{len(self.book.pools)} pools, cycles from {self.base_mint}"


def _price(ctx: StrategyContext) -> SolPrice:
    assert ctx.chain.solana is not None
    return sol_price(ctx.chain.solana, ctx.state["solana_pools"])


def _build(ctx: StrategyContext) -> SolanaArb:
    return SolanaArb(ctx, ctx.state["solana_pools"], _price(ctx))


async def _open_route(ctx: StrategyContext) -> SolanaRoute:
    return await SolanaRoute.open(ctx.chain, ctx.extras["gate"], _price(ctx))


PLUGIN = StrategyPlugin(
    name=NAME,
    config=Settings,
    consumes=(PoolUpdate,),
    state=("solana_pools",),
    action=Opportunity,
    route=ROUTE,
    counters=tuple(COUNTERS),
    build=_build,
    open_route=_open_route,
    # Configured by `strategies.solana_arb` (EVM-only agents then carry no section for it).
    default_on=False,
)
