"""Venus (BNB Chain) core-pool accounts, valued exactly as the Comptroller values them.

Venus is a Compound V2 fork: each market is a vToken, an account holds vTokens (its supply, at the
market's exchange rate) and owes a borrow balance (its principal grown by the market's borrow index since
it last borrowed or repaid). The Comptroller (the Unitroller proxy over the Diamond and its facets) asks its
ComptrollerLens for an account's liquidity: over the markets the account entered, in their order,
`tokensToDenom = liquidationThreshold · exchangeRate · price` (each product an `Exp` truncated to 18
decimals), `sumCollateral += tokensToDenom · vTokenBalance` and `sumBorrow += price · borrowBalance`
(both truncated); a shortfall is `sumBorrow - sumCollateral` when positive. Prices are the oracle's
`getUnderlyingPrice(vToken)`: USD per smallest unit of the underlying, scaled by 10^(36 - decimals).

`liquidateBorrow` accrues interest on the borrowed market and then on the collateral market before the
Comptroller checks the shortfall, so a liquidation is sized on those two markets accrued to its block
(`VMarket.accrued`: `VToken.accrueInterest`, simple interest per block at the model's rate for the stored
state) and the others as stored. The repay may not exceed `closeFactor · borrowBalance` (truncated), and
it seizes `liquidationIncentive · priceBorrowed / (priceCollateral · exchangeRate) · repay` collateral
vTokens (ComptrollerLens._calculateSeizeTokens), all of them to the liquidator (the core pool's VToken
keeps no protocol share of a seizure); `size_liquidation` lowers the repay when the borrower holds fewer.
Reserve reductions (at an accrual, every `reduceReservesBlockDelta` blocks) take cash and reserves down by
the same amount, so the exchange rate and the rate model's utilization are unchanged by them.

The native market (vBNB, Venus' `VBNB`: mint and repay are payable, redeem and borrow pay out BNB) is valued
like any other: its underlying is BNB (`NATIVE`, 18 decimals), its price the oracle's for vBNB, its cash the
vToken's BNB balance.

VAI (Venus' stablecoin, minted against the account's collateral through the VAIController): the Comptroller adds
`getVAIRepayAmount(account)` to the borrows as it is (1 VAI = 1 USD, 18 decimals, no oracle price), after the
markets. That amount is the account's `mintedVAIs` plus its share of the interest since its own index:
`minted + (vaiMintIndex - minterIndex) · (minted - pastVAIInterest) / 1e18` (`VAIDebt.owed`), and the controller's
index grows by `getVAIRepayRatePerBlock() · blocks` at each `accrueVAIInterest` (`VAIState.accrued`: the yearly rate
is `baseRate`, plus `floatRate · (1 - price)` while the oracle prices VAI under 1 USD, over 70,080,000 blocks a
year). `liquidateBorrow` of a vToken does not accrue it (the stored index counts), `liquidateVAI` and Venus'
Liquidator (whatever it liquidates) do. `liquidateVAI(borrower, repay, vTokenCollateral)` accrues the collateral
market, then VAI, asks the Comptroller (`liquidateBorrowAllowed(vaiController, ...)`: the close factor applies to
the VAI owed), repays `burn + partOfCurrentInterest` of `getVAICalculateRepayAmount` (at most `repay`, a unit or
two less from its truncations) and seizes `liquidateVAICalculateSeizeTokens` of that: the vToken formula with VAI
priced 1e18 (`size_vai_liquidation`).

Not modelled: Venus pools (e-mode style `userPoolId` parameters: an account in a pool other than the
core pool is refused by `Account.core_pool`), forced liquidations, and the redeem fee to the treasury
(mevagent.lending.venus_reader.redeem_fee: the plan takes it off what the contract receives).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

EXP = 10**18  # Exp's mantissa scale
# The underlying of the market paid in the chain's native coin (vBNB: BNB itself, 18 decimals), as the agent
# names it (the conventional native-asset address; vBNB answers no ERC-20).
NATIVE = "0x" + "ee" * 20
NATIVE_DECIMALS = 18
# Every name a market without an ERC-20 underlying can carry: NATIVE (venus_reader.read_underlying's), the zero
# address (10.3.0's VBNB answers it) and none at all. The one place the native coin is told from a token.
NATIVE_NAMES = frozenset({NATIVE, "0x" + "00" * 20, ""})


def is_native(asset: str) -> bool:
    """Whether `asset` names the chain's native coin (a vBNB leg) rather than an ERC-20."""
    return asset.lower() in NATIVE_NAMES


def traded_as(asset: str, wrapped_native: str) -> str:
    """The ERC-20 a leg in `asset` is borrowed and swapped as: the wrapped native (lower case; "" when none is
    configured) for the native coin, the asset itself otherwise."""
    return wrapped_native.lower() if is_native(asset) else asset


def mul_exp(a: int, b: int) -> int:
    """ExponentialNoError.mul_(Exp, Exp): truncated."""
    return a * b // EXP


def div_exp(a: int, b: int) -> int:
    """ExponentialNoError.div_(Exp, Exp): truncated."""
    return a * EXP // b


def mul_truncate(a: int, scalar: int) -> int:
    """mul_ScalarTruncate(Exp, uint)."""
    return a * scalar // EXP


@dataclass(frozen=True, slots=True)
class VMarket:
    """One vToken's stored state and its Comptroller parameters (all mantissas scaled by 1e18)."""

    vtoken: str
    underlying: str
    decimals: int  # the underlying's
    cash: int  # the vToken's underlying balance (getCash)
    total_borrows: int
    total_reserves: int
    total_supply: int  # vTokens
    borrow_index: int
    accrual_block: int
    borrow_rate: int  # per block: the rate model's answer for the stored cash, borrows and reserves
    reserve_factor: int
    initial_exchange_rate: int  # the exchange rate while no vToken exists
    collateral_factor: int
    liquidation_threshold: int
    liquidation_incentive: int

    def accrued(self, block: int) -> VMarket:
        """The market after VToken.accrueInterest in `block` (the rate of the stored state, per block)."""
        if block <= self.accrual_block:
            return self
        factor = self.borrow_rate * (block - self.accrual_block)
        interest = mul_truncate(factor, self.total_borrows)
        return dataclasses.replace(
            self,
            total_borrows=self.total_borrows + interest,
            total_reserves=mul_truncate(self.reserve_factor, interest) + self.total_reserves,
            borrow_index=mul_truncate(factor, self.borrow_index) + self.borrow_index,
            accrual_block=block,
        )

    @property
    def exchange_rate(self) -> int:
        """VToken.exchangeRateStored."""
        if self.total_supply == 0:
            return self.initial_exchange_rate
        return (self.cash + self.total_borrows - self.total_reserves) * EXP // self.total_supply

    def borrow_balance(self, principal: int, interest_index: int) -> int:
        """VToken.borrowBalanceStored for a snapshot (principal, interest index)."""
        return 0 if principal == 0 else principal * self.borrow_index // interest_index

    def underlying_of(self, vtokens: int) -> int:
        """What redeeming `vtokens` pays out (redeemFresh: exchangeRate · tokens, truncated)."""
        return mul_truncate(self.exchange_rate, vtokens)


VAI_INITIAL_INDEX = EXP  # VAIController.INITIAL_VAI_MINT_INDEX: a minter's index before it is ever set
VAI_BLOCKS_PER_YEAR = 70_080_000  # VAIController.getBlocksPerYear (0.45 s blocks)


@dataclass(frozen=True, slots=True)
class VAIState:
    """The VAIController's interest state: its mint index as stored at `accrual_block` and what its per-block
    rate is made of (`getVAIRepayRate`): the yearly base and float rates, the oracle's VAI price (read only when
    both rates are set, as the controller reads it), and its blocks per year."""

    controller: str
    token: str  # the VAI token (getVAIAddress)
    mint_index: int  # vaiMintIndex
    accrual_block: int  # the controller's accrualBlockNumber (internal: read from its storage)
    base_rate: int
    float_rate: int
    price: int  # the oracle's getUnderlyingPrice(VAI), 1e18 = 1 USD (0 when not read)
    blocks_per_year: int = VAI_BLOCKS_PER_YEAR

    @property
    def yearly_rate(self) -> int:
        """VAIController.getVAIRepayRate."""
        if self.base_rate and self.float_rate and self.price < EXP:
            return (EXP - self.price) * self.float_rate // EXP + self.base_rate
        return self.base_rate

    @property
    def rate_per_block(self) -> int:
        """VAIController.getVAIRepayRatePerBlock."""
        return self.yearly_rate // self.blocks_per_year

    def accrued(self, block: int) -> VAIState:
        """The controller after accrueVAIInterest in `block` (the rate as it answers then: the stored inputs)."""
        if block <= self.accrual_block:
            return self
        index = self.rate_per_block * (block - self.accrual_block) + self.mint_index
        return dataclasses.replace(self, mint_index=index, accrual_block=block)


@dataclass(frozen=True, slots=True)
class VAIDebt:
    """An account's VAI position: `mintedVAIs` (the Comptroller's), `pastVAIInterest` and its interest index
    (`getVAIMinterInterestIndex`: 1e18 until it first mints)."""

    minted: int = 0
    past_interest: int = 0
    index: int = VAI_INITIAL_INDEX

    def owed(self, vai: VAIState) -> int:
        """VAIController.getVAIRepayAmount at the controller's stored index."""
        return self.minted + (vai.mint_index - self.index) * (self.minted - self.past_interest) // EXP

    def repay_parts(self, vai: VAIState, repay: int) -> tuple[int, int, int]:
        """VAIController.getVAICalculateRepayAmount: (burnt, part of the current interest, part of the past
        interest) of a repayment of `repay`; the payer gives burnt + current part."""
        total = self.owed(vai)
        current = total - self.minted + self.past_interest
        if repay >= total:
            return total - current, current, self.past_interest
        delta = repay * EXP // total
        return (total - current) * delta // EXP, current * delta // EXP, self.past_interest * delta // EXP

    def repaid(self, vai: VAIState, repay: int) -> int:
        """What `liquidateVAI(.., repay, ..)` takes from the liquidator (its `actualRepayAmount`)."""
        burnt, current, _ = self.repay_parts(vai, repay)
        return burnt + current


NO_VAI = VAIDebt()


@dataclass(slots=True)
class Account:
    """An account of the pool: the markets it entered (the Comptroller's order), its vToken balances and its
    borrow snapshots (principal, the market's borrow index when it last borrowed or repaid)."""

    user: str
    entered: list[str] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    borrows: dict[str, tuple[int, int]] = field(default_factory=dict)
    core_pool: bool = True
    vai: VAIDebt = NO_VAI

    def borrow_balance(self, market: VMarket) -> int:
        principal, index = self.borrows.get(market.vtoken, (0, 0))
        return market.borrow_balance(principal, index)


@dataclass(frozen=True, slots=True)
class Liquidity:
    """What Comptroller.getAccountLiquidity answers (error 0), in USD scaled by 1e18."""

    collateral: int  # threshold-weighted
    borrows: int

    @property
    def liquidity(self) -> int:
        return max(self.collateral - self.borrows, 0)

    @property
    def shortfall(self) -> int:
        return max(self.borrows - self.collateral, 0)


def liquidity(
    account: Account, markets: Mapping[str, VMarket], prices: Mapping[str, int], vai: VAIState | None = None
) -> Liquidity:
    """ComptrollerLens.getHypotheticalAccountLiquidity with the liquidation thresholds; with the Comptroller's VAI
    controller's state, the account's VAI owed added to the borrows at its index (`vai`: as stored, or accrued
    to the block when the liquidation accrues it). Without one (a Comptroller without a VAI controller) an account
    that minted VAI cannot be valued: ValueError."""
    collateral = borrows = 0
    for vtoken in account.entered:
        market = markets[vtoken]
        balance = account.tokens.get(vtoken, 0)
        owed = account.borrow_balance(market)
        if balance == 0 and owed == 0:
            continue
        price = prices[vtoken]
        if price == 0:
            raise ValueError(f"{vtoken}: the oracle answers 0 (the Comptroller refuses with PRICE_ERROR)")
        to_denom = mul_exp(mul_exp(market.liquidation_threshold, market.exchange_rate), price)
        collateral += mul_truncate(to_denom, balance)
        borrows += mul_truncate(price, owed)
    if vai is not None:
        borrows += account.vai.owed(vai)
    elif account.vai.minted:
        raise ValueError(f"{account.user} minted VAI: its debt cannot be valued without the VAI controller's state")
    return Liquidity(collateral, borrows)


def seize_tokens(repay: int, incentive: int, price_borrowed: int, price_collateral: int, exchange_rate: int) -> int:
    """ComptrollerLens._calculateSeizeTokens."""
    ratio = div_exp(mul_exp(incentive, price_borrowed), mul_exp(price_collateral, exchange_rate))
    return mul_truncate(ratio, repay)


@dataclass(frozen=True, slots=True)
class VenusLiquidation:
    """One liquidateBorrow, sized: `repay` of the borrowed market's underlying seizes `seized` collateral
    vTokens, which redeem to `seized_underlying` (at the collateral market's rate in that block)."""

    user: str
    borrowed: str  # the vToken whose liquidateBorrow is called (VAI: the VAI controller, liquidateVAI)
    collateral: str  # the collateral vToken
    repay: int
    seized: int
    seized_underlying: int
    shortfall: int  # at the liquidation's block (USD, 1e18)
    block: int
    vai: bool = False  # VAI debt: `repay` is liquidateVAI's argument, `paid` what it takes
    paid: int = 0  # VAI: the liquidator's actualRepayAmount (`repay` less its truncations)

    @property
    def cost(self) -> int:
        """What the liquidator pays in the debt: the repay, or for VAI what liquidateVAI takes."""
        return self.paid if self.vai else self.repay


def size_liquidation(
    account: Account,
    borrowed: str,
    collateral: str,
    markets: Mapping[str, VMarket],
    prices: Mapping[str, int],
    close_factor: int,
    block: int,
    vai: VAIState | None = None,
) -> VenusLiquidation | None:
    """The largest liquidateBorrow of `borrowed` against `collateral` the Comptroller allows in `block`,
    or None when the account has no shortfall there (or nothing to repay or seize). `vai`: the VAI controller's
    state as the Comptroller reads it in that block (as stored for a vToken's `liquidateBorrow`, accrued to the
    block through Venus' Liquidator, which accrues VAI first); None for a Comptroller without one (an account
    that minted VAI is then not sized)."""
    accrued = dict(markets)
    accrued[borrowed] = markets[borrowed].accrued(block)
    accrued[collateral] = markets[collateral].accrued(block)
    if not account.core_pool or (vai is None and account.vai.minted):
        return None
    shortfall = liquidity(account, accrued, prices, vai).shortfall
    if shortfall == 0:
        return None
    owed = account.borrow_balance(accrued[borrowed])
    balance = account.tokens.get(collateral, 0)
    repay = mul_truncate(close_factor, owed)
    target = accrued[collateral]
    incentive = target.liquidation_incentive
    rate = target.exchange_rate
    seized = seize_tokens(repay, incentive, prices[borrowed], prices[collateral], rate)
    if seized > balance:
        ratio = div_exp(mul_exp(incentive, prices[borrowed]), mul_exp(prices[collateral], rate))
        repay = ((balance + 1) * EXP - 1) // ratio
        seized = mul_truncate(ratio, repay)
    if repay == 0 or seized == 0:
        return None
    return VenusLiquidation(
        account.user, borrowed, collateral, repay, seized, target.underlying_of(seized), shortfall, block
    )


def size_vai_liquidation(
    account: Account,
    collateral: str,
    markets: Mapping[str, VMarket],
    prices: Mapping[str, int],
    vai: VAIState,
    close_factor: int,
    block: int,
) -> VenusLiquidation | None:
    """The largest `VAIController.liquidateVAI` against `collateral` the Comptroller allows in `block` (the
    collateral market and VAI accrued to it, the other markets as stored), or None without a shortfall there (or
    nothing to repay or seize). The repay is `closeFactor · getVAIRepayAmount`; it takes `paid` (burnt + part of
    the current interest) and seizes `liquidateVAICalculateSeizeTokens(paid)`: VAI priced 1e18. When the borrower
    holds fewer collateral vTokens (liquidateVAI reverts, `VAI_LIQUIDATE_SEIZE_TOO_MUCH`), the largest repay whose
    seizure fits."""
    if not account.core_pool or not account.vai.minted:
        return None
    accrued = dict(markets)
    target = accrued[collateral] = markets[collateral].accrued(block)
    at = vai.accrued(block)
    shortfall = liquidity(account, accrued, prices, at).shortfall
    if shortfall == 0:
        return None
    debt = account.vai
    incentive, rate, price = target.liquidation_incentive, target.exchange_rate, prices[collateral]

    def seized_by(repay: int) -> tuple[int, int]:
        paid = debt.repaid(at, repay)
        return paid, seize_tokens(paid, incentive, EXP, price, rate)

    repay = mul_truncate(close_factor, debt.owed(at))
    balance = account.tokens.get(collateral, 0)
    paid, seized = seized_by(repay)
    if seized > balance:  # the seizure grows with the repay: the largest repay that fits
        low, high = 0, repay
        while low < high:
            middle = (low + high + 1) // 2
            if seized_by(middle)[1] <= balance:
                low = middle
            else:
                high = middle - 1
        repay = low
        paid, seized = seized_by(repay)
    if repay == 0 or seized == 0:
        return None
    return VenusLiquidation(
        account.user,
        vai.controller,
        collateral,
        repay,
        seized,
        target.underlying_of(seized),
        shortfall,
        block,
        vai=True,
        paid=paid,
    )


@dataclass(frozen=True, slots=True)
class ThroughLiquidator:
    """A seizure as Venus' Liquidator splits it: it keeps `kept` vTokens (its treasury share, redeemed in the same
    call) and passes `passed` to the caller, which redeem to `redeemed` after the Liquidator's own redemption."""

    kept: int
    passed: int
    redeemed: int


def through_liquidator(collateral: VMarket, seized: int, treasury_percent: int) -> ThroughLiquidator:
    """Venus 10.3.0's Liquidator: of the `seized` vTokens it keeps `seized * (incentive - 1) / incentive *
    treasuryPercentMantissa` (each division truncated: its percent of the bonus, not of the seizure; checked on
    anvil against the package's Liquidator), passes the rest to the caller, then redeems its share: cash and
    supply move by that redemption, so the caller's redemption in the same block is at the exchange rate after
    it. `collateral`: the collateral market accrued to the liquidation's block."""
    incentive = collateral.liquidation_incentive
    kept = seized * (incentive - EXP) // incentive * treasury_percent // EXP
    passed = seized - kept
    return ThroughLiquidator(kept, passed, redeemed_after(collateral, kept, passed))


def redeemed_after(market: VMarket, first: int, then: int) -> int:
    """What redeeming `then` vTokens pays once `first` were redeemed in the same block (the redemption takes its
    payout out of cash, the redeem fee included, and its vTokens out of supply)."""
    if first:
        market = dataclasses.replace(
            market, cash=market.cash - market.underlying_of(first), total_supply=market.total_supply - first
        )
    return market.underlying_of(then)


def value(amount: int, price: int) -> int:
    """USD (1e18) of `amount` smallest units at an oracle price (mul_ScalarTruncate)."""
    return mul_truncate(price, amount)


def best_pair(
    account: Account, markets: Mapping[str, VMarket], prices: Mapping[str, int], block: int, vai: VAIState | None = None
) -> tuple[str, str] | None:
    """(borrowed, collateral): the largest debt against the largest collateral, by value. With the VAI controller's
    state, VAI owed is a debt too (named by the controller, valued at 1 USD)."""
    debts = {v: account.borrow_balance(markets[v].accrued(block)) for v in account.borrows}
    held = {v: markets[v].underlying_of(t) for v, t in account.tokens.items() if t and v in account.entered}
    debts = {v: d for v, d in debts.items() if d}
    priced = dict(prices)
    if vai is not None and account.vai.minted:
        debts[vai.controller], priced[vai.controller] = account.vai.owed(vai.accrued(block)), EXP
    if not debts or not held:
        return None
    borrowed = max(debts, key=lambda v: value(debts[v], priced[v]))
    collateral = max(held, key=lambda v: value(held[v], prices[v]))
    return borrowed, collateral


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a sized liquidation pays, in the oracle's USD (1e18) and in wei of the native token.

    `profit_usd`: the redeemed collateral's value - the repaid debt's - the flashloan fee's; the builder
    gets `builder_payment` wei, its share of that profit (mevagent.strategies.builder_payment, as dex_arb
    and the Aave liquidations pay it); gas is `gas_limit · gas_price`. `net_usd` is what is left after both.
    """

    liquidation: VenusLiquidation
    repay_usd: int
    seized_usd: int
    flashloan_fee: int  # in the borrowed underlying
    profit_usd: int
    gas_wei: int
    builder_payment: int  # wei
    net_usd: int
    go: bool
    reason: str


def decide(
    liquidation: VenusLiquidation,
    markets: Mapping[str, VMarket],
    prices: Mapping[str, int],
    *,
    native: str,
    gas_limit: int,
    gas_price: int,
    builder_share_bps: int,
    flashloan_fee: int,
    min_profit_usd: int,
) -> Decision:
    """`native`: the vToken whose price values the native token (vBNB or the wrapped native's market, 18
    decimals: its price is USD per wei, scaled by 1e18)."""
    from mevagent.strategies import builder_payment  # the strategies' own rule; imported late (no cycle)

    borrowed, collateral = liquidation.borrowed, liquidation.collateral
    price_borrowed = EXP if liquidation.vai else prices[borrowed]  # VAI: 1 USD, as the Comptroller prices it
    repay_usd = value(liquidation.cost, price_borrowed)
    fee_usd = value(flashloan_fee, price_borrowed)
    seized_usd = value(liquidation.seized_underlying, prices[collateral])
    profit = seized_usd - repay_usd - fee_usd
    native_market = markets.get(native)
    native_price = prices.get(native, 0) if native_market is not None and native_market.decimals == 18 else 0
    gas_wei = gas_limit * gas_price
    if not native_price:
        reason = f"no price for the native token (18 decimals) at {native}: gas and payment cannot be valued"
        return Decision(liquidation, repay_usd, seized_usd, flashloan_fee, profit, gas_wei, 0, profit, False, reason)
    payment = builder_payment(profit * EXP // native_price, builder_share_bps)
    net = profit - value(gas_wei + payment, native_price)
    if net < min_profit_usd:
        reason = f"net {net / EXP:.6f} USD after gas and builder payment is below the minimum {min_profit_usd / EXP}"
        return Decision(liquidation, repay_usd, seized_usd, flashloan_fee, profit, gas_wei, payment, net, False, reason)
    return Decision(liquidation, repay_usd, seized_usd, flashloan_fee, profit, gas_wei, payment, net, True, "")
