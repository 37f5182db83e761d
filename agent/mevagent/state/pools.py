"""The pool store: every tracked pool of one chain, in the exact integers its contract holds.

Strategies read it; only the state syncer (which applies logs, reconciles once per block and rolls
back on reorgs) writes it. Pools are slotted dataclasses updated in place, not pydantic models: they
change on every Sync/Swap log and are read thousands of times per block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mevagent.amm.arbitrage import V2Hop, V3Hop
from mevagent.amm.errors import Revert
from mevagent.amm.v3.pool import V3PoolState


@dataclass(slots=True)
class V2Pool:
    """A constant-product pair (Uniswap V2 or a fork): fee as the fork's contract computes it.

    `fee` is charged on an input of token0 and `fee1` on an input of token1, both over
    `fee_denominator`. They differ only where the pair charges each input token its own fee (Camelot's
    token0FeePercent / token1FeePercent); left out, `fee1` is `fee`, so every fixed-fee fork builds
    its pools as before.
    """

    address: str  # 0x-prefixed, lower case
    fork: str  # key of amm/forks.yml
    token0: str
    token1: str
    reserve0: int
    reserve1: int
    fee: int
    fee_denominator: int
    fee1: int | None = None  # None at construction only: __post_init__ makes it `fee`
    # A Camelot pair switched to the x³y + y³x (stable) curve: its reserves are still followed, so it
    # is priced again the moment it is switched back, but no constant-product quote is ever made.
    stable: bool = False

    def __post_init__(self) -> None:
        if self.fee1 is None:
            self.fee1 = self.fee

    @property
    def tokens(self) -> tuple[str, str]:
        return (self.token0, self.token1)

    def fee_in(self, token_in: str) -> int:
        """The fee this pair charges when `token_in` is the token paid in."""
        if token_in == self.token0:
            return self.fee
        if token_in == self.token1:
            return self.fee if self.fee1 is None else self.fee1
        raise KeyError(f"{token_in} is not a token of pool {self.address}")

    @property
    def quotable(self) -> bool:
        """False when no constant-product quote of this pair would be what the contract pays."""
        return not self.stable and max(self.fee, self.fee_in(self.token1)) < self.fee_denominator

    def hop(self, token_in: str) -> V2Hop:
        """This pool as a hop of a cycle entering with `token_in`."""
        fee = self.fee_in(token_in)
        if not self.quotable:
            # A stable pair, or a fee the pair itself cannot charge (its K check would underflow).
            raise Revert(f"pool {self.address} cannot be quoted as constant product")
        if token_in == self.token0:
            return V2Hop(self.reserve0, self.reserve1, fee, self.fee_denominator)
        return V2Hop(self.reserve1, self.reserve0, fee, self.fee_denominator)


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
