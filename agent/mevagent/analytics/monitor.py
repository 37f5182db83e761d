"""The sandwich detector over a pending-transaction stream: decode, score, keep recent risk signals.

Detection only: a score is a risk signal for the operator (how much of the mempool is sandwichable,
and by how much); nothing here or downstream acts on it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mevagent import metrics_names as names
from mevagent.analytics.abi import quantity
from mevagent.analytics.routers import decode_swaps
from mevagent.analytics.sandwich_risk import PoolIndex, SandwichRisk, score_swap
from mevagent.bus.events import Event, SandwichRiskSeen
from mevagent.metrics import AgentMetrics
from mevagent.state.pools import PoolStore


class RouterSpec(BaseModel):
    """Which pools a router's routes run through: the fork names of the store's pools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v2_fork: str = "uniswap_v2"
    v3_fork: str = "uniswap_v3"


class DetectorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str
    routers: dict[str, RouterSpec]  # router address -> its pools
    window_s: float = Field(default=60.0, gt=0, le=3600)
    keep: int = Field(default=1000, ge=1, le=100_000)  # recent risk signals kept for /opportunities

    @field_validator("routers")
    @classmethod
    def _addresses(cls, routers: dict[str, RouterSpec]) -> dict[str, RouterSpec]:
        for address in routers:
            if len(address) != 42 or not address.startswith("0x"):
                raise ValueError(f"routers: {address!r} is not a 0x-prefixed 20-byte address")
            int(address, 16)
        return {a.lower(): spec for a, spec in routers.items()}


class RiskSignal(BaseModel):
    """One scored pending swap, as /opportunities lists it (never acted on)."""

    model_config = ConfigDict(frozen=True)

    tx_hash: str
    router: str
    seen_at: float
    risk: SandwichRisk


@dataclass
class SandwichMonitor:
    config: DetectorConfig
    store: PoolStore
    metrics: AgentMetrics | None = None
    # (this agent's name, the bus link's publish): each sandwichable swap also goes to the control plane, which
    # matches it with the sandwiches and JIT liquidity found around it (competition analytics).
    bus: tuple[str, Callable[[Event], None]] | None = None
    price: Callable[[str], float | None] | None = None  # USD per base unit (mevagent.pricing), when priced
    started: float = field(default_factory=time.time)
    recent: deque[RiskSignal] = field(init=False)
    counts: Counter[str] = field(default_factory=Counter)
    seen_times: deque[tuple[float, bool, bool]] = field(default_factory=deque)  # (time, decoded, sandwichable)
    score_ns: deque[int] = field(default_factory=lambda: deque(maxlen=10_000))
    _indexes: dict[tuple[str, str], tuple[int, PoolIndex]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.config.keep)

    def _index(self, spec: RouterSpec) -> PoolIndex:
        key = (spec.v2_fork, spec.v3_fork)
        cached = self._indexes.get(key)
        if cached is None or cached[0] != len(self.store):
            cached = (len(self.store), PoolIndex(self.store, spec.v2_fork, spec.v3_fork))
            self._indexes[key] = cached
        return cached[1]

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if self.metrics is not None:
            self.metrics.child(names.PENDING_SWAPS, self.config.chain, outcome).inc()

    def observe(self, tx: Mapping[str, Any], now: float | None = None) -> RiskSignal | None:
        """Score one pending transaction (eth_getTransactionByHash shape); None if it is not a scorable swap."""
        now = time.time() if now is None else now
        to = str(tx.get("to") or "").lower()
        spec = self.config.routers.get(to)
        decoded = sandwichable = False
        signal = None
        try:
            if spec is None:
                self._count("not_router")
                return None
            started = time.perf_counter_ns()
            swaps = decode_swaps(str(tx.get("input") or "0x"), quantity(tx.get("value") or "0x0", "value"))
            if not swaps:
                self._count("undecoded")
                return None
            decoded = True
            risk = score_swap(self._index(spec), swaps[0])
            self.score_ns.append(time.perf_counter_ns() - started)
            if risk is None:
                self._count("unknown_pool")
                return None
            self._count("scored")
            sandwichable = risk.max_profit > 0
            if sandwichable and self.metrics is not None:
                self.metrics.child(names.SANDWICHABLE_SWAPS, self.config.chain).inc()
            signal = RiskSignal(tx_hash=str(tx.get("hash") or "").lower(), router=to, seen_at=now, risk=risk)
            self.recent.append(signal)
            if sandwichable and self.bus is not None:
                self._publish(signal, str(tx.get("from") or "").lower())
            return signal
        finally:
            self.seen_times.append((now, decoded, sandwichable))
            self._expire(now)

    def _publish(self, signal: RiskSignal, sender: str) -> None:
        assert self.bus is not None
        agent, publish = self.bus
        risk = signal.risk
        unit = self.price(risk.profit_token) if self.price is not None else None
        try:
            event = SandwichRiskSeen(
                agent=agent, at=signal.seen_at, chain=self.config.chain, tx_hash=signal.tx_hash, sender=sender,
                router=signal.router, pool=risk.pool, token_in=risk.token_in, token_out=risk.token_out,
                amount_in=risk.amount_in, amount_out=risk.amount_out, limit=risk.limit,
                price_impact_bps=risk.price_impact_bps, slippage_bps=risk.slippage_bps,
                profit_token=risk.profit_token, max_profit=risk.max_profit, frontrun_amount_in=risk.frontrun_amount_in,
                profit_usd_per_unit=Decimal(repr(float(unit))) if unit is not None and unit > 0 else None,
            )  # fmt: skip
        except ValueError:  # a body the node served malformed (hash): a signal for /opportunities only
            return
        publish(event)

    def _expire(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self.seen_times and self.seen_times[0][0] < horizon:
            self.seen_times.popleft()

    def mempool_stats(self, now: float | None = None) -> dict[str, Any]:
        """Pending rate, decoded share and the distribution of sandwichable value over the window."""
        now = time.time() if now is None else now
        self._expire(now)
        seen = len(self.seen_times)
        decoded = sum(1 for _, d, _ in self.seen_times if d)
        sandwichable = sum(1 for _, _, s in self.seen_times if s)
        values: dict[str, list[int]] = {}
        horizon = now - self.config.window_s
        for signal in self.recent:
            if signal.seen_at >= horizon and signal.risk.max_profit > 0:
                values.setdefault(signal.risk.profit_token, []).append(signal.risk.max_profit)
        return {
            "chain": self.config.chain,
            "window_s": self.config.window_s,
            "pending_seen": seen,
            "pending_rate_per_s": seen / self.config.window_s,
            "decoded_share": decoded / seen if seen else 0.0,
            "sandwichable_share": sandwichable / decoded if decoded else 0.0,
            # Per profit token, in its base units (decimal strings): no price is assumed here.
            "sandwichable_value": {token: _distribution(v) for token, v in values.items()},
        }

    def stats(self) -> dict[str, Any]:
        timings = sorted(self.score_ns)
        return {
            "chain": self.config.chain,
            "uptime_s": time.time() - self.started,
            "pending": dict(self.counts),
            "sandwichable_recent": sum(1 for s in self.recent if s.risk.max_profit > 0),
            "score_us": {
                "p50": timings[len(timings) // 2] / 1000 if timings else None,
                "p99": timings[min(len(timings) - 1, len(timings) * 99 // 100)] / 1000 if timings else None,
            },
            "acts_on_signals": False,
        }


def _distribution(values: list[int]) -> dict[str, Any]:
    values = sorted(values)
    pick = lambda q: str(values[min(len(values) - 1, int(len(values) * q))])  # noqa: E731
    return {"count": len(values), "p50": pick(0.5), "p90": pick(0.9), "max": str(values[-1]), "sum": str(sum(values))}
