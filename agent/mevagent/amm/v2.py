"""Uniswap V2 and its constant-product forks, in exact integers.

Every fork here computes `out = in·(D - f)·R_out // (R_in·D + in·(D - f))` with its own fee f over
its own denominator D (Uniswap 3/1000, PancakeSwap 25/10000, Camelot 300/100000, ...). The fee and
the denominator are both parameters so the integer result is the one that fork's contract returns
for any inputs: scaling f and D together by the same factor does not change a floor division, but
a fee that is not a whole number of basis points (Camelot can set 175/100000) has no exact bps form.
"""

from functools import cache
from importlib.resources import files
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mevagent.amm.errors import Revert

BPS = 10_000
_MAX_UINT256 = (1 << 256) - 1


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee: int = 30, fee_denominator: int = BPS) -> int:
    """UniswapV2Library.getAmountOut for a pool charging `fee / fee_denominator` on the input.

    This is also the largest output the pair's K check accepts for `amount_in`, which the tests
    prove against the deployed UniswapV2Pair.
    """
    if amount_in <= 0:
        raise Revert("INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise Revert("INSUFFICIENT_LIQUIDITY")
    amount_in_with_fee = amount_in * (fee_denominator - fee)
    numerator = amount_in_with_fee * reserve_out
    if numerator > _MAX_UINT256:
        # SafeMath.mul reverts here; a quote that the router cannot produce is not a quote.
        raise Revert("ds-math-mul-overflow")
    return numerator // (reserve_in * fee_denominator + amount_in_with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee: int = 30, fee_denominator: int = BPS) -> int:
    """UniswapV2Library.getAmountIn: the input the router sends to receive `amount_out`.

    Like the library this is `floor(...) + 1`, one wei above the true minimum when the division is
    exact; it is kept that way because routers and competing searchers quote with it.
    """
    if amount_out <= 0:
        raise Revert("INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise Revert("INSUFFICIENT_LIQUIDITY")
    if amount_out >= reserve_out:
        # The library underflows (or divides by zero) here: the pool cannot pay that much.
        raise Revert("INSUFFICIENT_LIQUIDITY")
    numerator = reserve_in * amount_out * fee_denominator
    if numerator > _MAX_UINT256:
        raise Revert("ds-math-mul-overflow")
    return numerator // ((reserve_out - amount_out) * (fee_denominator - fee)) + 1


# How a fork's pair holds its fee. "fixed": every pair charges the fork's fee. "swap_fee": the pair's
# swapFee() (BiswapPair, uint32), one fee for both directions. "token_fee_percent": CamelotPair's
# token0FeePercent / token1FeePercent, charged on the input token, so the fee depends on the direction;
# getReserves() returns both after the reserves, and stableSwap() says whether the pair is on the
# x³y + y³x curve instead of x·y.
PoolFee = Literal["fixed", "swap_fee", "token_fee_percent"]


class ForkFee(BaseModel):
    """How one V2 fork charges its swap fee (one entry of forks.yml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fee: int = Field(ge=0)
    fee_denominator: int = Field(gt=0)
    # Not "fixed": each pair stores its own fee, `fee` is only the default a new pair starts with,
    # and the state syncer reads the pair's current fee (and re-reads it when reconciling).
    pool_fee: PoolFee = "fixed"

    @property
    def per_pool(self) -> bool:
        return self.pool_fee != "fixed"


@cache
def fork_fees() -> dict[str, ForkFee]:
    """The fork fee table shipped in forks.yml, validated once per process."""
    raw = yaml.safe_load(files("mevagent.amm").joinpath("forks.yml").read_text(encoding="utf-8"))
    fees = {name: ForkFee.model_validate(entry) for name, entry in raw.items()}
    for name, entry in fees.items():
        if entry.fee >= entry.fee_denominator:
            raise ValueError(f"forks.yml: {name}: fee {entry.fee} is not below {entry.fee_denominator}")
    return fees
