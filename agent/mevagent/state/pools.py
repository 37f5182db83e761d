"""The pool store: every tracked pool of one chain, in the exact integers its contract holds.

Strategies read it; only the state syncer (which applies logs, reconciles once per block and rolls
back on reorgs) writes it. Pools are slotted dataclasses updated in place, not pydantic models: they
change on every Sync/Swap log and are read thousands of times per block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mevagent.amm.arbitrage import V2Hop, V3Hop
from mevagent.amm.v3.pool import V3PoolState


@dataclass(slots=True)
class V2Pool:
    """A constant-product pair (Uniswap V2 or a fork): fee as the fork's contract computes it."""

    address: str  # 0x-prefixed, lower case
    fork: str  # key of amm/forks.yml
    token0: str
    token1: str
    reserve0: int
    reserve1: int
    fee: int
    fee_denominator: int

    @property
    def tokens(self) -> tuple[str, str]:
        return (self.token0, self.token1)

    def hop(self, token_in: str) -> V2Hop:
        """This pool as a hop of a cycle entering with `token_in`."""
        if token_in == self.token0:
            return V2Hop(self.reserve0, self.reserve1, self.fee, self.fee_denominator)
        if token_in == self.token1:
            return V2Hop(self.reserve1, self.reserve0, self.fee, self.fee_denominator)
        raise KeyError(f"{token_in} is not a token of pool {self.address}")


@dataclass(slots=True)
class V3Pool:
    """A concentrated-liquidity pool (Uniswap V3 or a fork): fee and ticks live in `state`."""

    address: str
    fork: str
    token0: str
    token1: str
    state: V3PoolState

    @property
    def tokens(self) -> tuple[str, str]:
        return (self.token0, self.token1)

    def hop(self, token_in: str) -> V3Hop:
        if token_in == self.token0:
            return V3Hop(self.state, True)
        if token_in == self.token1:
            return V3Hop(self.state, False)
        raise KeyError(f"{token_in} is not a token of pool {self.address}")


Pool = V2Pool | V3Pool


@dataclass(slots=True)
class PoolStore:
    """The tracked pools of one chain and the block their state is current at."""

    chain: str
    pools: dict[str, Pool] = field(default_factory=dict)
    block: int = 0  # every pool's state includes all logs up to and including this block

    def add(self, pool: Pool) -> None:
        self.pools[pool.address] = pool

    def get(self, address: str) -> Pool | None:
        return self.pools.get(address)

    def __len__(self) -> int:
        return len(self.pools)
