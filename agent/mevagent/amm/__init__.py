"""Exact AMM math for the searcher: Uniswap V2 and its forks, and Uniswap V3.

Everything is Python int, rounded exactly as the contracts round, so a quote here is the amount the
chain produces, to the wei; tests/agent proves it against the real contracts on anvil.
"""

from mevagent.amm.errors import Revert
from mevagent.amm.v2 import BPS, ForkFee, fork_fees, get_amount_in, get_amount_out
from mevagent.amm.v3 import SwapResult, V3PoolState, simulate_swap

__all__ = [
    "BPS",
    "ForkFee",
    "Revert",
    "SwapResult",
    "V3PoolState",
    "fork_fees",
    "get_amount_in",
    "get_amount_out",
    "simulate_swap",
]
