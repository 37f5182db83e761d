"""DEX arbitrage as a plug-in: its config section, the events it consumes (pool updates), the state it
reads (the pool store and the chain's prices), its action (a swap cycle on the ArbExecutor contract's
route) and its counters. The search itself is in `search`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from mevagent import metrics_names as names
from mevagent.config import GWEI, Address, ChainConfig, GasSettings, StrategyConfig
from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.executor.routes import ARB_CONTRACT
from mevagent.strategies import StrategyContext, StrategyPlugin, builder_share_bps
from mevagent.strategies.dex_arb.search import (
    Cycle,
    DexArbConfig,
    DexArbStats,
    DexArbStrategy,
    resimulate,
)

if TYPE_CHECKING:
    from mevagent.config import AgentConfig
    from mevagent.engine.settings import LiveSettings
    from mevagent.pricing import Pricer
    from mevagent.state.pools import PoolStore

log = logging.getLogger(__name__)

NAME = "dex_arb"

# The DexArbStats field behind each of its counters. Its `found` is what the engine already exports as
# mev_opportunities_found.
COUNTERS: dict[names.Metric, str] = {
    names.STRATEGY_POOL_UPDATES: "updates",
    names.STRATEGY_CYCLES_CHECKED: "cycles_checked",
    names.STRATEGY_CYCLES_BOUNDED: "cycles_bounded",
    names.STRATEGY_CYCLES_SIZED: "cycles_sized",
    names.STRATEGY_UNPROFITABLE: "unprofitable",
    names.STRATEGY_VERIFY_MISMATCHES: "verify_mismatches",
    names.STRATEGY_SEARCHED: "searched",
    names.STRATEGY_UNPRICED: "unpriced",
}


class DexArbSettings(StrategyConfig):
    """The `strategies.dex_arb` section."""

    base_tokens: tuple[Address, ...] = ()  # tokens cycles start and end in (e.g. WETH)
    max_hops: Literal[2, 3] = 3

    def check_against(self, name: str, config: AgentConfig) -> None:
        # Its global base tokens must be priced on every chain it runs on with pricing.
        for chain in config.chains:
            if chain.pricing is None or chain.base_tokens or not (self.chains is None or chain.name in self.chains):
                continue
            unpriced = [t for t in self.base_tokens if t not in chain.pricing.tokens]
            if unpriced:
                raise ValueError(
                    f"strategies.{name}.base_tokens {unpriced} have no entry in chains.{chain.name}.pricing.tokens"
                )


def cycle_tokens(chain: ChainConfig, settings: DexArbSettings) -> tuple[str, ...]:
    """The base tokens cycles start in on `chain`: the chain's, else the strategy's, else wrapped_native."""
    if chain.base_tokens:
        return chain.base_tokens
    if settings.base_tokens:
        return settings.base_tokens
    return (chain.wrapped_native,) if chain.wrapped_native else ()


def dex_arb_config(chain: ChainConfig, strategy: DexArbSettings, gas: GasSettings) -> DexArbConfig:
    """The strategy's settings on `chain` from its section and the agent's gas settings."""
    return DexArbConfig(
        base_tokens=cycle_tokens(chain, strategy),
        max_hops=strategy.max_hops,
        min_profit_bps=strategy.min_profit_bps,
        min_profit_threshold=strategy.min_profit_threshold,
        builder_share_bps=builder_share_bps(chain, gas),
        priority_fee_wei=int(gas.priority_fee_gwei * GWEI),
        gas_limits={hops: gas.gas_limit_base + hops * gas.gas_limit_per_hop for hops in (2, 3)},
    )


class LiveDexArb:
    """The DEX arbitrage strategy of one chain, rebuilt when an operator changes gas or profit settings.

    The strategy derives its pre-filter from its settings when it is built, so a change builds a new one
    over the same pool store (re-indexing its cycles once) instead of patching it. Its hot-path counters
    start again at 0 in the new one, so what the old ones counted is carried in `_retired`: the metrics
    read `counters()`, and a Prometheus counter must not go back.
    """

    name = NAME
    consumes = (PoolUpdate,)

    def __init__(self, chain: ChainConfig, store: PoolStore, pricer: Pricer, settings: LiveSettings) -> None:
        self.chain = chain.name
        self.chain_config = chain
        self.store = store
        self.pricer = pricer
        self.config = self._config(settings)
        self.strategy = DexArbStrategy(store, self.config, pricer)
        self._retired = dict.fromkeys(COUNTERS.values(), 0)
        self._last_head: Head | None = None
        settings.subscribe(self._settings_changed)

    def _config(self, settings: LiveSettings) -> DexArbConfig:
        section = settings.strategies[NAME]
        assert isinstance(section, DexArbSettings)  # the config validated it with this model
        return dex_arb_config(self.chain_config, section, settings.gas)

    def _settings_changed(self, settings: LiveSettings) -> None:
        config = self._config(settings)
        if config == self.config:
            return
        strategy = DexArbStrategy(self.store, config, self.pricer)
        if self._last_head is not None:
            strategy.on_head(self._last_head)
        stats = self.strategy.stats
        self._retired = {attr: count + getattr(stats, attr) for attr, count in self._retired.items()}
        self.config, self.strategy = config, strategy
        log.info("%s: dex_arb settings changed: %d cycles re-indexed", self.chain, len(strategy.cycles))

    def on_head(self, head: Head) -> None:
        self._last_head = head
        self.strategy.on_head(head)

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        return self.strategy.on_pool_updates(events)  # type: ignore[arg-type]  # consumes PoolUpdate only

    def counters(self) -> list[int]:
        """Its COUNTERS since the agent started, in that order: read when Prometheus scrapes."""
        stats = self.strategy.stats
        return [self._retired[attr] + getattr(stats, attr) for attr in COUNTERS.values()]

    def describe(self) -> str:
        return f"cycles from {', '.join(self.config.base_tokens)}"


def _unavailable(ctx: StrategyContext) -> str:
    section = ctx.section
    assert isinstance(section, DexArbSettings)
    if ctx.chain.pricing is None:
        return "no pricing configured"
    if not cycle_tokens(ctx.chain, section):
        return "no base tokens (base_tokens or wrapped_native)"
    return ""


def _build(ctx: StrategyContext) -> LiveDexArb:
    return LiveDexArb(ctx.chain, ctx.state["pools"], ctx.state["prices"], ctx.settings)


PLUGIN = StrategyPlugin(
    name=NAME,
    config=DexArbSettings,
    consumes=(PoolUpdate,),
    state=("pools", "prices"),
    action=Opportunity,
    route=ARB_CONTRACT,
    counters=tuple(COUNTERS),
    build=_build,
    unavailable=_unavailable,
    default_on=True,
)

__all__ = [
    "COUNTERS",
    "NAME",
    "PLUGIN",
    "Cycle",
    "DexArbConfig",
    "DexArbSettings",
    "DexArbStats",
    "DexArbStrategy",
    "LiveDexArb",
    "cycle_tokens",
    "dex_arb_config",
    "resimulate",
]
