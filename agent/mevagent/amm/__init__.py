"""Exact AMM math for the searcher: Uniswap V2 and forks, Uniswap V3 and forks, and arbitrage sizing.

Everything is Python int, rounded exactly as the contracts round, so a quote here is the amount the
chain produces, to the wei; tests/agent proves it against the real contracts on anvil.
"""

from mevagent.amm.arbitrage import (
    ArbResult,
    Hop,
    V2Hop,
    V3Hop,
    cycle_amounts,
    search_cycle,
    size_cycle,
    size_v2_cycle,
)
from mevagent.amm.errors import Revert
from mevagent.amm.v2 import BPS, ForkFee, fork_fees, get_amount_in, get_amount_out
from mevagent.amm.v3 import SwapResult, V3PoolState, simulate_swap
from mevagent.amm.v3_forks import V3Fork, v3_forks

__all__ = [
    "BPS",
    "ArbResult",
    "ForkFee",
    "Hop",
    "Revert",
    "SwapResult",
    "V2Hop",
    "V3Fork",
    "V3Hop",
    "V3PoolState",
    "cycle_amounts",
    "fork_fees",
    "get_amount_in",
    "get_amount_out",
    "search_cycle",
    "simulate_swap",
    "size_cycle",
    "size_v2_cycle",
    "v3_forks",
]
