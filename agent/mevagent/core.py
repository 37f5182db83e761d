"""The agent's pipeline vocabulary: what flows between collectors, strategies, the risk gate and executors.

Collectors turn the node's stream into `Head`s and `PoolUpdate`s; strategies turn pool updates into
`Opportunity`s; the executor asks the risk gate about each one before it signs anything and reports an
`Outcome`. Every stage is a small interface (a new strategy is one file that implements `Strategy`).
Amounts are integers in the token's smallest unit and wei, exactly as the contracts compute them; USD
figures exist only for risk limits and metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Head:
    """A new canonical head, as the node announced it (`newHeads`)."""

    chain: str
    number: int
    hash: str  # 0x-prefixed, lower case
    parent_hash: str
    timestamp: int  # seconds
    base_fee: int  # wei; 0 on chains without EIP-1559


@dataclass(frozen=True, slots=True)
class PoolUpdate:
    """Pool `pool` on `chain` changed in `block`: its state in the pool store is already current.

    Queues coalesce these by (chain, pool): only the latest matters to a strategy.
    """

    chain: str
    pool: str  # 0x-prefixed, lower case
    block: int
    seen_ns: int  # time.perf_counter_ns() when the collector received the log

    @property
    def key(self) -> tuple[str, str]:
        return (self.chain, self.pool)


@dataclass(frozen=True, slots=True)
class Hop:
    """One swap of a cycle: `amount_in` of `token_in` into `pool`, out comes `token_out`."""

    pool: str
    kind: str  # "v2" or "v3"
    token_in: str
    token_out: str


@dataclass(frozen=True, slots=True)
class Opportunity:
    """A verified cycle: the exact integer amounts were re-simulated hop by hop after sizing."""

    chain: str
    strategy: str
    block: int  # the state it was computed on; stale once the head moves on
    hops: tuple[Hop, ...]
    amount_in: int  # of hops[0].token_in
    amount_out: int  # of the same token, after the last hop
    gas_limit: int
    gas_price: int  # wei per gas it would pay (base fee + priority)
    builder_payment: int  # wei paid to the builder (coinbase transfer), 0 when none
    notional_usd: float  # value of amount_in, for position limits
    profit_usd: float  # (amount_out - amount_in) in USD, before gas
    gas_cost_usd: float  # gas_limit * gas_price + builder_payment, in USD
    found_ns: int  # perf_counter_ns when the strategy found it
    id: str = ""  # stable id of (chain, block, hops, amount_in): no duplicate submission

    @property
    def token(self) -> str:
        return self.hops[0].token_in

    @property
    def gross_profit(self) -> int:
        return self.amount_out - self.amount_in

    @property
    def net_profit_usd(self) -> float:
        return self.profit_usd - self.gas_cost_usd


class Status(enum.StrEnum):
    DRY_RUN = "dry_run"  # simulated only: what it would have earned is in the outcome
    LANDED = "landed"
    REVERTED = "reverted"
    FAILED = "failed"  # not included by any builder before the target blocks passed, or send failed
    REJECTED = "rejected"  # the risk gate refused it; nothing was signed


@dataclass(frozen=True, slots=True)
class Outcome:
    opportunity: Opportunity
    status: Status
    realized_profit_usd: float = 0.0  # gross, when it landed (or simulated, in dry-run)
    gas_cost_usd: float = 0.0  # what was actually paid, 0 when nothing was included
    reason: str = ""  # why it was rejected or failed
    tx_hashes: tuple[str, ...] = field(default_factory=tuple)


Emit = Callable[[object], Awaitable[None]]


class Collector(Protocol):
    """Feeds the pipeline: calls `emit` with `Head`s and `PoolUpdate`s until cancelled."""

    name: str

    async def run(self, emit: Emit) -> None: ...


class Strategy(Protocol):
    """Finds opportunities. Pure computation on the pool store: no I/O on the hot path."""

    name: str

    def on_head(self, head: Head) -> None: ...

    def on_pool_updates(self, updates: Sequence[PoolUpdate]) -> list[Opportunity]: ...


class Executor(Protocol):
    """Executes (or, in dry-run, simulates) one opportunity; asks the risk gate before signing."""

    async def execute(self, opportunity: Opportunity) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""  # names the limit that refused it, e.g. "max_position_size: 12000 > 10000 USD"


class RiskCheck(Protocol):
    """The risk gate as the executor sees it: the only way to an execution.

    `check` is called immediately before signing; when it allows, it reserves the opportunity's
    exposure. `record` is called exactly once per allowed opportunity with its outcome: it releases
    the reservation and books profit, gas and failures (daily loss, drawdown, circuit breaker).
    """

    def check(self, opportunity: Opportunity) -> Decision: ...

    def record(self, outcome: Outcome) -> None: ...
