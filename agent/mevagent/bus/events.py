"""The one definition of what passes between the agents and the fleet control plane (Redis Streams).

Events go agent → control plane, commands control plane → agent. Both sides import these models, so
a field renamed on one side cannot silently mean nothing on the other. Every message carries an `id`
(a random 128-bit hex string made when it is created): the control plane writes an event at most once
by that id, and an agent applies a command at most once by it, so any redelivery (the spool replayed
after Redis came back, a stream entry re-read after a crash) is harmless.

Money is exact: token amounts and gas are integers in base units (wei, the token's smallest unit),
carried as JSON strings so that no JSON reader rounds them. A USD figure is a valuation derived from
such an amount and is always sent with the price it used (`*_usd_per_unit`, USD per base unit), as a
decimal string.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter, model_validator

from mevagent.analytics.models import BlockClassification

# An integer of any size, sent as a string (JSON numbers above 2**53 are not exact in every reader).
BaseUnits = Annotated[int, Field(ge=0), PlainSerializer(str, return_type=str, when_used="json")]
SignedUnits = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]
Usd = Annotated[Decimal, Field(allow_inf_nan=False), PlainSerializer(str, return_type=str, when_used="json")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
TxHash = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$")]
# What an execution sent: an EVM transaction hash, or a Solana transaction's first signature (base58, 64 bytes).
SentTx = Annotated[str, Field(pattern=r"^(0x[0-9a-f]{64}|[1-9A-HJ-NP-Za-km-z]{64,88})$")]
MessageId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def new_id() -> str:
    return uuid.uuid4().hex


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: MessageId = Field(default_factory=new_id)
    at: float = Field(default_factory=time.time, ge=0, allow_inf_nan=False)  # unix seconds, the sender's clock


class Event(Message):
    agent: Name  # the host's agent that sent it
    # Durable events go through the agent's on-disk spool and are never dropped; the others are best
    # effort (dropped, and counted, when the publisher's queue is full or Redis is away).
    durable: bool = False


# ---- events (agent → control plane) ---------------------------------------------------------------


class OpportunityFound(Event):
    kind: Literal["opportunity_found"] = "opportunity_found"
    chain: Name
    strategy: Name
    opportunity_id: str = Field(max_length=200)
    block: int = Field(ge=0)
    token: str = Field(max_length=64)  # the token the cycle starts and ends in
    amount_in: BaseUnits
    amount_out: BaseUnits
    gas_limit: BaseUnits
    gas_price_wei: BaseUnits
    builder_payment_wei: BaseUnits = 0
    token_usd_per_unit: Usd  # USD per base unit of `token`: the price the valuations below used
    notional_usd: Usd
    profit_usd: Usd  # gross, before gas
    gas_cost_usd: Usd
    hops: int = Field(ge=1, le=16)
    # The pools of the cycle, in hop order (lower-case addresses): what the competition analytics match
    # against the arbitrages other searchers landed.
    pools: tuple[str, ...] = Field(default=(), max_length=16)
    # A liquidation's position owner (lower case): matched against the liquidations others landed.
    liquidated_user: str = Field(default="", max_length=64)


class OpportunitySkipped(Event):
    """The risk gate refused it (or a check before it did): nothing was signed."""

    kind: Literal["opportunity_skipped"] = "opportunity_skipped"
    chain: Name
    strategy: Name
    opportunity_id: str = Field(max_length=200)
    block: int = Field(ge=0)
    limit: str = Field(max_length=64)  # the refusal's first word: the limit that refused it
    reason: str = Field(max_length=1000)


class ExecutionSent(Event):
    """Signed transactions left the agent (bundle to builders, or to a sequencer). Published as soon as a
    builder or the sequencer accepted them (the executor's sent_observer), so an execution waiting for its
    receipt shows as stuck; one not reported then is published with its outcome."""

    kind: Literal["execution_sent"] = "execution_sent"
    durable: bool = True
    chain: Name
    strategy: Name
    opportunity_id: str = Field(max_length=200)
    block: int = Field(ge=0)  # the block the opportunity was found in
    tx_hashes: tuple[SentTx, ...] = Field(min_length=1)
    found_at: float = Field(ge=0, allow_inf_nan=False)  # unix seconds the strategy found it


class ExecutionOutcome(Event):
    """What became of an execution: realized profit and gas in base units, and their USD valuations."""

    kind: Literal["outcome"] = "outcome"
    durable: bool = True
    chain: Name
    strategy: Name
    opportunity_id: str = Field(max_length=200)
    block: int = Field(ge=0)
    status: Literal["dry_run", "landed", "reverted", "failed", "rejected"]
    token: str = Field(max_length=64)
    amount_in: BaseUnits
    realized_profit: SignedUnits  # in `token` base units, gross (negative: the trade lost tokens)
    gas_paid_wei: BaseUnits  # gas and builder payment actually paid, in the native token's wei
    builder_paid_wei: BaseUnits = 0  # of gas_paid_wei: what went to the builder (coinbase transfer, Jito tip)
    token_usd_per_unit: Usd
    native_usd_per_wei: Usd
    realized_profit_usd: Usd
    gas_cost_usd: Usd
    builder_paid_usd: Usd = Decimal(0)  # of gas_cost_usd: the builder payment, at native_usd_per_wei
    tx_hashes: tuple[SentTx, ...] = ()
    included_block: int | None = Field(default=None, ge=0)  # the receipt's block (landed or reverted)
    reason: str = Field(default="", max_length=1000)
    found_at: float = Field(ge=0, allow_inf_nan=False)
    settled_at: float = Field(ge=0, allow_inf_nan=False)
    # What an optimal sandwich could have taken from it had it gone to the public mempool (mevagent.analytics
    # .protection), in `token` base units and in USD at `token_usd_per_unit`; None when it could not be priced.
    sandwich_exposure: BaseUnits | None = None
    sandwich_exposure_usd: Usd | None = None

    @property
    def net_usd(self) -> Decimal:
        return self.realized_profit_usd - self.gas_cost_usd


class ExposureSnapshot(Event):
    """The agent's risk gate as it stands: in-flight exposure and the UTC day's net, USD."""

    kind: Literal["exposure"] = "exposure"
    total_usd: Usd
    by_chain: dict[Name, Usd] = {}
    by_token: dict[str, Usd] = {}  # "chain:token"
    daily_pnl_usd: dict[Name, Usd] = {}  # per chain, since 00:00 UTC
    in_flight: int = Field(ge=0)
    emergency_stop: bool
    paused_strategies: tuple[str, ...] = ()


class GasPrices(Event):
    """One chain's fee market at `block`: base fee and priority-fee percentiles of recent blocks, wei."""

    kind: Literal["gas_prices"] = "gas_prices"
    chain: Name
    block: int = Field(ge=0)
    base_fee_wei: BaseUnits
    priority_fee_p50_wei: BaseUnits
    priority_fee_p90_wei: BaseUnits
    priority_fee_p99_wei: BaseUnits


class Latency(Event):
    """Node round trip and the agent's pipeline stages, seconds."""

    kind: Literal["latency"] = "latency"
    chain: Name
    rpc_round_trip_s: float = Field(ge=0, allow_inf_nan=False)
    stages: dict[str, float] = {}  # stage name → seconds of the last measurement window's p99


class Heartbeat(Event):
    kind: Literal["heartbeat"] = "heartbeat"
    chains: tuple[Name, ...]
    live_chains: tuple[Name, ...]
    lease_fresh: bool
    lease_expires_in_s: float = Field(allow_inf_nan=False)
    emergency_stop: bool
    spool_pending: int = Field(ge=0)
    dropped: int = Field(ge=0)  # best-effort events dropped since the agent started
    api_url: str = Field(default="", max_length=200)
    # Per chain, the node's peer count (net_peerCount) and its consensus client's (the beacon API's
    # connected peers) where the chain has one; a chain is absent while its node does not say.
    peers: dict[Name, Annotated[int, Field(ge=0)]] = Field(default={}, max_length=32)
    beacon_peers: dict[Name, Annotated[int, Field(ge=0)]] = Field(default={}, max_length=32)


class CommandAck(Event):
    """The agent applied (ok) or refused a command it received on the bus."""

    kind: Literal["command_ack"] = "command_ack"
    durable: bool = True
    command_id: MessageId
    command: str = Field(max_length=64)
    ok: bool
    detail: str = Field(default="", max_length=1000)


class BlockClassified(Event):
    """One block of `chain` as the agent's live classifier read it, after the hot path (mevagent.analytics).

    Best effort: a block whose event was dropped is filled in by a backfill. Lean (mevagent.analytics.publish
    .lean): the MEV found, with only the swaps and payments of its transactions (and its victims' swaps) and
    no transfers (the bulk of a block, not needed by the control plane); `classification.prices` are the USD
    prices the agent had.
    The control plane keeps one classification per (chain, block): a newer one (a reorg) replaces it, an
    older or the same one is ignored."""

    kind: Literal["block_classified"] = "block_classified"
    chain: Name
    classification: BlockClassification


class TransactionReplaced(Event):
    """What the agent did with a `replace_transaction` command: the replacement it signed and sent at the
    stuck transaction's nonce (ok), or why it did not (the transaction was mined meanwhile, is not its own,
    a limit refused it); then, for one sent, what became of it on chain (`receipt`). The stuck list
    shows the latest of these for each transaction."""

    kind: Literal["transaction_replaced"] = "transaction_replaced"
    durable: bool = True
    command_id: MessageId
    chain: Name
    tx_hash: TxHash  # the stuck transaction
    action: Literal["replace", "cancel"]
    ok: bool
    nonce: int | None = Field(default=None, ge=0)
    replacement_hash: TxHash | None = None
    max_fee_per_gas_wei: BaseUnits | None = None  # of the replacement (its gasPrice on a legacy chain)
    max_priority_fee_per_gas_wei: BaseUnits | None = None
    detail: str = Field(default="", max_length=1000)
    # Published a second time (same command_id) once the replacement settled on chain: its receipt
    # (`landed`, `reverted`) and block, or `superseded` when another transaction took the nonce.
    receipt: Literal["landed", "reverted", "superseded"] | None = None
    included_block: int | None = Field(default=None, ge=0)


class SandwichRiskSeen(Event):
    """A pending swap the agent's sandwich detector found sandwichable (mevagent.analytics.monitor): a risk
    signal, never acted on. The control plane matches it with the sandwiches and JIT liquidity the classifiers
    later found around that transaction (who took it, and at what price). Best effort."""

    kind: Literal["sandwich_risk"] = "sandwich_risk"
    chain: Name
    tx_hash: TxHash  # the pending (victim) transaction
    sender: str = Field(default="", max_length=42)  # its `from`, lower case
    router: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    pool: str = Field(pattern=r"^0x[0-9a-f]{40}$")  # the pool an optimal sandwich would use
    token_in: str = Field(max_length=64)
    token_out: str = Field(max_length=64)
    amount_in: BaseUnits
    amount_out: BaseUnits  # the quote on the state it was scored against
    limit: BaseUnits  # amountOutMin (exact input) or amountInMax (exact output)
    price_impact_bps: float = Field(allow_inf_nan=False)
    slippage_bps: float = Field(allow_inf_nan=False)
    profit_token: str = Field(max_length=64)
    max_profit: BaseUnits  # what the optimal sandwich nets, before gas
    frontrun_amount_in: BaseUnits
    profit_usd_per_unit: Usd | None = None  # the agent's price of `profit_token`, where it has one


class DepthPoint(BaseModel):
    """What the pool pays out for `amount_in` (exact, as its contract computes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_in: BaseUnits
    amount_out: BaseUnits


# Uniswap V3's tick bounds (mevagent.amm.v3.tick_math) and the most ticks one PairPrice carries.
_MIN_TICK, _MAX_TICK = -887_272, 887_272
MAX_V3_TICKS = 4096


class V3Tick(BaseModel):
    """One initialized tick of a V3 pool: the liquidity added (removed, when negative) crossing it upwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick: int = Field(ge=_MIN_TICK, le=_MAX_TICK)
    liquidity_net: SignedUnits


class V3Quote(BaseModel):
    """A concentrated-liquidity pool as exactly as a quote within [tick_lower, tick_upper] needs it: slot0's
    price and tick, the active liquidity, the fee (in millionths) and spacing, and every initialized tick in
    that range with its liquidityNet (also those whose liquidityNet is 0: a swap step stops at them all the
    same). The range is whole tick-bitmap words around the current tick (mevagent.crosschain.prices), so a
    swap simulated over these ticks steps as the pool does; a quote whose price would leave the range is
    unknown beyond it and must be refused, not guessed (the engine quotes with the range's edge as the
    swap's price limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sqrt_price_x96: BaseUnits
    liquidity: BaseUnits
    tick: int = Field(ge=_MIN_TICK, le=_MAX_TICK)
    fee: int = Field(ge=0, lt=1_000_000)  # of an input, in millionths
    tick_spacing: int = Field(gt=0, le=16_384)
    tick_lower: int = Field(ge=_MIN_TICK, le=_MAX_TICK)
    tick_upper: int = Field(ge=_MIN_TICK, le=_MAX_TICK)
    ticks: tuple[V3Tick, ...] = Field(default=(), max_length=MAX_V3_TICKS)  # ascending
    base_is_token0: bool  # the pair's base token is the pool's token0 (selling base is zeroForOne)

    @model_validator(mode="after")
    def _consistent(self) -> V3Quote:
        if not self.tick_lower <= self.tick <= self.tick_upper:
            raise ValueError(f"tick {self.tick} is outside the published range [{self.tick_lower}, {self.tick_upper}]")
        previous = None
        for t in self.ticks:
            if t.tick % self.tick_spacing or not self.tick_lower <= t.tick <= self.tick_upper:
                raise ValueError(f"tick {t.tick}: off spacing {self.tick_spacing} or outside the published range")
            if previous is not None and t.tick <= previous:
                raise ValueError("ticks must be ascending and unique")
            previous = t.tick
        return self


class PairPrice(Event):
    """One tracked pair's pool as it stands after `block`, from the agent's exact pool state (mevagent
    .crosschain.prices): the reserves and fees the cross-chain engine sizes with (the same exact AMM math),
    the marginal price and the depth at the configured sizes. Published only when the price moved; best
    effort, on a stream of its own (PRICE_STREAM) read by the cross-chain engine, not stored.

    A Uniswap V3 pool (or fork) carries `v3`, which is what the engine quotes it with; its reserves are then
    the virtual reserves of the current range (L / sqrtP and L * sqrtP, rounded down: informative only), its
    fees the pool's fee over 1,000,000. Without `v3` (every event before V3 was published) it is a
    constant-product pool."""

    kind: Literal["pair_price"] = "pair_price"
    chain: Name
    block: int = Field(ge=0)
    pool: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    fork: str = Field(max_length=64)
    base: str = Field(pattern=r"^0x[0-9a-f]{40}$")  # token addresses, lower case
    quote: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    reserve_base: BaseUnits
    reserve_quote: BaseUnits
    fee_base_in: int = Field(ge=0)  # charged on an input of base, over fee_denominator
    fee_quote_in: int = Field(ge=0)
    fee_denominator: int = Field(gt=0)
    price: Usd  # marginal: quote base units per base base unit, before fees
    buy: tuple[DepthPoint, ...] = ()  # quote in → base out, at the configured quote sizes
    sell: tuple[DepthPoint, ...] = ()  # base in → quote out, at the configured base sizes
    v3: V3Quote | None = None  # a concentrated-liquidity pool: what a quote needs (see above)


class InventoryBalances(Event):
    """An inventory account's balances on one chain at `block` (ERC-20 `balanceOf`, base units) of the tokens of
    the agent's tracked pairs (mevagent.crosschain.inventory): published when one changed, and again every so
    many blocks, on the price stream (best effort, not stored). The control plane's rebalancing planner keeps the
    latest per chain and account (mevcontrol.rebalance)."""

    kind: Literal["inventory"] = "inventory"
    chain: Name
    block: int = Field(ge=0)
    account: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    balances: dict[Annotated[str, Field(pattern=r"^0x[0-9a-f]{40}$")], BaseUnits] = Field(max_length=256)


class CrossChainLegResult(Event):
    """What became of one inventory leg the control plane sent (CrossChainLegCommand): the agent's own risk
    gate and dry-run default applied; amounts exact, in base units. `amount_out` is what the swap paid (the
    receipt's transfer to the agent), or the simulation's answer in dry-run; 0 when nothing was swapped."""

    kind: Literal["crosschain_leg"] = "crosschain_leg"
    durable: bool = True
    command_id: MessageId
    position_id: MessageId
    leg: Literal["buy", "sell", "unwind"]
    chain: Name
    status: Literal["dry_run", "landed", "reverted", "failed", "rejected"]
    token_in: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    token_out: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    amount_in: BaseUnits
    amount_out: BaseUnits
    gas_paid_wei: BaseUnits = 0
    tx_hash: TxHash | None = None
    reason: str = Field(default="", max_length=1000)
    # The agent's clock: when the command reached its leg executor, and when a builder or the sequencer
    # accepted the signed swap (None: nothing was sent). Against the decision's time: the leg's latency.
    received_at: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    sent_at: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ProviderLiquidity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(max_length=64)
    available: BaseUnits  # what the provider can lend now, in the token's smallest unit


class ProviderReport(BaseModel):
    """One flashloan provider as the agent's FlashMonitor sees it (mevagent.api.providers.ProviderStatus)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Name
    provider: Name
    protocol: str = Field(max_length=32)
    pool: str | None = Field(default=None, max_length=64)
    fee_bps: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    healthy: bool
    detail: str = Field(default="", max_length=500)
    last_update_block: int | None = Field(default=None, ge=0)
    last_update_age_s: float | None = Field(default=None, allow_inf_nan=False)
    liquidity: tuple[ProviderLiquidity, ...] = Field(default=(), max_length=256)


class ProvidersStatus(Event):
    """The agent's flashloan providers (its GET /providers/status), every PROVIDERS_EVERY_S by the heartbeat
    task (mevagent.bus.link), best effort. The control plane keeps the latest report per agent in memory
    and serves the fleet's /providers/status from it (mevcontrol.flashloans)."""

    kind: Literal["providers_status"] = "providers_status"
    providers: tuple[ProviderReport, ...] = Field(default=(), max_length=256)


AnyEvent = Annotated[
    OpportunityFound
    | OpportunitySkipped
    | ExecutionSent
    | ExecutionOutcome
    | ExposureSnapshot
    | GasPrices
    | Latency
    | Heartbeat
    | CommandAck
    | BlockClassified
    | TransactionReplaced
    | SandwichRiskSeen
    | PairPrice
    | InventoryBalances
    | ProvidersStatus
    | CrossChainLegResult,
    Field(discriminator="kind"),
]
EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)


# ---- commands (control plane → agent) -------------------------------------------------------------


class Command(Message):
    issued_by: str = Field(default="control", max_length=64)  # the operator (or "control" for leases)


class EmergencyStopCommand(Command):
    kind: Literal["emergency_stop"] = "emergency_stop"
    reason: str = Field(min_length=1, max_length=500)


class EmergencyResumeCommand(Command):
    kind: Literal["emergency_resume"] = "emergency_resume"


class PauseStrategyCommand(Command):
    kind: Literal["pause_strategy"] = "pause_strategy"
    strategy: Name


class ResumeStrategyCommand(Command):
    kind: Literal["resume_strategy"] = "resume_strategy"
    strategy: Name


class SetLimitsCommand(Command):
    """A partial change of the agent's RiskLimits (the agent validates the merged whole)."""

    kind: Literal["set_limits"] = "set_limits"
    changes: dict[str, float] = Field(min_length=1)


class LeaseGrant(Command):
    """Live signing on `chains` is allowed until `ttl_s` after the agent received this (never beyond
    `at + ttl_s` by the sender's clock either, so a grant delayed in a queue cannot extend a lease)."""

    kind: Literal["lease_grant"] = "lease_grant"
    agent: Name
    ttl_s: float = Field(gt=0, le=3600, allow_inf_nan=False)
    chains: tuple[Name, ...] = ()


class ReplaceTransactionCommand(Command):
    """Re-sign a stuck transaction of `agent` at its nonce, fees raised by at least `bump_percent` (the
    nodes' replacement rule asks +10 % on both fee caps): `replace` keeps its call, `cancel` sends 0 to
    the sender itself. Only the agent named acts on it (each agent reads only its own command stream)."""

    kind: Literal["replace_transaction"] = "replace_transaction"
    agent: Name
    chain: Name
    tx_hash: TxHash
    action: Literal["replace", "cancel"]
    bump_percent: float = Field(default=12.5, ge=10, le=200, allow_inf_nan=False)


class CrossChainLegCommand(Command):
    """One inventory leg of a cross-chain position (mevcontrol.positions): swap exactly `amount_in` of
    `token_in` for at least `min_out` of `token_out` in the V2 or V3 pool `pool` on `chain`, from the agent's own
    inventory, through its risk gate (an `unwind` leg is checked as one that reduces exposure) and its
    dry-run default. Not signed after `deadline` (unix seconds), which is also the swap's own deadline.
    Answered by a durable `crosschain_leg` event."""

    kind: Literal["crosschain_leg"] = "crosschain_leg"
    agent: Name
    chain: Name
    position_id: MessageId
    leg: Literal["buy", "sell", "unwind"]
    pool: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    token_in: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    token_out: str = Field(pattern=r"^0x[0-9a-f]{40}$")
    amount_in: BaseUnits
    expected_out: BaseUnits  # at the prices the decision used
    min_out: BaseUnits
    # None: a V2 pool, through the chain's Router02; else a V3 pool of this fee (millionths), through the
    # chain's V3 SwapRouter (`exactInputSingle`), which finds the pool by (tokens, fee) from its factory.
    v3_fee: int | None = Field(default=None, ge=0, lt=1_000_000)
    gas_limit: BaseUnits
    notional_usd: Usd  # the value of amount_in: what the gate's position and exposure limits count
    profit_usd: Usd  # this leg's share of the position's expected profit (negative for an unwind)
    native_usd: Usd  # USD per whole native coin of `chain`: the gas valuation
    deadline: float = Field(gt=0, allow_inf_nan=False)


AnyCommand = Annotated[
    EmergencyStopCommand
    | EmergencyResumeCommand
    | PauseStrategyCommand
    | ResumeStrategyCommand
    | SetLimitsCommand
    | LeaseGrant
    | ReplaceTransactionCommand
    | CrossChainLegCommand,
    Field(discriminator="kind"),
]
COMMAND: TypeAdapter[Any] = TypeAdapter(AnyCommand)


# ---- the wire ---------------------------------------------------------------------------------------

# Stream names on the fleet's Redis.
DURABLE_STREAM = "mev:events:durable"  # executions, outcomes, command acks: deleted only after commit
BEST_EFFORT_STREAM = "mev:events"  # the rest, trimmed to BEST_EFFORT_MAXLEN
BEST_EFFORT_MAXLEN = 1_000_000
# Pair prices: read live by the cross-chain engine (XREAD from its last id), never stored; a short tail.
PRICE_STREAM = "mev:prices"
PRICE_MAXLEN = 100_000
COMMAND_STREAM_MAXLEN = 10_000
FIELD = "e"  # each stream entry is one field holding the message's JSON


def command_stream(agent: str) -> str:
    return f"mev:commands:{agent}"


def stream_of(event: Event) -> tuple[str, int]:
    """The best-effort stream an event goes to, and that stream's MAXLEN."""
    if isinstance(event, PairPrice | InventoryBalances):
        return PRICE_STREAM, PRICE_MAXLEN
    return BEST_EFFORT_STREAM, BEST_EFFORT_MAXLEN


def encode(message: Message) -> bytes:
    return message.__pydantic_serializer__.to_json(message)


def decode_event(raw: bytes | str) -> Event:
    return EVENT.validate_python(orjson.loads(raw))


def decode_command(raw: bytes | str) -> Command:
    return COMMAND.validate_python(orjson.loads(raw))
