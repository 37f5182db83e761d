"""SqrtPriceMath from v3-core: price moves and token deltas, rounded the way the pool rounds.

The pool always rounds in its own favour: inputs up, outputs down, and the next price so that it
never passes the target. Each branch below mirrors a branch of the contract, including the
overflow fallbacks that change the rounding for very large amounts.
"""

from mevagent.amm.errors import Revert
from mevagent.amm.v3.full_math import (
    MAX_UINT160,
    MAX_UINT256,
    Q96,
    div_rounding_up,
    mul_div,
    mul_div_rounding_up,
)


def get_next_sqrt_price_from_amount0_rounding_up(sqrt_price_x96: int, liquidity: int, amount: int, add: bool) -> int:
    """Price after adding (or removing) `amount` of token0, rounded up."""
    if amount == 0:
        return sqrt_price_x96
    numerator1 = liquidity << 96
    product = amount * sqrt_price_x96
    if add:
        if product <= MAX_UINT256:
            denominator = numerator1 + product
            if denominator <= MAX_UINT256:
                return mul_div_rounding_up(numerator1, sqrt_price_x96, denominator)
        # The contract's fallback when L·2^96 + amount·√P overflows: a different, coarser formula.
        denominator = numerator1 // sqrt_price_x96 + amount
        if denominator > MAX_UINT256:
            raise Revert("add overflow")
        return div_rounding_up(numerator1, denominator)
    if product > MAX_UINT256 or numerator1 <= product:
        raise Revert("amount0 exceeds the liquidity")
    result = mul_div_rounding_up(numerator1, sqrt_price_x96, numerator1 - product)
    if result > MAX_UINT160:
        raise Revert("SafeCast: uint160")
    return result


def get_next_sqrt_price_from_amount1_rounding_down(sqrt_price_x96: int, liquidity: int, amount: int, add: bool) -> int:
    """Price after adding (or removing) `amount` of token1, rounded down."""
    if add:
        # The contract shifts for amounts below 2^160 and calls mulDiv above; both are this floor.
        result = sqrt_price_x96 + amount * Q96 // liquidity
        if result > MAX_UINT160:
            raise Revert("SafeCast: uint160")
        return result
    quotient = -(-amount * Q96 // liquidity)
    if sqrt_price_x96 <= quotient:
        raise Revert("amount1 exceeds the liquidity")
    return sqrt_price_x96 - quotient


def get_next_sqrt_price_from_input(sqrt_price_x96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """Price after swapping `amount_in` (fee already taken) into the pool."""
    if sqrt_price_x96 <= 0 or liquidity <= 0:
        raise Revert("zero price or liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_price_x96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_price_x96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_price_x96: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """Price after taking `amount_out` out of the pool."""
    if sqrt_price_x96 <= 0 or liquidity <= 0:
        raise Revert("zero price or liquidity")
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(sqrt_price_x96, liquidity, amount_out, False)
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_price_x96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token0 between two prices for `liquidity`: L·(√B - √A)·2^96 / (√A·√B)."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if sqrt_ratio_a_x96 <= 0:
        raise Revert("zero price")
    numerator1 = liquidity << 96
    numerator2 = sqrt_ratio_b_x96 - sqrt_ratio_a_x96
    # Two divisions, in this order, as in the contract: one division by √A·√B rounds differently.
    if round_up:
        rounded_up = mul_div_rounding_up(numerator1, numerator2, sqrt_ratio_b_x96)
        return div_rounding_up(rounded_up, sqrt_ratio_a_x96)
    return mul_div(numerator1, numerator2, sqrt_ratio_b_x96) // sqrt_ratio_a_x96


def get_amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token1 between two prices for `liquidity`: L·(√B - √A) / 2^96."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    # A uint128 times a uint160 over 2^96 always fits, so mulDiv's overflow revert cannot fire.
    product = liquidity * (sqrt_ratio_b_x96 - sqrt_ratio_a_x96)
    if round_up:
        return -(-product >> 96)
    return product >> 96
