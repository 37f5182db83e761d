"""A liquidation as the ArbExecutor contract carries it out: flash-borrow the debt, `liquidationCall`, swap the
seized collateral back into the debt asset through the pool store's best pool, repay the loan, keep the rest.

`plan` turns a sized liquidation (debt to cover, collateral it seizes: the strategy's exact figures, per
the Pool's LiquidationLogic) into a `FundedLiquidation`: the swap hop (among the store's pools that trade
the collateral for the debt asset directly, the one paying most for the seized amount, exact integers),
the loan (the cheapest provider holding enough of the debt asset that is not the swap's pool) and what
the contract keeps: swap output - debt covered - loan fee, in the debt asset. Its `gross_profit` is
exactly that, so the ArbitrageExecutor's minimum profit, head simulation and risk gate apply unchanged.
The strategy's builder payment (its share of the profit it valued at the oracle's prices) is scaled to
what the contract keeps, as mevagent.executor.funding scales a funded cycle's; the contract pays it to
the block's coinbase from its ether unless the debt asset is the wrapped native token.

Every plan (Aave V3, V2 and its forks, Venus) is held to the strategy's `min_profit_threshold` here, on
what the contract keeps after the swap and the loan fee, less gas and the builder payment: the strategy
decided on the oracle's prices and the market's own premium, the plan on the real swap and the chosen
lender's fee, and a margin the fee or the swap eats is refused before anything is simulated or signed.

`plan_venus` does the same for a Venus liquidation (`FundedVenusLiquidation`, the contract's
`liquidateVenus`): the debt underlying flash-borrowed, `liquidateBorrow` on the borrowed vToken (or, when the
Comptroller accepts only Venus' Liquidator, on the Liquidator, which keeps its treasury share of the seizure), the
seized collateral vTokens redeemed, and the redeemed underlying (the strategy's exact figure) swapped back; a vBNB
leg (paid in BNB) trades as the wrapped native, unwrapped for the repay or wrapped after the redeem. It is
simulated in the block it was sized for (head + 1): a vToken accrues interest per block inside the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

from eth_abi import encode
from eth_utils import keccak

from mevagent.amm.arbitrage import cycle_amounts
from mevagent.core import Hop, Opportunity
from mevagent.executor.contract import _HOP, ContractHop
from mevagent.executor.funding import LOAN_KINDS, FlashProvider, Loan
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

_LIQUIDATION = "(address,address,address)"
_TERMS = "(uint256,uint256,uint256,uint256)"
_LOAN = "(uint8,address,uint32,uint32)"
LIQUIDATE_SELECTOR = keccak(text=f"liquidate({_LIQUIDATION},{_HOP}[],{_TERMS},{_LOAN})")[:4]
LIQUIDATED_TOPIC = "0x" + keccak(text="Liquidated(address,address,uint256,uint256)").hex()
_VENUS = "(address,address,address,bool,bool,address,bool)"
LIQUIDATE_VENUS_SELECTOR = keccak(text=f"liquidateVenus({_VENUS},{_HOP}[],{_TERMS},{_LOAN})")[:4]
ZERO_ADDRESS = "0x" + "00" * 20
VENUS_LIQUIDATED_TOPIC = "0x" + keccak(text="VenusLiquidated(address,address,uint256,uint256,uint256)").hex()


@dataclass(frozen=True, slots=True)
class FundedLiquidation(Opportunity):
    """hops: the swap of the seized collateral back (collateral -> debt asset); amount_in the debt covered,
    amount_out the swap's output less the loan fee: gross_profit is what the contract keeps."""

    # Simulated at the head as an eth_call in the next block (its number overridden) rather than the head's.
    SIMULATE_NEXT_BLOCK: ClassVar[bool] = False

    market: str = ""  # the Aave V3 pool
    user: str = ""
    collateral_seized: int = 0
    swap_out: int = 0
    loan: Loan | None = None
    health_factor: int = 0
    valued_at: int = 0

    @property
    def token(self) -> str:  # the profit is kept in the debt asset, the swap's output
        return self.hops[-1].token_out

    def details(self) -> dict[str, Any]:
        loan = self.loan
        return {
            "user": self.user,
            "health_factor": str(self.health_factor),
            "valued_at": self.valued_at,
            "debt_asset": self.token,
            "debt_to_cover": str(self.amount_in),
            "collateral_asset": self.hops[0].token_in,
            "collateral_seized": str(self.collateral_seized),
            "swap_pool": self.hops[0].pool,
            "swap_out": str(self.swap_out),
            "funding": loan.provider if loan else "",
            "flashloan_fee": str(loan.fee if loan else 0),
        }

    def calldata(self, hops: Sequence[ContractHop], min_profit: int, builder_payment: int, max_block: int) -> bytes:
        """The contract call that carries it out."""
        return liquidate_calldata(self, hops, min_profit, builder_payment, max_block)


@dataclass(frozen=True, slots=True)
class FundedVenusLiquidation(FundedLiquidation):
    """A Venus liquidation as `liquidateVenus` runs it: `market` is the Comptroller, `collateral_seized` the
    underlying the contract receives for the `seized_vtokens` (their redemption less `redeem_fee`, the
    treasury's share of it), `amount_in` the repay (the loan). A native leg (vBNB, paid in the chain's coin)
    trades as the wrapped native: `borrowed_native`, the loan is unwrapped and sent as the repay;
    `collateral_native`, the redeemed coin is wrapped before the swap. `liquidator`: Venus' Liquidator when the
    Comptroller accepts only it ("" otherwise): the contract liquidates through it and `seized_vtokens` are what it
    passes on, `liquidator_vtokens` fewer than the vToken seized (its treasury share). `borrowed_vai`: the debt is
    VAI, `borrowed_vtoken` the VAI controller (`liquidateVAI`); it takes `amount_in` less `vai_left`, which the
    contract keeps (counted in `amount_out`)."""

    SIMULATE_NEXT_BLOCK: ClassVar[bool] = True

    borrowed_vtoken: str = ""
    collateral_vtoken: str = ""
    seized_vtokens: int = 0
    redeem_fee: int = 0
    borrowed_native: bool = False
    collateral_native: bool = False
    liquidator: str = ""
    liquidator_vtokens: int = 0
    borrowed_vai: bool = False
    vai_left: int = 0

    def details(self) -> dict[str, Any]:
        return {
            **FundedLiquidation.details(self),
            "borrowed_vtoken": self.borrowed_vtoken,
            "collateral_vtoken": self.collateral_vtoken,
            "repay": str(self.amount_in),
            "seized_vtokens": str(self.seized_vtokens),
            "collateral_redeemed": str(self.collateral_seized),
            "redeem_fee": str(self.redeem_fee),
            "borrowed_native": self.borrowed_native,
            "collateral_native": self.collateral_native,
            "liquidator": self.liquidator,
            "liquidator_vtokens": str(self.liquidator_vtokens),
            "borrowed_vai": self.borrowed_vai,
            "vai_left": str(self.vai_left),
        }

    def calldata(self, hops: Sequence[ContractHop], min_profit: int, builder_payment: int, max_block: int) -> bytes:
        return liquidate_venus_calldata(self, hops, min_profit, builder_payment, max_block)


_Funded = TypeVar("_Funded", bound=FundedLiquidation)


def _swap_hop(store: PoolStore, collateral: str, debt: str, seized: int) -> tuple[Hop, int] | None:
    """The store's pool paying most debt asset for `seized` collateral in one swap, and what it pays."""
    best: tuple[Hop, int] | None = None
    for address, pool in store.pools.items():
        if set(pool.tokens) != {collateral, debt}:
            continue
        if isinstance(pool, V2Pool) and not pool.quotable:
            continue
        amounts = cycle_amounts([pool.hop(collateral)], seized)
        if amounts is None:
            continue
        kind = "v3" if isinstance(pool, V3Pool) else "v2"
        if best is None or amounts[-1] > best[1]:
            best = (Hop(address, kind, collateral, debt), amounts[-1])
    return best


def cheapest_loan(providers: Sequence[FlashProvider], debt: str, amount: int, busy: set[str]) -> Loan | None:
    """The cheapest provider lending `amount` of `debt`, not a pool the transaction also trades in."""
    able = [p for p in providers if p.kind in LOAN_KINDS and p.lender not in busy and p.available(debt) >= amount]
    if not able:
        return None
    chosen = min(able, key=lambda p: p.fee(debt, amount))
    fee_param, fee_denominator = chosen.loan_fee()
    return Loan(
        chosen.name, chosen.kind, chosen.lender, debt, amount, chosen.fee(debt, amount), fee_param, fee_denominator
    )


def plan(
    opportunity: Opportunity,
    *,
    market: str,
    user: str,
    debt: str,
    collateral: str,
    debt_to_cover: int,
    seized: int,
    store: PoolStore,
    providers: Sequence[FlashProvider],
    min_net_usd: float,
    health_factor: int = 0,
    valued_at: int = 0,
) -> tuple[FundedLiquidation | None, str]:
    """(the liquidation as the contract will run it, "") or (None, why it cannot be run at a profit).
    `min_net_usd`: the strategy's min_profit_threshold, held against the plan's net (after the loan fee, gas
    and the builder payment)."""
    return _funded(
        FundedLiquidation,
        opportunity,
        debt,
        collateral,
        debt_to_cover,
        seized,
        store,
        providers,
        min_net_usd,
        market=market,
        user=user,
        health_factor=health_factor,
        valued_at=valued_at,
    )


def plan_venus(
    opportunity: Opportunity,
    *,
    comptroller: str,
    user: str,
    borrowed: str,
    collateral: str,
    debt: str,
    collateral_asset: str,
    repay: int,
    seized_vtokens: int,
    redeemed: int,
    store: PoolStore,
    providers: Sequence[FlashProvider],
    min_net_usd: float,
    redeem_fee: int = 0,
    borrowed_native: bool = False,
    collateral_native: bool = False,
    liquidator: str = "",
    liquidator_vtokens: int = 0,
    borrowed_vai: bool = False,
    vai_left: int = 0,
) -> tuple[FundedVenusLiquidation | None, str]:
    """A Venus liquidation (`repay` of `debt` on the `borrowed` vToken seizing `seized_vtokens` of the
    `collateral` vToken, which redeem to `redeemed` of `collateral_asset`, `redeem_fee` of it to the treasury)
    as `liquidateVenus` runs it. A native leg's asset is the wrapped native (`debt` or `collateral_asset`).
    Through Venus' `liquidator`: `seized_vtokens` and `redeemed` are what the contract receives and redeems, the
    Liquidator having kept `liquidator_vtokens`. `borrowed_vai`: VAI debt (`borrowed` is the VAI controller), of
    whose `repay` liquidateVAI leaves `vai_left` untaken (its split's truncation): the contract keeps it."""
    if debt == collateral_asset:
        return None, f"venus liquidation: the debt and the collateral are both {debt}: there is nothing to swap"
    received = redeemed - redeem_fee
    return _funded(
        FundedVenusLiquidation,
        opportunity,
        debt,
        collateral_asset,
        repay,
        received,
        store,
        providers,
        min_net_usd,
        vai_left,
        market=comptroller,
        user=user,
        borrowed_vtoken=borrowed,
        collateral_vtoken=collateral,
        seized_vtokens=seized_vtokens,
        redeem_fee=redeem_fee,
        borrowed_native=borrowed_native,
        collateral_native=collateral_native,
        liquidator=liquidator,
        liquidator_vtokens=liquidator_vtokens,
        borrowed_vai=borrowed_vai,
        vai_left=vai_left,
    )


def _funded(
    kind: type[_Funded],
    opportunity: Opportunity,
    debt: str,
    collateral: str,
    debt_to_cover: int,
    seized: int,
    store: PoolStore,
    providers: Sequence[FlashProvider],
    min_net_usd: float,
    left: int = 0,
    **target: Any,
) -> tuple[_Funded | None, str]:
    """(the funded liquidation of `kind`, its `target` fields given, "") or (None, why there is none): the
    swap of `seized` collateral back into `debt`, the loan of `debt_to_cover`, what the contract keeps (with
    `left` of the loan the liquidation did not take); none when that, less gas and the builder payment, is below
    `min_net_usd` (min_profit_threshold)."""
    swap = _swap_hop(store, collateral, debt, seized)
    if swap is None:
        return None, f"liquidation: no pool in the store swaps {collateral} for {debt}"
    hop, swap_out = swap
    loan = cheapest_loan(providers, debt, debt_to_cover, {hop.pool})
    if loan is None:
        return None, f"liquidation: no flashloan provider lends {debt_to_cover} of {debt}"
    kept = swap_out + left - debt_to_cover - loan.fee
    if kept <= 0:
        return None, (
            f"liquidation: the seized {seized} of {collateral} swap back to {swap_out} of {debt}, "
            f"short of the {debt_to_cover} covered plus the {loan.fee} fee"
        )
    usd_per_unit = opportunity.notional_usd / debt_to_cover if debt_to_cover else 0.0
    profit_usd = kept * usd_per_unit
    payment, gas_cost_usd = opportunity.builder_payment, opportunity.gas_cost_usd
    if payment and opportunity.profit_usd > 0:
        # The builder's share of what is kept, not of the oracle's figure; gas and payment re-priced alike.
        budget = opportunity.gas_limit * opportunity.gas_price + payment
        payment = int(payment * Fraction(profit_usd) / Fraction(opportunity.profit_usd))
        wei = opportunity.gas_limit * opportunity.gas_price + payment
        gas_cost_usd = float(Fraction(gas_cost_usd) * wei / budget)
    net = profit_usd - gas_cost_usd
    if net < min_net_usd:
        return None, (
            f"liquidation: planned net {net:.6f} USD after the {loan.fee} loan fee ({loan.provider}), gas and "
            f"builder payment is below the minimum {min_net_usd} (min_profit_threshold)"
        )
    fields = {f.name: getattr(opportunity, f.name) for f in dataclasses.fields(Opportunity)}
    fields.update(
        hops=(hop,),
        amount_in=debt_to_cover,
        amount_out=swap_out + left - loan.fee,
        builder_payment=payment,
        profit_usd=profit_usd,
        gas_cost_usd=gas_cost_usd,
    )
    return kind(**fields, collateral_seized=seized, swap_out=swap_out, loan=loan, **target), ""


def liquidate_calldata(
    liquidation: FundedLiquidation, hops: Sequence[ContractHop], min_profit: int, builder_payment: int, max_block: int
) -> bytes:
    loan = liquidation.loan
    assert loan is not None
    target = (liquidation.market, liquidation.hops[0].token_in, liquidation.user)
    encoded_hops = [(h.pool, h.token_in, h.token_out, h.is_v3, h.fee, h.fee_denominator) for h in hops]
    terms = (liquidation.amount_in, min_profit, builder_payment, max_block)
    args = [target, encoded_hops, terms, loan.contract_args()]
    return LIQUIDATE_SELECTOR + encode([_LIQUIDATION, f"{_HOP}[]", _TERMS, _LOAN], args)


def liquidate_venus_calldata(
    liquidation: FundedVenusLiquidation,
    hops: Sequence[ContractHop],
    min_profit: int,
    builder_payment: int,
    max_block: int,
) -> bytes:
    loan = liquidation.loan
    assert loan is not None
    target = (
        liquidation.borrowed_vtoken,
        liquidation.collateral_vtoken,
        liquidation.user,
        liquidation.borrowed_native,
        liquidation.collateral_native,
        liquidation.liquidator or ZERO_ADDRESS,
        liquidation.borrowed_vai,
    )
    encoded_hops = [(h.pool, h.token_in, h.token_out, h.is_v3, h.fee, h.fee_denominator) for h in hops]
    terms = (liquidation.amount_in, min_profit, builder_payment, max_block)
    args = [target, encoded_hops, terms, loan.contract_args()]
    return LIQUIDATE_VENUS_SELECTOR + encode([_VENUS, f"{_HOP}[]", _TERMS, _LOAN], args)


def venus_liquidated(receipt: dict[str, Any], contract: str) -> list[tuple[str, str, int, int, int]]:
    """(user, collateral vToken, repaid, vTokens seized, underlying redeemed) of each VenusLiquidated event."""
    out = []
    for log in receipt.get("logs", []):
        if log["address"].lower() == contract.lower() and log["topics"] and log["topics"][0] == VENUS_LIQUIDATED_TOPIC:
            words = bytes.fromhex(log["data"][2:])
            repaid, seized, redeemed = (int.from_bytes(words[i : i + 32], "big") for i in (0, 32, 64))
            out.append(("0x" + log["topics"][1][-40:], "0x" + log["topics"][2][-40:], repaid, seized, redeemed))
    return out


def liquidated(receipt: dict[str, Any], contract: str) -> list[tuple[str, str, int, int]]:
    """(user, collateral, debt covered, collateral seized) of each Liquidated event of the contract."""
    out = []
    for log in receipt.get("logs", []):
        if log["address"].lower() == contract.lower() and log["topics"] and log["topics"][0] == LIQUIDATED_TOPIC:
            words = bytes.fromhex(log["data"][2:])
            covered, seized = int.from_bytes(words[:32], "big"), int.from_bytes(words[32:64], "big")
            out.append(("0x" + log["topics"][1][-40:], "0x" + log["topics"][2][-40:], covered, seized))
    return out
