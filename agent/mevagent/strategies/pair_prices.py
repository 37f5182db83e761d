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
        inventory_accounts: {arbitrum: "0x..."}   # optional: whose balances the rebalancing planner plans with
        inventory_every_blocks: 10
        inventory_refresh_blocks: 600

With `inventory_accounts` naming this chain, the account's balances of the pairs' tokens are read every
`inventory_every_blocks` heads and published when they changed (mevagent.crosschain.inventory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from mevagent import metrics_names as names
from mevagent.config import Name, StrategyConfig
from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.crosschain.inventory import InventoryReporter
from mevagent.crosschain.prices import Address, PairPriceReporter, PairPricesConfig, PairSpec, Size
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

INVENTORY_PUBLISHED = names.Metric(
    "mev_strategy_inventory_published",
    "counter",
    "inventory events published for the rebalancing planner (an inventory account's balances changed or were due).",
    ("chain", "strategy"),
    sampled=True,
)


class PairPricesSettings(StrategyConfig):
    pairs: dict[Name, tuple[PairSpec, ...]] = Field(default_factory=dict)  # per chain
    buy_sizes: tuple[Size, ...] = ()
    sell_sizes: tuple[Size, ...] = ()
    min_move_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 1.0
    inventory_accounts: dict[Name, Address] = Field(default_factory=dict)  # per chain, lower case
    inventory_every_blocks: Annotated[int, Field(ge=1, le=100_000)] = 10
    inventory_refresh_blocks: Annotated[int, Field(ge=1, le=1_000_000)] = 600


class PairPrices:
    consumes = (PoolUpdate,)

    def __init__(
        self, chain: str, reporter: PairPriceReporter, inventory: InventoryReporter | None = None, every: int = 10
    ) -> None:
        self.name = NAME
        self.chain = chain
        self.reporter = reporter
        self.inventory = inventory
        self.every = every
        self._unseen = True  # the first head reports every pair (pools that never change are still priced)
        self._reading: asyncio.Task[bool] | None = None
        self._next_read = 0  # the first head reads the inventory

    def on_head(self, head: Head) -> None:
        if self._unseen:
            self._unseen = False
            pools = [p.pool for p in self.reporter.config.pairs]
            asyncio.get_running_loop().call_soon(self.reporter.observe, pools, head.number)
        self._read_inventory(head.number)

    def _read_inventory(self, block: int) -> None:
        # One read in flight at a time, as a task of its own: the engine never waits for the node's answers.
        if self.inventory is None or block < self._next_read or (self._reading and not self._reading.done()):
            return
        self._next_read = block + self.every
        self._reading = asyncio.get_running_loop().create_task(self.inventory.observe(block))

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        pools = [e.pool for e in events if isinstance(e, PoolUpdate)]
        if pools:
            block = max(e.block for e in events if isinstance(e, PoolUpdate))
            asyncio.get_running_loop().call_soon(self.reporter.observe, pools, block)
        return []

    def counters(self) -> list[int]:
        return [self.reporter.published, self.inventory.published if self.inventory else 0]

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
    store = ctx.state["pools"]
    reporter = PairPriceReporter(bus.agent, store, config, bus.publish)
    account = section.inventory_accounts.get(ctx.chain.name)
    inventory = None
    if account is not None:
        pools = [p.pool for p in config.pairs]

        def tokens() -> list[str]:  # the pairs' tokens, as the syncer knows its pools
            return [t for p in pools if p in store.pools for t in (store.pools[p].token0, store.pools[p].token1)]

        inventory = InventoryReporter(bus.agent, ctx.chain.name, ctx.extras["node"], account, tokens, bus.publish,
                                      refresh_blocks=section.inventory_refresh_blocks)  # fmt: skip
    return PairPrices(ctx.chain.name, reporter, inventory, section.inventory_every_blocks)


PLUGIN = StrategyPlugin(
    name=NAME,
    config=PairPricesSettings,
    consumes=(PoolUpdate,),
    state=("pools",),
    action=Opportunity,
    route=ARB_CONTRACT,  # declared for the wiring; it never emits an opportunity
    counters=(PUBLISHED, INVENTORY_PUBLISHED),
    build=_build,
    unavailable=_unavailable,
)
