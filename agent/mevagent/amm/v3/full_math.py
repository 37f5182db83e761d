"""FullMath and UnsafeMath from v3-core: 512-bit mulDiv is just Python's unbounded int.

What has to be ported is where Solidity reverts, because a quote for a swap that reverts on chain
is worse than no quote.
"""

from mevagent.amm.errors import Revert

Q96 = 1 << 96
MAX_UINT128 = (1 << 128) - 1
MAX_UINT160 = (1 << 160) - 1
MAX_UINT256 = (1 << 256) - 1


def mul_div(a: int, b: int, denominator: int) -> int:
    """floor(a·b / denominator); reverts like FullMath.mulDiv when that does not fit in 256 bits."""
    if denominator == 0:
        raise Revert("mulDiv: division by zero")
    result = a * b // denominator
    if result > MAX_UINT256:
        raise Revert("mulDiv: overflow")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """ceil(a·b / denominator) with FullMath.mulDivRoundingUp's overflow reverts."""
    if denominator == 0:
        raise Revert("mulDiv: division by zero")
    result, remainder = divmod(a * b, denominator)
    if remainder:
        result += 1
    if result > MAX_UINT256:
        raise Revert("mulDiv: overflow")
    return result


def div_rounding_up(x: int, y: int) -> int:
    """UnsafeMath.divRoundingUp: ceil(x / y), and 0 for y == 0 as the EVM's DIV gives."""
    if y == 0:
        return 0
    return -(-x // y)
