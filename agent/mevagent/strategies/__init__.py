"""Strategy plug-ins: each strategy is one module or package here (or an installed distribution's entry
point in the group `mevagent.strategies`) that exposes `PLUGIN`, a `StrategyPlugin` declaring:

- `config`: its config model (a `mevagent.config.StrategyConfig` subclass), validated from the agent's
  `strategies.<name>` section;
- `consumes`: the event classes it is handed (mevagent.core: `PoolUpdate`, `OracleUpdate`,
  `LendingEvent`, pending transactions ...); heads always reach it;
- `state`: the per-chain state it reads (`StrategyContext.state` keys: "pools" the pool store, "prices"
  the chain's pricer); a chain without it does not run the strategy;
- `action` and `route`: the class of what it emits and the executor route that carries it out
  (mevagent.executor.routes); `open_route` when it brings that executor itself;
- `counters`: the sampled Prometheus counters it keeps (mevagent.metrics_names.Metric, labels chain and
  strategy), read from its `counters()` at scrape time;
- `build` (one strategy instance per chain) and `unavailable` (why it cannot run on a chain, "" when it
  can).

The engine, the agent's wiring (mevagent.app) and the executor router name no strategy: adding one is
its own files, its config section and its tests.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mevagent.config import AgentConfig, ChainConfig, GasSettings, StrategyConfig
    from mevagent.core import Executor, Head, Opportunity
    from mevagent.engine.settings import LiveSettings
    from mevagent.metrics_names import Metric

ENTRY_POINT_GROUP = "mevagent.strategies"
BPS = 10_000


def builder_share_bps(chain: ChainConfig, gas: GasSettings) -> int:
    """The share of a trade's gross profit (bps) paid to the block builder on `chain`: the configured
    `gas.builder_payment_share` where the chain sends bundles (a coinbase payment buys a place in a
    builder's block), 0 where it only has sequencers (they order by arrival and fee)."""
    bundles = any(e.kind == "bundle" for e in chain.endpoints)
    return round(gas.builder_payment_share * BPS) if bundles else 0


def builder_payment(gross_wei: int, share_bps: int) -> int:
    """The builder's payment (wei) out of a gross profit worth `gross_wei`."""
    return gross_wei * share_bps // BPS if gross_wei > 0 else 0


@dataclass(frozen=True)
class StrategyContext:
    """What a plug-in is given to build its strategy on one chain."""

    name: str  # the plug-in's name: its section in `settings.strategies`
    chain: ChainConfig
    agent: AgentConfig
    settings: LiveSettings  # gas, profit and strategy settings an operator may change at run time
    state: Mapping[str, Any]  # the chain's state by name (see the module doc)
    extras: Mapping[str, Any] = field(default_factory=dict)  # executor-route needs: "node", "gate", "executor"

    @property
    def section(self) -> StrategyConfig:
        return self.settings.strategies[self.name]


class PluginStrategy(Protocol):
    """mevagent.core.Strategy plus what the agent reads from a running plug-in."""

    name: str
    chain: str
    consumes: tuple[type, ...]

    def on_head(self, head: Head) -> None: ...

    def on_events(self, events: Sequence[object]) -> list[Opportunity]: ...

    def counters(self) -> Sequence[int]:
        """Its declared counters since the agent started, in declaration order (never going back)."""
        ...

    def describe(self) -> str:
        """One log line: what it runs on (tokens, markets ...)."""
        ...


@dataclass(frozen=True)
class StrategyPlugin:
    name: str
    config: type[StrategyConfig]
    consumes: tuple[type, ...]
    state: tuple[str, ...]
    action: type
    route: str
    counters: tuple[Metric, ...]
    build: Callable[[StrategyContext], PluginStrategy]
    unavailable: Callable[[StrategyContext], str] = lambda _ctx: ""
    open_route: Callable[[StrategyContext], Awaitable[Executor]] | None = None
    default_on: bool = False  # configured (with its defaults) when the agent's config has no strategies

    def why_not(self, ctx: StrategyContext) -> str:
        """Why this strategy does not run on ctx.chain ("" when it does)."""
        section = ctx.settings.strategies.get(self.name)
        if section is None or not section.enabled:
            return "not enabled"
        if not section.applies_to(ctx.chain.name):
            return f"strategies.{self.name}.chains does not name it"
        missing = [s for s in self.state if s not in ctx.state]
        if missing:
            return f"the chain keeps no {', '.join(missing)} state"
        return self.unavailable(ctx)


class PluginError(Exception):
    """Two plug-ins share a name, or an entry point is not a StrategyPlugin."""


@functools.cache
def plugins() -> dict[str, StrategyPlugin]:
    """Every installed strategy plug-in by name: this package's modules, then entry points."""
    found: dict[str, StrategyPlugin] = {}

    def add(plugin: object, origin: str) -> None:
        if not isinstance(plugin, StrategyPlugin):
            raise PluginError(f"{origin}: PLUGIN is not a mevagent.strategies.StrategyPlugin")
        if plugin.name in found:
            raise PluginError(f"{origin}: a strategy called {plugin.name!r} is already installed")
        found[plugin.name] = plugin

    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "PLUGIN"):
            add(module.PLUGIN, module.__name__)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        add(point.load(), f"entry point {point.name}")
    return found


def plugin(name: str) -> StrategyPlugin:
    return plugins()[name]
