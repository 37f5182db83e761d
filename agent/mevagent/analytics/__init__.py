"""MEV analytics: classify blocks (swaps, transfers, arbitrages, sandwiches, liquidations, JIT liquidity,
builder payments) and score pending swaps for sandwich risk.

Detection and protection only: nothing here builds, signs or sends a transaction.
"""

from mevagent.analytics.classify import classify_block
from mevagent.analytics.models import BlockClassification

__all__ = ["BlockClassification", "classify_block"]
