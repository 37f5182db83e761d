"""Aave V3 and V2 liquidations (V2: Aave V2 and its forks, Radiant): positions kept from the market's events,
re-evaluated on every price answer and at every head the monitor followed, each liquidatable one sized
exactly as the Pool's LiquidationLogic would and sent to its route. With the chain's ArbExecutor contract
configured the route plans it (mevagent.executor.liquidation: the debt flash-borrowed from the cheapest
provider, `liquidationCall`, the seized collateral swapped back through the pool store's best pool, the loan
repaid) and hands it to the chain's executor, which simulates it at the head and asks the risk gate before
signing; it is sent only on a live chain that `live_chains` names (a live chain it does not name does not
run the strategy). Without a contract it is only reported.

Events (from the chain's lending collector, mevagent.lending.monitor): `Reserve`, `AssetPrice` and
`MarketLoaded` after each load of the market, `ReserveDataUpdated`, the Pool's user events with the user's
scaled balances, `AssetSourceUpdated` with the price through the new source, and `OracleUpdate` for the
answers of the current sources (those `AssetPrice` and `AssetSourceUpdated` named), and `Head` once the
market's logs up to a head are applied. The PositionBook (mevagent.lending.aave_v3) answers which positions
a price answer made liquidatable, and at a head which ones are liquidatable with no answer (interest accrued
since they were last valued, or an event of the block that left them under 1): a head is valued after the
rest of its batch, and a position a price answer of the same block reported is not reported again; for each, the pair
liquidated is its largest debt against its largest collateral (by value in the oracle's base currency),
sized for the most debt the close factor allows. The profit is the seized collateral's value less the repaid
debt's, the flashloan premium on the repaid amount (the market's own premium, as if borrowed from it), the
gas at the head's base fee plus the configured priority fee, and on a chain that sends bundles the builder
payment: the configured `gas.builder_payment_share` of that profit (mevagent.strategies.builder_payment, as
dex_arb pays it), in wei; gas and the payment are valued at the oracle's price of the chain's wrapped_native
(a chain paying builders whose market does not price it emits nothing: the payment could not be valued).

Only the events of the market `market` names are taken, or of each market `markets` names (a chain may
list several, e.g. Aave V3 and Radiant on Arbitrum: each is kept apart, its own book, pool, premium and
price sources; an oracle answer is evaluated in every market that prices with that source). On a V2 market
(`protocol: aave_v2`) the reserves compound the V2 way and positions carry stable-rate debt
(mevagent.lending.aave_v2); a liquidation is sized by the V2 collateral manager's rules (half the debt
whatever the health factor, no protocol fee), and the premium estimate is V2's (truncated); the route and
the contract's `liquidate` are the same, `liquidationCall` having the same signature. Values in USD assume
the oracle answers in USD with 8 decimals, as Aave V3's and Radiant's do (Aave V2's Ethereum market
answers in ETH: its USD figures would be off, not its health factors or amounts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from mevagent import metrics_names as names
from mevagent.config import StrategyConfig
from mevagent.core import Head, Hop, LendingEvent, Opportunity, OracleUpdate, Outcome, Status
from mevagent.executor.funding import FlashProvider
from mevagent.executor.liquidation import FundedLiquidation, plan
from mevagent.lending.aave_v2 import ReserveV2
from mevagent.lending.aave_v3 import (
    AccountData,
    Position,
    PositionBook,
    Reserve,
    ReserveParams,
    StableDebt,
)
from mevagent.state.pools import PoolStore
from mevagent.strategies import StrategyContext, StrategyPlugin, builder_payment, builder_share_bps

ROUTE = "aave_liquidation"
# The risk parameters a `ReserveConfigured` event may carry (mevagent.lending.aave_reader.configuration_update).
CONFIGURED = ("ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee")
BASE_UNIT = 10**8  # the AaveOracle's USD base currency: 8 decimals
WAD = 10**18

FOUND = names.Metric(
    "mev_strategy_liquidations_found",
    "counter",
    "Liquidatable positions the liquidation strategy sized and emitted.",
    ("chain", "strategy"),
    sampled=True,
)
PRICE_ANSWERS = names.Metric(
    "mev_strategy_price_answers",
    "counter",
    "Price answers (oracle updates and source changes) the liquidation strategy evaluated.",
    ("chain", "strategy"),
    sampled=True,
)


def plan_found(
    found: LiquidationOpportunity, *, store: PoolStore, providers: Sequence[FlashProvider], min_net_usd: float
) -> tuple[FundedLiquidation | None, str]:
    """The liquidation the contract would run for a position the strategy found (its one hop: the market,
    the debt covered and the collateral seized), or why it cannot be run at a profit: `min_net_usd` (the
    strategy's min_profit_threshold) is held against what the plan keeps after the loan fee and gas."""
    hop = found.hops[0]
    return plan(
        found,
        market=hop.pool,
        user=found.user,
        debt=hop.token_in,
        collateral=hop.token_out,
        debt_to_cover=found.amount_in,
        seized=found.amount_out,
        store=store,
        providers=providers,
        min_net_usd=min_net_usd,
        health_factor=found.health_factor,
        valued_at=found.valued_at,
    )


MarketName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]  # chains.<c>.lending[].name


class Settings(StrategyConfig):
    market: MarketName = "aave_v3"
    # Several markets of one chain liquidated side by side (e.g. [aave_v3, radiant] on Arbitrum); empty: `market`.
    markets: tuple[MarketName, ...] = ()
    gas_limit: Annotated[int, Field(gt=0, le=10_000_000)] = 800_000  # flashloan + liquidationCall + swap
    # Live chains its liquidations are sent on (the chain must be live too): off everywhere unless named.
    live_chains: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], ...] = ()

    def market_names(self) -> tuple[str, ...]:
        return self.markets or (self.market,)


@dataclass
class MarketState:
    """What the strategy knows of one market: its reserves and prices, its positions, its pool and premium,
    its assets' price sources."""

    reserves: dict[str, Reserve] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)
    pending: dict[str, Position] = field(default_factory=dict)  # positions seen before it finished loading
    book: PositionBook | None = None
    pool: str = ""
    premium_bps: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # price source -> asset
    head: int | None = None  # a head the monitor followed in this batch, valued once the batch is applied
    reported: tuple[int, set[str]] = (-1, set())  # the users a price answer of that block reported


@dataclass(frozen=True, slots=True)
class LiquidationOpportunity(Opportunity):
    """One sized liquidationCall: repay `amount_in` of the debt asset, seize `amount_out` of the collateral."""

    user: str = ""
    health_factor: int = 0  # the Pool's getUserAccountData figure at `block`, wad
    valued_at: int = 0  # the timestamp the position was valued at (the answer's block)
    flashloan_fee: int = 0  # in the debt asset

    def details(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "health_factor": str(self.health_factor),
            "valued_at": self.valued_at,
            "debt_asset": self.hops[0].token_in,
            "debt_to_cover": str(self.amount_in),
            "collateral_asset": self.hops[0].token_out,
            "collateral_seized": str(self.amount_out),
            "flashloan_fee": str(self.flashloan_fee),
        }


class AaveLiquidation:
    name = "aave_liquidation"
    consumes = (LendingEvent, OracleUpdate)

    def __init__(
        self,
        chain: str,
        settings: Settings,
        wrapped_native: str | None,
        priority_fee_wei: int,
        builder_share_bps: int = 0,  # mevagent.strategies.builder_share_bps: 0 where no bundles are sent
    ) -> None:
        self.chain = chain
        self.settings = settings
        self.wrapped_native = wrapped_native
        self.priority_fee_wei = priority_fee_wei
        self.builder_share_bps = builder_share_bps
        self.states: dict[str, MarketState] = {}  # by market name
        self.timestamp = 0
        self.base_fee = 0
        self.found = 0
        self.answers = 0

    def _first(self) -> MarketState:
        """The first market it liquidates (its only one unless `markets` names several), as far as it is known:
        an empty state, not kept, before its first event (the getters below read, never add a market)."""
        return self.states.get(self.settings.market_names()[0]) or MarketState()

    @property
    def book(self) -> PositionBook | None:
        return self._first().book

    @property
    def pool(self) -> str:
        return self._first().pool

    @property
    def premium_bps(self) -> int:
        return self._first().premium_bps

    @property
    def sources(self) -> dict[str, str]:
        return self._first().sources

    def on_head(self, head: Head) -> None:
        self.base_fee = head.base_fee
        for state in self.states.values():
            if state.book is not None:
                state.book.maintain(max(self.timestamp, head.timestamp))

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        found: list[Opportunity] = []
        names = self.settings.market_names()
        for event in events:
            if isinstance(event, OracleUpdate):
                if event.answer <= 0:
                    continue
                for name in names:
                    state = self.states.get(name)
                    asset = state.sources.get(event.feed) if state is not None else None
                    if state is not None and asset is not None:
                        found += self._price(state, asset, event.answer, event.block)
            elif isinstance(event, LendingEvent) and event.market and event.protocol in names:
                found += self._lending(self.states.setdefault(event.protocol, MarketState()), event)
        # A head is valued after every event of the batch: the engine hands a batch's lending events before
        # its oracle answers, and the head's figures are those after both.
        for state in self.states.values():
            if state.head is not None:
                found += self._head(state, state.head)
                state.head = None
        return found

    def _lending(self, state: MarketState, event: LendingEvent) -> list[Opportunity]:
        args = dict(event.args)
        kind = event.event
        if "timestamp" in args:  # the block's clock and base fee (mevagent.lending.monitor)
            self.timestamp = max(self.timestamp, int(args["timestamp"]))
            self.base_fee = int(args["base_fee"])
        if kind == "Reserve":
            state.reserves[str(args["asset"])] = _reserve(args)
            self.timestamp = max(self.timestamp, int(args["last_update"]))
        elif kind == "AssetPrice":
            asset = str(args["asset"])
            state.prices[asset] = int(args["price"])
            source = str(args.get("source", ""))
            if source and int(source, 16):  # its AnswerUpdated logs reach the strategy as OracleUpdate
                state.sources = {s: a for s, a in state.sources.items() if a != asset}
                state.sources[source] = asset
        elif kind == "MarketLoaded":  # after the Reserve and AssetPrice events of the same load
            state.pool, state.premium_bps = event.market, int(args["premium_bps"])
            kept = state.book.positions if state.book is not None else []  # a reload keeps what was tracked
            state.book = PositionBook(state.reserves, state.prices)
            for position in [*kept, *state.pending.values()]:
                state.book.set_position(position)
            state.pending.clear()
        elif kind == "AssetSourceUpdated":
            asset = str(args["asset"])
            state.sources = {s: a for s, a in state.sources.items() if a != asset}
            state.sources[str(args["source"])] = asset
            return self._price(state, asset, int(args["price"]), event.block)
        elif kind == "ReserveDataUpdated":
            self._reserve_moved(state, args)
        elif kind == "ReserveConfigured":
            self._reserve_configured(state, args)
        elif kind == "Head":  # the monitor applied the market's logs up to this head (mevagent.lending.monitor)
            state.head = event.block
        elif event.user:
            self._position(state, event.user, args)
        return []

    def _reserve_moved(self, state: MarketState, args: dict[str, int | str]) -> None:
        asset, now = str(args["asset"]), int(args["timestamp"])
        self.timestamp = max(self.timestamp, now)
        reserves = state.book.reserves if state.book is not None else state.reserves
        if asset not in reserves:
            return
        reserves[asset].updated(
            int(args["liquidity_rate"]),
            int(args["variable_borrow_rate"]),
            int(args["liquidity_index"]),
            int(args["variable_borrow_index"]),
            now,
        )
        if state.book is not None:
            state.book.reserves_updated([asset], now)

    def _reserve_configured(self, state: MarketState, args: dict[str, int | str]) -> None:
        """New risk parameters (PoolConfigurator): the book's floats are rebuilt with them; the head of the block
        reports the positions they left under 1 (a lower threshold), sized with the new bonus."""
        asset = str(args["asset"])
        reserves = state.book.reserves if state.book is not None else state.reserves
        if asset not in reserves:
            return
        fields = {f: int(args[f]) for f in CONFIGURED if f in args}
        reserves[asset].params = dataclasses.replace(reserves[asset].params, **fields)
        if state.book is not None:
            state.book.reserves_updated([asset], self.timestamp)

    def _position(self, state: MarketState, user: str, args: dict[str, int | str]) -> None:
        position = Position(user)
        for key, value in args.items():
            side, _, asset = key.partition(":")
            if side == "collateral":
                position.collateral[asset] = int(value)
            elif side == "debt":
                position.debt[asset] = int(value)
            elif side == "stable":
                rate, since = int(args[f"stable_rate:{asset}"]), int(args[f"stable_at:{asset}"])
                position.stable[asset] = StableDebt(int(value), rate, since)
        if state.book is None:
            state.pending[user] = position
        else:
            state.book.set_position(position)

    def _price(self, state: MarketState, asset: str, price: int, block: int) -> list[Opportunity]:
        if state.book is None or asset not in state.book.reserves:
            return []
        self.answers += 1
        return self._all_sized(state, state.book.on_price(asset, price, self.timestamp), block)

    def _head(self, state: MarketState, block: int) -> list[Opportunity]:
        """Every position liquidatable at the head (by interest accrued since it was last valued, or as an event
        of the block left it), less those a price answer of the same block already reported."""
        if state.book is None:
            return []
        reported = state.reported[1] if state.reported[0] == block else set()
        found = [(p, d) for p, d in state.book.on_head(self.timestamp) if p.user not in reported]
        return self._all_sized(state, found, block)

    def _all_sized(
        self, state: MarketState, found: list[tuple[Position, AccountData]], block: int
    ) -> list[Opportunity]:
        if state.reported[0] != block:
            state.reported = (block, set())
        out: list[Opportunity] = []
        for position, data in found:
            state.reported[1].add(position.user)
            opportunity = self._sized(state, position, data, block)
            if opportunity is not None:
                out.append(opportunity)
        return out

    def _sized(
        self, state: MarketState, position: Position, data: AccountData, block: int
    ) -> LiquidationOpportunity | None:
        book, now = state.book, self.timestamp
        assert book is not None
        reserves, prices = book.reserves, book.prices
        debts = {a: _base(reserves[a], prices[a], position.owed(a, reserves[a], now)) for a in reserves}
        debts = {a: v for a, v in debts.items() if v}
        collaterals = {a: s for a, s in position.collateral.items() if s and reserves[a].params.liquidation_threshold}
        if not debts or not collaterals:
            return None
        debt_asset = max(debts, key=debts.__getitem__)
        collateral_asset = max(collaterals, key=lambda a: _value(reserves[a], prices[a], collaterals[a], now))
        # The protocol's own rules, V3's or V2's, are the debt reserve's (mevagent.lending.aave_v2.ReserveV2).
        debt_reserve = reserves[debt_asset]
        sized = debt_reserve.liquidation(position, collateral_asset, reserves, prices, now, data.health_factor)
        if sized.debt_to_cover == 0:
            return None
        fee = debt_reserve.flashloan_premium(sized.debt_to_cover, state.premium_bps)  # the market's own flashloan
        debt_usd = _usd(reserves[debt_asset], prices[debt_asset], sized.debt_to_cover)
        fee_usd = _usd(reserves[debt_asset], prices[debt_asset], fee)
        seized_usd = _usd(reserves[collateral_asset], prices[collateral_asset], sized.collateral_seized)
        gas_price = self.base_fee + self.priority_fee_wei
        native_price = prices.get(self.wrapped_native or "", 0)
        if self.builder_share_bps and not native_price:
            return None  # the builder's payment (wei) cannot be valued against the profit
        # The profit in the oracle's base currency, exactly, then in wei: the builder's share is paid of it.
        profit_base = (
            _base(reserves[collateral_asset], prices[collateral_asset], sized.collateral_seized)
            - _base(reserves[debt_asset], prices[debt_asset], sized.debt_to_cover)
            - _base(reserves[debt_asset], prices[debt_asset], fee)
        )
        payment = builder_payment(profit_base * WAD // native_price, self.builder_share_bps) if native_price else 0
        gas_usd = (self.settings.gas_limit * gas_price + payment) / WAD * native_price / BASE_UNIT
        profit_usd = seized_usd - debt_usd - fee_usd
        net = profit_usd - gas_usd  # after gas and the builder payment
        if net < self.settings.min_profit_threshold or net * 10_000 < self.settings.min_profit_bps * debt_usd:
            return None
        self.found += 1
        return LiquidationOpportunity(
            chain=self.chain,
            strategy=self.name,
            block=block,
            hops=(Hop(state.pool, debt_reserve.LIQUIDATION_HOP, debt_asset, collateral_asset),),
            amount_in=sized.debt_to_cover,
            amount_out=sized.collateral_seized,
            gas_limit=self.settings.gas_limit,
            gas_price=gas_price,
            builder_payment=payment,
            notional_usd=debt_usd,
            profit_usd=profit_usd,
            gas_cost_usd=gas_usd,
            found_ns=0,
            id=f"{self.chain}:{block}:{position.user}:{collateral_asset}:{debt_asset}",
            route=ROUTE,
            user=position.user,
            health_factor=data.health_factor,
            valued_at=now,
            flashloan_fee=fee,
        )

    def counters(self) -> Sequence[int]:
        return [self.found, self.answers]

    def describe(self) -> str:
        live = "sent live" if self.chain in self.settings.live_chains else "not sent (dry-run)"
        return f"market {', '.join(self.settings.market_names())}, {live}"


def _reserve(args: dict[str, int | str]) -> Reserve:
    params = ReserveParams(
        ltv=int(args["ltv"]),
        liquidation_threshold=int(args["liquidation_threshold"]),
        liquidation_bonus=int(args["liquidation_bonus"]),
        decimals=int(args["decimals"]),
        active=True,
        stable_borrowing=False,
        liquidation_protocol_fee=int(args["liquidation_protocol_fee"]),
    )
    kind = ReserveV2 if args.get("protocol") == "aave_v2" else Reserve
    return kind(
        asset=str(args["asset"]),
        id=int(args["id"]),
        params=params,
        a_token=str(args["a_token"]),
        debt_token=str(args["debt_token"]),
        liquidity_index=int(args["liquidity_index"]),
        variable_borrow_index=int(args["variable_borrow_index"]),
        liquidity_rate=int(args["liquidity_rate"]),
        variable_borrow_rate=int(args["variable_borrow_rate"]),
        last_update=int(args["last_update"]),
        stable_debt_token=str(args.get("stable_debt_token", "")),
    )


def _value(reserve: Reserve, price: int, scaled: int, now: int) -> int:
    return scaled * reserve.normalized_income(now) // 10**27 * price // 10**reserve.params.decimals


def _base(reserve: Reserve, price: int, amount: int) -> int:
    return amount * price // 10**reserve.params.decimals


def _usd(reserve: Reserve, price: int, amount: int) -> float:
    return amount * price / 10**reserve.params.decimals / BASE_UNIT


class Liquidations:
    """The route. With the chain's contract: planned and carried out by the chain's ArbitrageExecutor (dry-run
    unless the chain is live: simulated at the head, nothing signed). Without one: the risk gate is asked
    and the strategy's expected profit reported; nothing is simulated, signed or sent. `minimum`: the
    strategy's min_profit_threshold (USD), read at each plan and held against the plan's net."""

    def __init__(self, gate: Any, executor: Any = None, minimum: Callable[[], float] = lambda: 0.0) -> None:
        self.gate = gate
        self.executor = executor
        self.minimum = minimum

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        executor = self.executor
        if executor is None or executor.config.contract is None or not isinstance(opportunity, LiquidationOpportunity):
            return await self._reported(opportunity)
        providers = list(executor.flash_providers()) if executor.flash_providers is not None else []
        funded, reason = plan_found(opportunity, store=executor.store, providers=providers, min_net_usd=self.minimum())
        if funded is None:
            return Outcome(opportunity, Status.REJECTED, reason=reason)
        return await executor.execute(funded, head)

    async def _reported(self, opportunity: Opportunity) -> Outcome:
        decision = self.gate.check(opportunity)
        if not decision.allowed:
            return Outcome(opportunity, Status.REJECTED, reason=decision.reason)
        outcome = Outcome(opportunity, Status.DRY_RUN, realized_profit_usd=opportunity.profit_usd)
        self.gate.record(outcome)
        return outcome


def _unavailable(ctx: StrategyContext) -> str:
    settings = ctx.section
    assert isinstance(settings, Settings)
    if ctx.chain.live and ctx.chain.name not in settings.live_chains:
        return "the chain is live and strategies.aave_liquidation.live_chains does not name it"
    names = settings.market_names()
    if not any(m.name in names for m in ctx.chain.lending):
        return f"the chain's lending markets do not name {' or '.join(repr(n) for n in names)}"
    return ""


def _build(ctx: StrategyContext) -> AaveLiquidation:
    settings = ctx.section
    assert isinstance(settings, Settings)
    gas = ctx.settings.gas
    strategy = AaveLiquidation(
        ctx.chain.name,
        settings,
        ctx.chain.wrapped_native,
        int(gas.priority_fee_gwei * 10**9),
        builder_share_bps(ctx.chain, gas),
    )

    def retune(live: Any) -> None:  # an operator changed the gas settings (PUT /settings)
        strategy.priority_fee_wei = int(live.gas.priority_fee_gwei * 10**9)
        strategy.builder_share_bps = builder_share_bps(ctx.chain, live.gas)

    ctx.settings.subscribe(retune)
    return strategy


async def _open_route(ctx: StrategyContext) -> Liquidations:
    def minimum() -> float:
        return float(ctx.section.min_profit_threshold)

    return Liquidations(ctx.extras["gate"], ctx.extras.get("executor"), minimum)


PLUGIN = StrategyPlugin(
    name="aave_liquidation",
    config=Settings,
    consumes=(LendingEvent, OracleUpdate),
    state=(),
    action=LiquidationOpportunity,
    route=ROUTE,
    counters=(FOUND, PRICE_ANSWERS),
    build=_build,
    unavailable=_unavailable,
    open_route=_open_route,
)
