"""Settings an operator may change at run time (gas, profit, per-strategy thresholds), shared by reference.

Strategies and the executor read `settings.gas` / `settings.strategies[name]` when they need them, or
subscribe to be told; the API replaces whole validated models, so a reader never sees half an update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mevagent.config import AgentConfig, GasSettings, ProfitSettings, StrategyConfig

Listener = Callable[["LiveSettings"], None]


class LiveSettings:
    def __init__(self, gas: GasSettings, profit: ProfitSettings, strategies: Mapping[str, StrategyConfig]) -> None:
        self.gas = gas
        self.profit = profit
        self.strategies: dict[str, StrategyConfig] = dict(strategies)
        self._listeners: list[Listener] = []

    @classmethod
    def from_config(cls, config: AgentConfig) -> LiveSettings:
        return cls(config.gas, config.profit, config.strategies)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def replace(
        self,
        *,
        gas: GasSettings | None = None,
        profit: ProfitSettings | None = None,
        strategies: Mapping[str, StrategyConfig] | None = None,
    ) -> None:
        if gas is not None:
            self.gas = gas
        if profit is not None:
            self.profit = profit
        if strategies is not None:
            self.strategies = dict(strategies)
        for listener in self._listeners:
            listener(self)
