"""Venus (BNB Chain) liquidations: accounts kept from the chain's Venus collector (mevagent.lending.venus_monitor),
re-evaluated on every price answer exactly as the Comptroller would in the next block, each liquidatable one
sized (mevagent.lending.venus.size_liquidation: its largest debt against its largest collateral) and
decided with gas and the builder payment (mevagent.lending.venus.decide).

With the chain's ArbExecutor contract configured, its route plans the liquidation
(mevagent.executor.liquidation.plan_venus: the debt underlying flash-borrowed from the cheapest provider,
`liquidateBorrow` on the borrowed vToken, the seized vTokens redeemed, the redeemed underlying swapped back
through the pool store's best pool, the loan repaid) and hands it to the chain's executor, which simulates
the contract call in the next block at the head, asks the risk gate and signs; it is sent only on a live
chain that `live_chains` names (a live chain it does not name does not run the strategy), dry-run
otherwise. A vBNB leg (paid in BNB) is planned as the executor's wrapped native: the contract unwraps the
loan to repay vBNB debt and wraps redeemed BNB before the swap. A Comptroller that accepts only Venus'
`Liquidator` (`liquidatorContract`) is liquidated through it: the strategy sizes what it passes on
(mevagent.lending.venus.through_liquidator: its treasury share of the bonus kept, its own redemption first)
with `liquidator_gas_limit`, and the contract calls it. Refused at plan time: a liquidator contract that does
not answer as Venus' Liquidator, a borrower the Liquidator would refuse (venus_reader.liquidator_refusal, asked
per liquidation: restricted to an allowlist without our contract, or VAI debt it forces to be liquidated
first), a plan whose net after its loan fee misses `min_profit_threshold`; the Comptroller's redeem fee to the
treasury (`treasuryPercent`) is taken off what the contract receives. The terms (`liquidatorContract`,
`treasuryPercent`, the Liquidator's share and VAI rule) come with what the strategy found: the collector reads
them at each load and again at each block whose Comptroller or Liquidator logs change them (`VenusTerms`). A
change in the block between the sizing and the execution is met by the head simulation, as any state change in
that block is: a liquidator contract set makes the Comptroller refuse ours (the call reverts, nothing is
signed); a higher treasury share keeps less than planned, refused beyond the risk limits' `max_slippage_bps`
and reverted by the contract below its break-even `minProfit`. With a contract, the decision counts the
flashloan fee of the cheapest of the executor's flash providers lending the repay (the plan's lender unless it
is also the swap's pool: the plan's check covers that case).

VAI (Venus' stablecoin minted against collateral): the collector's `VenusVAI` carries the VAI controller's
interest state, each account its VAI position, and the account is valued with its VAI owed as the Comptroller
values it (mevagent.lending.venus.liquidity). When VAI is its largest debt (or Venus' Liquidator forces VAI first:
`forceVAILiquidate` with at least `minLiquidatableVAI` owed), the liquidation is `VAIController.liquidateVAI`
(mevagent.lending.venus.size_vai_liquidation: VAI accrued to the block, the close factor of the VAI owed, what it
takes and seizes); through Venus' Liquidator, which accrues VAI before any liquidation, a vToken debt is sized with
VAI accrued too. With a contract it is planned as the others are (VAI flash-borrowed, `liquidateVAI` on the
controller, or the Liquidator's `liquidateBorrow(vaiController, ...)`, the seizure redeemed and swapped back to VAI;
the unit or two of the loan `liquidateVAI` does not take is kept); without one it is simulated
(`venus_reader.simulate_vai`) and reported as below.

Without a contract the route simulates, then reports, never sends: it simulates the liquidation in the
block it was sized for (mevagent.lending.venus_reader.simulate: `eth_simulateV1` of both markets' accrual
and the Comptroller's `liquidateBorrowAllowed` and `liquidateCalculateSeizeTokens`) and fails it unless the
Comptroller allows it and seizes exactly the sized vTokens; then it asks the risk gate and reports the
expected profit (`dry_run`), as aave_liquidation does on a chain without a contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from mevagent.config import StrategyConfig
from mevagent.core import Head, Hop, LendingEvent, Opportunity, Outcome, Status
from mevagent.executor.funding import FlashProvider
from mevagent.executor.liquidation import FundedVenusLiquidation, cheapest_loan, plan_venus
from mevagent.lending.venus import (
    EXP,
    Account,
    VAIState,
    VMarket,
    best_pair,
    decide,
    is_native,
    mul_truncate,
    redeemed_after,
    size_liquidation,
    size_vai_liquidation,
    through_liquidator,
    traded_as,
)
from mevagent.lending.venus_monitor import account_of, market_of, vai_of
from mevagent.lending.venus_reader import (
    ExecutionTerms,
    execution_terms,
    liquidator_refusal,
    redeem_fee,
    simulate,
    simulate_vai,
)
from mevagent.state.pools import PoolStore
from mevagent.strategies import StrategyContext, StrategyPlugin, builder_share_bps
from mevagent.strategies.aave_liquidation import FOUND, PRICE_ANSWERS, Liquidations

ROUTE = "venus_liquidation"


class Settings(StrategyConfig):
    market: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "venus"  # chains.<c>.venus[].name
    gas_limit: Annotated[int, Field(gt=0, le=10_000_000)] = 900_000  # loan + liquidateBorrow + redeem + swap
    # The same through Venus' Liquidator (its checks, its own redemption and its transfer to the protocol share
    # reserve): 0.94-1.11 M gas used on anvil against the 10.3.0 contracts (0.66-0.74 M without it).
    liquidator_gas_limit: Annotated[int, Field(gt=0, le=10_000_000)] = 1_400_000
    # Live chains its liquidations are sent on (the chain must be live too): off everywhere unless named.
    live_chains: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], ...] = ()


@dataclass(frozen=True, slots=True)
class VenusLiquidationOpportunity(Opportunity):
    """One sized liquidateBorrow: repay `amount_in` of the borrowed underlying, redeem `amount_out` of the
    collateral's underlying (`seized` collateral vTokens) in block `block + 1`."""

    user: str = ""
    borrowed: str = ""  # the vToken liquidateBorrow is called on
    collateral: str = ""  # the collateral vToken
    seized: int = 0
    shortfall: int = 0  # USD, 1e18, with the two markets accrued to the liquidation's block
    flashloan_fee: int = 0  # of the debt underlying, to the cheapest lender of the repay (counted in profit_usd)
    terms: ExecutionTerms | None = None  # the Comptroller's at `block` (None: unknown, the route reads them)
    # Through Venus' Liquidator (`terms.through_liquidator`): of the `seized` vTokens it keeps these (its treasury
    # share) and passes on the rest, which redeem to `amount_out` after its own redemption.
    liquidator_vtokens: int = 0
    # VAI debt: `borrowed` is the VAI controller (liquidateVAI), `amount_in` its repay argument and `paid` what it
    # takes from the liquidator (burnt + part of the current interest), which `seized` is computed from.
    vai: bool = False
    paid: int = 0

    def details(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "borrowed_vtoken": self.borrowed,
            "collateral_vtoken": self.collateral,
            "debt_asset": self.hops[0].token_in,
            "repay": str(self.amount_in),
            "collateral_asset": self.hops[0].token_out,
            "seized_vtokens": str(self.seized),
            "collateral_redeemed": str(self.amount_out),
            "shortfall": str(self.shortfall),
            "flashloan_fee": str(self.flashloan_fee),
            "liquidator_vtokens": str(self.liquidator_vtokens),
            **({"vai_paid": str(self.paid)} if self.vai else {}),
        }


class VenusLiquidator:
    name = "venus_liquidation"
    consumes = (LendingEvent,)

    def __init__(
        self,
        chain: str,
        settings: Settings,
        priority_fee_wei: int,
        builder_share_bps: int = 0,
        *,
        providers: Callable[[], Sequence[FlashProvider]] | None = None,
        wrapped_native: str | None = None,
    ) -> None:
        self.chain = chain
        self.settings = settings
        self.priority_fee_wei = priority_fee_wei
        self.builder_share_bps = builder_share_bps
        # The flash lenders the contract's plan borrows the repay from (None: no contract, nothing borrowed) and
        # the wrapped native a vBNB debt is borrowed as.
        self.providers = providers
        self.wrapped_native = (wrapped_native or "").lower()
        self.comptroller = ""
        self.close_factor = 0
        self.native = ""
        self.terms: ExecutionTerms | None = None  # the Comptroller's, from VenusLoaded and VenusTerms
        self.loaded = False
        self.markets: dict[str, VMarket] = {}
        self.prices: dict[str, int] = {}
        self.accounts: dict[str, Account] = {}
        self.vai: VAIState | None = None  # the VAI controller's, from VenusVAI
        self.base_fee = 0
        self.found = 0
        self.answers = 0

    def on_head(self, head: Head) -> None:
        self.base_fee = head.base_fee

    def on_events(self, events: Sequence[object]) -> list[Opportunity]:
        out: list[Opportunity] = []
        for event in events:
            if isinstance(event, LendingEvent) and event.protocol == self.settings.market:
                out += self._lending(event)
        return out

    def _lending(self, event: LendingEvent) -> list[Opportunity]:
        args = dict(event.args)
        if "base_fee" in args:
            self.base_fee = int(args["base_fee"])
        kind = event.event
        if kind == "VenusMarket":
            market = market_of(args)
            self.markets[market.vtoken] = market
        elif kind == "VenusAccount":
            self.accounts[event.user] = account_of(event.user, args)
        elif kind == "VenusPrice":
            vtoken = str(args["vtoken"])
            self.prices[vtoken] = int(args["price"])
            if self.loaded:
                self.answers += 1
                holders = [a for a in self.accounts.values() if vtoken in a.entered]
                return self._evaluate(holders, event.block)
        elif kind == "VenusLoaded":
            self.comptroller, self.loaded = event.market, True
            self.close_factor, self.native = int(args["close_factor"]), str(args["native_market"])
            self.terms = ExecutionTerms.of(args)
            return self._evaluate(list(self.accounts.values()), event.block)
        elif kind == "VenusTerms":
            self.terms = ExecutionTerms.of(args)
        elif kind == "VenusVAI":  # valued from the next price answer on, as an account's own update is
            self.vai = vai_of(args)
        return []

    def _evaluate(self, accounts: list[Account], block: int) -> list[Opportunity]:
        out: list[Opportunity] = []
        for account in accounts:
            if any(v not in self.markets or v not in self.prices for v in account.entered):
                continue
            found = self._sized(account, block)
            if found is not None:
                out.append(found)
        return out

    def _sized(self, account: Account, block: int) -> VenusLiquidationOpportunity | None:
        target = block + 1  # sent for the next block: both markets accrue to it inside liquidateBorrow
        terms, vai = self.terms, self.vai
        through = terms is not None and terms.through_liquidator and terms.liquidator_percent is not None
        pair = best_pair(account, self.markets, self.prices, target, vai)
        if pair is None:
            return None
        borrowed, collateral = pair
        forced = vai is not None and terms is not None and through and terms.force_vai and account.vai.minted
        if forced and vai is not None and terms is not None and account.vai.owed(vai.accrued(target)) >= terms.min_vai:
            borrowed = vai.controller  # Venus' Liquidator takes VAI first
        if vai is not None and borrowed == vai.controller:
            sized = size_vai_liquidation(account, collateral, self.markets, self.prices, vai, self.close_factor, target)
            debt_asset = vai.token
        else:
            # A vToken's liquidateBorrow reads VAI at its stored index; Venus' Liquidator accrues it first.
            at = vai.accrued(target) if vai is not None and through else vai
            sized = size_liquidation(
                account, borrowed, collateral, self.markets, self.prices, self.close_factor, target, at
            )
            debt_asset = self.markets[borrowed].underlying
        if sized is None:
            return None
        fee = self._loan_fee(debt_asset, sized.cost)
        if fee is None:
            return None  # no lender holds the repay: the contract could not run it
        kept, gas_limit = 0, self.settings.gas_limit
        if terms is not None and through and terms.liquidator_percent is not None:
            gas_limit = self.settings.liquidator_gas_limit
            # What Venus' Liquidator passes on, redeemed after its own share: what the contract receives.
            split = through_liquidator(self.markets[collateral].accrued(target), sized.seized, terms.liquidator_percent)
            kept = split.kept
            sized = dataclasses.replace(sized, seized_underlying=split.redeemed)
        gas_price = self.base_fee + self.priority_fee_wei
        decision = decide(
            sized,
            self.markets,
            self.prices,
            native=self.native,
            gas_limit=gas_limit,
            gas_price=gas_price,
            builder_share_bps=self.builder_share_bps,
            flashloan_fee=fee,
            min_profit_usd=int(self.settings.min_profit_threshold * EXP),
        )
        if not decision.go or decision.net_usd * 10_000 < self.settings.min_profit_bps * decision.repay_usd:
            return None
        self.found += 1
        gas_usd = (decision.profit_usd - decision.net_usd) / EXP
        collateral_asset = self.markets[collateral].underlying
        return VenusLiquidationOpportunity(
            chain=self.chain,
            strategy=self.name,
            block=block,
            hops=(Hop(self.comptroller, "venus_liquidation", debt_asset, collateral_asset),),
            amount_in=sized.repay,
            amount_out=sized.seized_underlying,
            gas_limit=gas_limit,
            gas_price=gas_price,
            builder_payment=decision.builder_payment,
            notional_usd=decision.repay_usd / EXP,
            profit_usd=decision.profit_usd / EXP,
            gas_cost_usd=gas_usd,
            found_ns=0,
            id=f"{self.chain}:{block}:{account.user}:{collateral}:{sized.borrowed}",
            route=ROUTE,
            user=account.user,
            borrowed=sized.borrowed,
            collateral=collateral,
            seized=sized.seized,
            shortfall=sized.shortfall,
            flashloan_fee=fee,
            terms=self.terms,
            liquidator_vtokens=kept,
            vai=sized.vai,
            paid=sized.paid,
        )

    def _loan_fee(self, debt: str, repay: int) -> int | None:
        """The fee of the cheapest lender of `repay` (the plan's choice unless that lender is also the swap's pool,
        which the route's check after planning covers); 0 without a contract; None when no lender holds it."""
        if self.providers is None:
            return 0
        asset = traded_as(debt, self.wrapped_native)
        loan = cheapest_loan(self.providers(), asset, repay, set()) if asset else None
        return loan.fee if loan is not None else None

    def counters(self) -> Sequence[int]:
        return [self.found, self.answers]

    def describe(self) -> str:
        live = "sent live" if self.chain in self.settings.live_chains else "not sent (dry-run)"
        return f"market {self.settings.market}, {live}"


def plan_found(
    found: VenusLiquidationOpportunity,
    *,
    store: PoolStore,
    providers: Sequence[FlashProvider],
    min_net_usd: float,
    treasury_percent: int = 0,
    wrapped_native: str | None = None,
    liquidator: str = "",
) -> tuple[FundedVenusLiquidation | None, str]:
    """The liquidation the contract would run for one the strategy found, or why it cannot be run (among
    others: its net after the loan fee, gas and builder payment below `min_net_usd`, min_profit_threshold).
    `treasury_percent`: the Comptroller's, the share of each redeem its vTokens send to the treasury. A vBNB leg
    (paid in BNB) trades as `wrapped_native`, the contract's: the loan of its debt, the swap of its seizure.
    `liquidator`: Venus' Liquidator the contract liquidates through (the strategy sized what it passes on)."""
    hop = found.hops[0]
    borrowed_native, collateral_native = is_native(hop.token_in), is_native(hop.token_out)
    if (borrowed_native or collateral_native) and not wrapped_native:
        return None, "venus liquidation: a vBNB (native) leg trades as the wrapped native: none is configured"
    wrapped = wrapped_native or ""
    return plan_venus(
        found,
        comptroller=hop.pool,
        user=found.user,
        borrowed=found.borrowed,
        collateral=found.collateral,
        debt=traded_as(hop.token_in, wrapped),
        collateral_asset=traded_as(hop.token_out, wrapped),
        repay=found.amount_in,
        seized_vtokens=found.seized - found.liquidator_vtokens,
        redeemed=found.amount_out,
        store=store,
        providers=providers,
        min_net_usd=min_net_usd,
        redeem_fee=redeem_fee(found.amount_out, treasury_percent),
        borrowed_native=borrowed_native,
        collateral_native=collateral_native,
        liquidator=liquidator,
        liquidator_vtokens=found.liquidator_vtokens,
        borrowed_vai=found.vai,
        # liquidateVAI takes `paid` of the repay; through the Liquidator, which pulls all of it, nothing is left.
        vai_left=found.amount_in - found.paid if found.vai and not liquidator else 0,
    )


def _unavailable(ctx: StrategyContext) -> str:
    settings = ctx.section
    assert isinstance(settings, Settings)
    if ctx.chain.live and ctx.chain.name not in settings.live_chains:
        return "the chain is live and strategies.venus_liquidation.live_chains does not name it"
    if not any(m.name == settings.market for m in ctx.chain.venus):
        return f"the chain's venus markets do not name {settings.market!r}"
    return ""


def _lenders(executor: Any) -> Callable[[], Sequence[FlashProvider]] | None:
    """The executor's flash lenders, asked at each decision, when its contract runs the liquidations (its plan
    borrows the repay); None without a contract (nothing is borrowed)."""
    if executor is None or executor.config.contract is None:
        return None

    def providers() -> Sequence[FlashProvider]:
        return list(executor.flash_providers()) if executor.flash_providers is not None else []

    return providers


def _build(ctx: StrategyContext) -> VenusLiquidator:
    settings = ctx.section
    assert isinstance(settings, Settings)
    gas = ctx.settings.gas
    strategy = VenusLiquidator(
        ctx.chain.name,
        settings,
        int(gas.priority_fee_gwei * 10**9),
        builder_share_bps(ctx.chain, gas),
        providers=_lenders(ctx.extras.get("executor")),
        wrapped_native=ctx.chain.wrapped_native,
    )

    def retune(live: Any) -> None:  # an operator changed the gas settings (PUT /settings)
        strategy.priority_fee_wei = int(live.gas.priority_fee_gwei * 10**9)
        strategy.builder_share_bps = builder_share_bps(ctx.chain, live.gas)

    ctx.settings.subscribe(retune)
    return strategy


UNAUTHORIZED = 1  # ComptrollerErrorReporter.Error: a liquidator contract is set and we are not it


class VenusRoute:
    """With the chain's contract: planned (`plan_found`) and carried out by the chain's ArbitrageExecutor
    (dry-run unless the chain is live: the contract call simulated in the next block at the head, nothing
    signed). Without one: simulated in the block it was sized for, then reported through aave_liquidation's
    reporting route (the risk gate asked, `dry_run` with the expected profit); nothing is signed or sent."""

    def __init__(self, gate: Any, node: Any, executor: Any = None, minimum: Callable[[], float] = lambda: 0.0) -> None:
        self.node = node
        self.executor = executor
        self.minimum = minimum  # the strategy's min_profit_threshold (USD), read at each plan
        self.report = Liquidations(gate)  # no executor: the risk gate is asked and the profit reported

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        if not isinstance(opportunity, VenusLiquidationOpportunity):
            return Outcome(opportunity, Status.REJECTED, reason="venus_liquidation: not a Venus liquidation")
        executor = self.executor
        if executor is not None and executor.config.contract is not None:
            return await self._executed(opportunity, executor, head)
        return await self._reported(opportunity, head)

    async def _executed(self, opportunity: VenusLiquidationOpportunity, executor: Any, head: int | None) -> Outcome:
        terms = opportunity.terms
        if terms is None:  # found without them (not from the collector's events): asked now
            try:
                terms = await execution_terms(self.node, opportunity.hops[0].pool)
            except Exception as exc:  # the node: nothing is signed
                reason = f"venus liquidation: node: {type(exc).__name__}: {exc}"
                return Outcome(opportunity, Status.FAILED, reason=reason)
        if terms.refusal:
            return Outcome(opportunity, Status.REJECTED, reason=f"venus liquidation: {terms.refusal}")
        liquidator = ""
        if terms.through_liquidator:
            sized = opportunity.terms
            if (
                sized is None
                or sized.liquidator != terms.liquidator
                or sized.liquidator_percent != terms.liquidator_percent
            ):
                reason = f"venus liquidation: sized without the share Venus' Liquidator {terms.liquidator} keeps"
                return Outcome(opportunity, Status.REJECTED, reason=reason)
            try:  # per liquidation: whether the Liquidator lets our contract liquidate this borrower now
                refusal = await liquidator_refusal(self.node, terms, opportunity.user, executor.config.contract)
            except Exception as exc:  # the node: nothing is signed
                reason = f"venus liquidation: node: {type(exc).__name__}: {exc}"
                return Outcome(opportunity, Status.FAILED, reason=reason)
            if refusal:
                return Outcome(opportunity, Status.REJECTED, reason=f"venus liquidation: {refusal}")
            liquidator = terms.liquidator
        providers = list(executor.flash_providers()) if executor.flash_providers is not None else []
        funded, reason = plan_found(
            opportunity,
            store=executor.store,
            providers=providers,
            min_net_usd=self.minimum(),
            treasury_percent=terms.treasury_percent,
            wrapped_native=executor.config.wrapped_native,
            liquidator=liquidator,
        )
        if funded is None:
            return Outcome(opportunity, Status.REJECTED, reason=reason)
        return await executor.execute(funded, head)

    async def _reported(self, opportunity: VenusLiquidationOpportunity, head: int | None) -> Outcome:
        target = opportunity.block + 1
        terms = opportunity.terms
        through = terms is not None and terms.through_liquidator
        asked = (terms.liquidator,) if terms is not None and through else ()
        comptroller, user, repay = opportunity.hops[0].pool, opportunity.user, opportunity.amount_in
        try:
            if opportunity.vai:
                simulated = await simulate_vai(
                    self.node, comptroller, opportunity.borrowed, opportunity.collateral, user, repay,
                    opportunity.paid, target, *asked,
                )  # fmt: skip
            else:
                simulated = await simulate(
                    self.node, comptroller, opportunity.borrowed, opportunity.collateral, user, repay, target, *asked
                )
        except Exception as exc:  # the node's refusal or a failed call: nothing to report
            return Outcome(opportunity, Status.FAILED, reason=f"simulation: {exc}")
        if opportunity.vai and simulated.paid != opportunity.paid:
            reason = f"simulation: liquidateVAI takes {simulated.paid} VAI in block {target}, sized {opportunity.paid}"
            return Outcome(opportunity, Status.FAILED, reason=reason)
        if simulated.allowed:
            why = " (only its liquidator contract may liquidate)" if simulated.allowed == UNAUTHORIZED else ""
            reason = f"simulation: the Comptroller refuses in block {target} with error {simulated.allowed}{why}"
            return Outcome(opportunity, Status.FAILED, reason=reason)
        redeemed = mul_truncate(simulated.exchange_rate, simulated.seized)
        if through:  # the Liquidator redeems its share first and passes on the rest: what that redeems to
            cash, borrows, reserves, supply = simulated.collateral
            market = VMarket(
                vtoken=opportunity.collateral, underlying="", decimals=0, cash=cash, total_borrows=borrows,
                total_reserves=reserves, total_supply=supply, borrow_index=0, accrual_block=target, borrow_rate=0,
                reserve_factor=0, initial_exchange_rate=0, collateral_factor=0, liquidation_threshold=0,
                liquidation_incentive=0,
            )  # fmt: skip
            kept = opportunity.liquidator_vtokens
            redeemed = redeemed_after(market, kept, simulated.seized - kept)
        if simulated.seize_error or (simulated.seized, redeemed) != (opportunity.seized, opportunity.amount_out):
            reason = (
                f"simulation: block {target} seizes {simulated.seized} vTokens redeeming {redeemed}, "
                f"the strategy sized {opportunity.seized} redeeming {opportunity.amount_out}"
            )
            return Outcome(opportunity, Status.FAILED, reason=reason)
        return await self.report.execute(opportunity, head)


async def _open_route(ctx: StrategyContext) -> VenusRoute:
    def minimum() -> float:
        return float(ctx.section.min_profit_threshold)

    return VenusRoute(ctx.extras["gate"], ctx.extras["node"], ctx.extras.get("executor"), minimum)


PLUGIN = StrategyPlugin(
    name="venus_liquidation",
    config=Settings,
    consumes=(LendingEvent,),
    state=(),
    action=VenusLiquidationOpportunity,
    route=ROUTE,
    counters=(FOUND, PRICE_ANSWERS),
    build=_build,
    unavailable=_unavailable,
    open_route=_open_route,
)
