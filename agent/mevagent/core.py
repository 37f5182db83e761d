"""The agent's pipeline vocabulary: what flows between collectors, strategies, the risk gate and executors.

Collectors turn the node's stream into events: `Head`s, `PoolUpdate`s, `OracleUpdate`s, `LendingEvent`s
and pending transactions. Each event class declares how the engine's queue treats it when the strategies
lag: `key` is the coalescing key (latest wins: a pool's or a feed's current state is already in its
store) or None (every one is kept, the oldest dropped first when too many are pending: a borrow or a
liquidation cannot be re-derived from a later one). Strategies declare the event classes they consume
and turn them into `Opportunity`s, each naming the executor `route` that carries it out; the executor
asks the risk gate about each one before it signs anything and reports an `Outcome`. A strategy is a
plug-in (mevagent.strategies): the engine and the router only see these interfaces. Amounts are
integers in the token's smallest unit and wei, exactly as the contracts compute them; USD figures exist
only for risk limits and metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Head:
    """A new canonical head, as the node announced it (`newHeads`)."""

    kind: ClassVar[str] = "heads"

    chain: str
    number: int
    hash: str  # 0x-prefixed, lower case
    parent_hash: str
    timestamp: int  # seconds
    base_fee: int  # wei; 0 on chains without EIP-1559

    @property
    def key(self) -> tuple[str, str]:
        return ("head", self.chain)


@dataclass(frozen=True, slots=True)
class PoolUpdate:
    """Pool `pool` on `chain` changed in `block`: its state in the pool store is already current.

    Queues coalesce these by (chain, pool): only the latest matters to a strategy.
    """

    kind: ClassVar[str] = "pool_updates"

    chain: str
    pool: str  # 0x-prefixed, lower case
    block: int
    seen_ns: int  # time.perf_counter_ns() when the collector received the log

    @property
    def key(self) -> tuple[str, str]:
        return (self.chain, self.pool)


@dataclass(frozen=True, slots=True)
class OracleUpdate:
    """Price feed `feed` on `chain` answered `answer` in `block` (Chainlink-style `AnswerUpdated`).

    Coalesced by (chain, feed): a position is valued at the feed's latest answer, never an older one.
    """

    kind: ClassVar[str] = "oracle_updates"

    chain: str
    feed: str  # the aggregator that emitted it, 0x-prefixed, lower case
    answer: int  # in the feed's own decimals
    block: int
    seen_ns: int

    @property
    def key(self) -> tuple[str, str, str]:
        return ("oracle", self.chain, self.feed)


@dataclass(frozen=True, slots=True)
class LendingEvent:
    """A lending market's log (supply, borrow, repay, withdraw, liquidation, reserve update), decoded.

    Never coalesced: each one changes a position by an amount that no later event repeats.
    """

    kind: ClassVar[str] = "lending_events"

    chain: str
    protocol: str  # the market's name in the chain's catalog, e.g. "aave_v3"
    market: str  # the pool (or comptroller) that emitted it
    event: str  # "Supply", "Borrow", "Repay", "Withdraw", "LiquidationCall", "ReserveDataUpdated", ...
    user: str  # the position's owner ("" for reserve-wide events)
    block: int
    log_index: int
    seen_ns: int
    args: tuple[tuple[str, int | str], ...] = ()  # the decoded arguments, by name

    @property
    def key(self) -> None:
        return None


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
    route: str = ""  # the executor route that carries it out (its strategy plug-in declares it)

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
    # What an optimal sandwich could have taken from this execution had it gone to the public mempool
    # (mevagent.analytics.protection), in the cycle's token and in USD; None: not computed or unpriced.
    sandwich_exposure: int | None = None
    sandwich_exposure_usd: float | None = None
    # Of gas_cost_usd: what went to the builder (the coinbase transfer, a Jito tip), 0 when nothing did.
    builder_paid_usd: float = 0.0


Emit = Callable[[object], Awaitable[None]]


class Event(Protocol):
    """What collectors emit: a chain, when it was seen, and its queue policy (`key`: see the module doc)."""

    kind: ClassVar[str]  # its counter name in the engine, e.g. "pool_updates"
    chain: str
    seen_ns: int

    @property
    def key(self) -> Hashable | None: ...


class Collector(Protocol):
    """Feeds the pipeline: calls `emit` with events until cancelled."""

    name: str

    async def run(self, emit: Emit) -> None: ...


class Strategy(Protocol):
    """Finds opportunities on one chain. Pure computation on local state: no I/O on the hot path.

    `consumes` names the event classes it is handed (heads always reach `on_head`); the engine gives it
    only its own chain's events of those classes, in one batch per queue drain.
    """

    name: str
    chain: str
    consumes: tuple[type, ...]

    def on_head(self, head: Head) -> None: ...

    def on_events(self, events: Sequence[object]) -> list[Opportunity]: ...


class Executor(Protocol):
    """Executes (or, in dry-run, simulates) one opportunity; asks the risk gate before signing.

    `head`: the node's block number when the caller has just read it (one round trip fewer)."""

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""  # names the limit that refused it, e.g. "max_position_size: 12000 > 10000 USD"


class RiskCheck(Protocol):
    """The risk gate as the executor sees it: the only way to an execution.

    `check` is called immediately before signing; when it allows, it reserves the opportunity's
    exposure. `record` is called exactly once per allowed opportunity with its outcome: it releases
    the reservation and books profit, gas and failures (daily loss, drawdown, circuit breaker).
    `unwind`: the trade closes an open cross-chain position (mevagent.crosschain.legs): it is expected to
    lose (its profit_usd is the loss it accepts), so a gate judges it as a trade that reduces exposure.
    """

    def check(self, opportunity: Opportunity, *, unwind: bool = False) -> Decision: ...

    def record(self, outcome: Outcome) -> None: ...
