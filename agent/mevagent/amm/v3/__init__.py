"""Uniswap V3 math ported from v3-core, exact to the wei."""

from mevagent.amm.v3.full_math import Q96, div_rounding_up, mul_div, mul_div_rounding_up
from mevagent.amm.v3.pool import SwapResult, V3PoolState, default_sqrt_price_limit, simulate_swap
from mevagent.amm.v3.sqrt_price_math import (
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from mevagent.amm.v3.swap_math import SwapStep, compute_swap_step
from mevagent.amm.v3.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)

__all__ = [
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "Q96",
    "SwapResult",
    "SwapStep",
    "V3PoolState",
    "compute_swap_step",
    "default_sqrt_price_limit",
    "div_rounding_up",
    "get_amount0_delta",
    "get_amount1_delta",
    "get_next_sqrt_price_from_input",
    "get_next_sqrt_price_from_output",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "mul_div",
    "mul_div_rounding_up",
    "simulate_swap",
]
