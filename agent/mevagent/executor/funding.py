"""How an arbitrage is funded: the ArbExecutor contract's own inventory, or a flashloan repaid in the same call.

The strategy sizes a cycle for its best profit, whatever it needs. When the contract holds at least that
input, the inventory pays it (no fee, no extra gas). Otherwise the candidates are: the cycle sized down to
the inventory it holds, and, for every flashloan provider that lends the cycle's token and is not a pool
of the cycle (a Uniswap pool lending is locked until repaid), the cycle re-sized for the most it keeps
after that provider's fee (out(x) - x - fee(x), exact integers, capped at what the provider holds). The
candidate with the best net of gas wins; none that nets anything: the opportunity is not executed.

A funded opportunity is the strategy's, with `amount_in` the chosen input and `amount_out` what comes
back less the loan's fee: its `gross_profit` is exactly what the contract keeps, which is what the
executor's minimum-profit, head simulation and risk gate already work with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mevagent.amm.arbitrage import Hop as AmmHop
from mevagent.amm.arbitrage import _best_in, _fibonacci_search, _max_cycle_output, cycle_amounts
from mevagent.core import Opportunity

# The contract's Loan.kind, by provider kind.
LOAN_KINDS = {"aave_v3": 1, "balancer_v2": 2, "uniswap_v3": 3, "uniswap_v2": 4, "aave_v2": 5}
# Gas a loan adds to the cycle's (the lender's call, its callback, the repayment and its checks, storage
# touched cold), with headroom over what tests/agent/test_flash_arb.py measures on anvil against the
# published contracts (about 164,000 for Aave V3's flashLoanSimple and 105,000 for a V2 flash swap; an Aave
# V2 flashLoan transaction with a mock receiver takes 166,000-186,000 in tests/agent/test_aave_v2.py, its
# own transaction cost and the receiver's minting included).
LOAN_GAS = {
    "aave_v3": 200_000,
    "balancer_v2": 100_000,
    "uniswap_v3": 100_000,
    "uniswap_v2": 130_000,
    "aave_v2": 200_000,
}
_REFINE_RADIUS = 64
_INFEASIBLE = -(2**255)


class FlashProvider(Protocol):
    """A flashloan provider as the funding choice sees it (mevagent.lending.flash)."""

    name: str  # its name in /providers/status
    kind: str  # a key of LOAN_KINDS

    @property
    def lender(self) -> str:
        """The contract called for the loan (lower case)."""
        ...

    def fee(self, asset: str, amount: int) -> int: ...

    def available(self, asset: str) -> int: ...

    def loan_fee(self) -> tuple[int, int]:
        """(fee, denominator) the contract charges itself on repayment (V2 flash swaps); (0, 0) otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class Loan:
    provider: str
    kind: str
    lender: str
    token: str
    amount: int
    fee: int  # what the lender takes on top of `amount`, exactly
    fee_param: int = 0  # V2 flash swaps: the pair's fee and denominator, for the contract's repayment
    fee_denominator: int = 0

    def contract_args(self) -> tuple[int, str, int, int]:
        """The contract's Loan struct."""
        return (LOAN_KINDS[self.kind], self.lender, self.fee_param, self.fee_denominator)


@dataclass(frozen=True, slots=True)
class FlashOpportunity(Opportunity):
    """An arbitrage funded by `loan`: amount_out is the cycle's output less the loan's fee."""

    loan: Loan | None = None
    cycle_out: int = 0  # what the last hop pays, before the fee is repaid

    def details(self) -> dict[str, Any]:
        loan = self.loan
        if loan is None:
            return {}
        return {
            "funding": loan.provider,
            "lender": loan.lender,
            "loan_amount": str(loan.amount),
            "loan_fee": str(loan.fee),
            "cycle_out": str(self.cycle_out),
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    amount_in: int
    cycle_out: int
    loan: Loan | None
    extra_gas: int

    @property
    def kept(self) -> int:
        return self.cycle_out - self.amount_in - (self.loan.fee if self.loan else 0)


def size_with_fee(hops: Sequence[AmmHop], fee: Callable[[int], int], max_amount_in: int) -> tuple[int, int] | None:
    """(input, cycle output) maximizing output - input - fee(input) over [1, max_amount_in]; None if
    nothing keeps anything. The same concavity search as mevagent.amm.search_cycle, on the net profit
    (a fee proportional to the input keeps it concave)."""
    hi = min(max_amount_in, _max_cycle_output(hops))
    if hi < 1:
        return None
    cache: dict[int, int] = {}

    def net(x: int) -> int:
        value = cache.get(x)
        if value is None:
            amounts = cycle_amounts(hops, x)
            value = _INFEASIBLE if amounts is None else amounts[-1] - x - fee(x)
            cache[x] = value
        return value

    center = _fibonacci_search(net, 1, hi)
    best_x, best = _best_in(net, max(1, center - _REFINE_RADIUS), min(hi, center + _REFINE_RADIUS))
    if best <= 0:
        return None
    return best_x, best + best_x + fee(best_x)


def candidates(
    opportunity: Opportunity,
    hops: Sequence[AmmHop],
    inventory: int,
    providers: Sequence[FlashProvider],
) -> list[Candidate]:
    """Every way to fund the cycle that keeps something, the inventory first."""
    token = opportunity.token
    found: list[Candidate] = []
    if inventory > 0:
        amounts = cycle_amounts(hops, inventory)
        if amounts is not None and amounts[-1] > inventory:
            found.append(Candidate(inventory, amounts[-1], None, 0))
    cycle_pools = {h.pool for h in opportunity.hops}
    for provider in providers:
        if provider.kind not in LOAN_KINDS or provider.lender in cycle_pools:
            continue
        available = provider.available(token)
        if available < 1:
            continue
        sized = size_with_fee(hops, lambda x, p=provider: p.fee(token, x), available)
        if sized is None:
            continue
        amount, out = sized
        fee_param, fee_denominator = provider.loan_fee()
        loan = Loan(
            provider.name, provider.kind, provider.lender, token, amount, provider.fee(token, amount),
            fee_param, fee_denominator,
        )  # fmt: skip
        found.append(Candidate(amount, out, loan, LOAN_GAS[provider.kind]))
    return found


def _net_usd(opportunity: Opportunity, candidate: Candidate) -> float:
    """The candidate's profit after gas and the builder's share, priced as the strategy priced the cycle."""
    gross = opportunity.gross_profit
    unit = opportunity.profit_usd / gross if gross > 0 else 0.0
    return candidate.kept * unit - _gas_usd(opportunity, candidate)


def _builder_payment(opportunity: Opportunity, kept: int) -> int:
    """The builder's share scaled to what the contract now keeps (the strategy's share of the profit)."""
    gross = opportunity.gross_profit
    if opportunity.builder_payment == 0 or gross <= 0:
        return 0
    return opportunity.builder_payment * kept // gross


def _gas_usd(opportunity: Opportunity, candidate: Candidate) -> float:
    budget = opportunity.gas_limit * opportunity.gas_price + opportunity.builder_payment
    if budget == 0:
        return 0.0
    wei = (opportunity.gas_limit + candidate.extra_gas) * opportunity.gas_price
    wei += _builder_payment(opportunity, candidate.kept)
    return opportunity.gas_cost_usd * wei / budget


def funded(opportunity: Opportunity, candidate: Candidate) -> FlashOpportunity:
    """The opportunity as `candidate` funds it: amounts, gas, builder payment and USD figures rescaled."""
    gross = opportunity.gross_profit
    unit = opportunity.profit_usd / gross if gross > 0 else 0.0
    notional_unit = opportunity.notional_usd / opportunity.amount_in if opportunity.amount_in else 0.0
    fee = candidate.loan.fee if candidate.loan else 0
    fields = {f.name: getattr(opportunity, f.name) for f in dataclasses.fields(Opportunity)}
    fields.update(
        amount_in=candidate.amount_in,
        amount_out=candidate.cycle_out - fee,
        gas_limit=opportunity.gas_limit + candidate.extra_gas,
        builder_payment=_builder_payment(opportunity, candidate.kept),
        notional_usd=candidate.amount_in * notional_unit,
        profit_usd=candidate.kept * unit,
        gas_cost_usd=_gas_usd(opportunity, candidate),
    )
    return FlashOpportunity(**fields, loan=candidate.loan, cycle_out=candidate.cycle_out)


def choose(
    opportunity: Opportunity, hops: Sequence[AmmHop], inventory: int, providers: Sequence[FlashProvider]
) -> tuple[Opportunity | None, str]:
    """(the opportunity as it will be funded, "") or (None, why it cannot be funded).

    Unchanged when the inventory covers its input."""
    if opportunity.amount_in <= inventory:
        return opportunity, ""
    options = candidates(opportunity, hops, inventory, providers)
    if not options:
        return None, (
            f"funding: the contract holds {inventory} of {opportunity.token}, the cycle wants "
            f"{opportunity.amount_in}, and no flashloan provider lends enough for it to pay"
        )
    # The best net; the inventory (first) wins a tie: nothing borrowed.
    best = max(options, key=lambda c: (_net_usd(opportunity, c), c.loan is None))
    if _net_usd(opportunity, best) <= 0:
        return None, "funding: no way to fund the cycle pays for its gas"
    return funded(opportunity, best), ""
