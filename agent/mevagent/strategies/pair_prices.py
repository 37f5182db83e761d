"""pair_prices: tells the control plane's cross-chain engine the prices of this chain's tracked pairs.

Not a trading strategy: it emits no opportunity. On the pool updates of a batch (and on each head, for
pools that never changed since the agent started) it hands the configured pairs among them to a
`mevagent.crosschain.prices.PairPriceReporter`, which publishes a `pair_price` event on the bus when a
price moved. The reporting is scheduled with `call_soon`, after the engine's batch: the strategies that
trade on the same updates go first. Runs only where the agent has a bus (`bus:`) and pairs for the chain.

    strategies:
      pair_prices:
        pairs: {arbitrum: [{pool: "0x...", base: "0x..."}]}   # base: the token priced, the other is the quote
        buy_sizes: [1000000000]        # quote base units: depth of buying the base
        sell_sizes: [1000000000000000000]
        min_move_bps: 1
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from mevagent import metrics_names as names
from mevagent.config import Name, StrategyConfig
from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec, Size
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.strategies import StrategyContext, StrategyPlugin

NAME = "pair_prices"

PUBLISHED = names.Metric(
    "mev_strategy_pair_prices_published",
    "counter",
    "pair_price events published for the cross-chain engine (a pair's price moved).",
    ("chain", "strategy"),
    sampled=True,
)


class PairPricesSettings(StrategyConfig):
    pairs: dict[Name, tuple[PairSpec, ...]] = Field(default_factory=dict)  # per chain
    buy_sizes: tuple[Size, ...] = ()
    sell_sizes: tuple[Size, ...] = ()
    min_move_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 1.0


class PairPrices:
    consumes = (PoolUpdate,)

    def __init__(self, chain: str, reporter: PairPriceReporter) -> None:
        self.name = NAME
        self.chain = chain
        self.reporter = reporter
        self._unseen = True  # the first head reports every pair (pools that never change are still priced)

    def on_head(self, head: Head) -> None:
        if self._unseen:
            self._unseen = False
            pools = [p.pool for p in self.reporter.config.pairs]
            asyncio.get_running_loop().call_soon(self.reporter.observe, pools, head.number)

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        pools = [e.pool for e in events if isinstance(e, PoolUpdate)]
        if pools:
            block = max(e.block for e in events if isinstance(e, PoolUpdate))
            asyncio.get_running_loop().call_soon(self.reporter.observe, pools, block)
        return []

    def counters(self) -> list[int]:
        return [self.reporter.published]

    def describe(self) -> str:
        return f"{len(self.reporter.config.pairs)} pair(s) priced for the cross-chain engine"


def _pairs(ctx: StrategyContext) -> tuple[PairSpec, ...]:
    section = ctx.section
    assert isinstance(section, PairPricesSettings)
    return section.pairs.get(ctx.chain.name, ())


def _unavailable(ctx: StrategyContext) -> str:
    if "bus" not in ctx.extras:
        return "no bus (bus:): nothing to publish to"
    if not _pairs(ctx):
        return f"strategies.{NAME}.pairs names no pair of this chain"
    return ""


def _build(ctx: StrategyContext) -> PairPrices:
    section = ctx.section
    assert isinstance(section, PairPricesSettings)
    bus = ctx.extras["bus"]
    config = PairPricesConfig(
        pairs=_pairs(ctx), buy_sizes=section.buy_sizes, sell_sizes=section.sell_sizes,
        min_move_bps=section.min_move_bps,
    )  # fmt: skip
    reporter = PairPriceReporter(bus.agent, ctx.state["pools"], config, bus.publish)
    return PairPrices(ctx.chain.name, reporter)


PLUGIN = StrategyPlugin(
    name=NAME,
    config=PairPricesSettings,
    consumes=(PoolUpdate,),
    state=("pools",),
    action=Opportunity,
    route=ARB_CONTRACT,  # declared for the wiring; it never emits an opportunity
    counters=(PUBLISHED,),
    build=_build,
    unavailable=_unavailable,
)
