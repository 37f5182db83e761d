"""Flashloan providers besides Aave V3 (mevagent.lending.flash): the Balancer V2 vault, a Uniswap V3 pool's
`flash` and a Uniswap V2-style pair's flash swap, each with the fee it charges and what it can lend now.

What each can lend is its balance of the token, read once at load and then moved only by the token's
`Transfer` logs to and from it (a V2 pair's by its `Sync` logs, which state its reserves), so no call is
made per block. Fees, exactly as each contract computes them:

- Balancer V2: `FixedPoint.mulUp(amount, flashLoanFeePercentage)` (1e18 = 100 %), the percentage read from
  the vault's ProtocolFeesCollector and followed from its `FlashLoanFeePercentageChanged`; zero unless
  governance set one.
- Uniswap V3 `flash`: `FullMath.mulDivRoundingUp(amount, fee, 1e6)` with the pool's fee; the pool lends
  only while it has in-range liquidity (checked at load: `liquidity() > 0`).
- V2 flash swap repaid in the borrowed token: the least repayment the pair's constant-product check
  accepts, `ceil(amount·denominator / (denominator - fee))`, less the amount; the pair keeps at least one
  unit of each reserve, so it lends at most reserve - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mevagent.lending.aave_reader import address_arg, call_words
from mevagent.state.abi import address, selector, topic, words

BALANCE_OF = selector("balanceOf(address)")
GET_PROTOCOL_FEES_COLLECTOR = selector("getProtocolFeesCollector()")
GET_FLASH_LOAN_FEE_PERCENTAGE = selector("getFlashLoanFeePercentage()")
TOKEN0 = selector("token0()")
TOKEN1 = selector("token1()")
FEE = selector("fee()")
LIQUIDITY = selector("liquidity()")
GET_RESERVES = selector("getReserves()")

TRANSFER = topic("Transfer(address,address,uint256)")
SYNC = topic("Sync(uint112,uint112)")
FLASH_FEE_CHANGED = topic("FlashLoanFeePercentageChanged(uint256)")
ONE = 10**18

# V2 forks whose pairs call the borrower back under a name the ArbExecutor answers, with their fixed fee.
V2_FLASH_FORKS = {"uniswap_v2", "sushiswap", "quickswap", "pancakeswap_v2"}


def _topic_address(value: str) -> str:
    return "0x" + value[-40:].lower()


def _address_topic(value: str) -> str:
    return "0x" + value[2:].lower().rjust(64, "0")


@dataclass
class _Balances:
    """Balances of `holder` in a few tokens, moved by the tokens' Transfer logs."""

    holder: str
    cash: dict[str, int] = field(default_factory=dict)
    last_block: int = 0

    async def read(self, rpc: Any, tokens: list[str], block: int) -> None:
        for token in tokens:
            self.cash[token] = (await call_words(rpc, token, BALANCE_OF + address_arg(self.holder), hex(block)))[0]
        self.last_block = block

    def apply_transfer(self, log: dict[str, Any]) -> bool:
        token = log["address"].lower()
        topics = log["topics"]
        if token not in self.cash or len(topics) < 3 or topics[0] != TRANSFER:
            return False
        amount = words(log["data"])[0]
        if _topic_address(topics[1]) == self.holder:
            self.cash[token] -= amount
        if _topic_address(topics[2]) == self.holder:
            self.cash[token] += amount
        return True

    def watched(self) -> list[str]:
        return list(self.cash)


@dataclass
class BalancerV2Provider:
    chain: str
    vault: str
    fee_percentage: int  # 1e18 = 100 %
    collector: str
    balances: _Balances
    name: str = "balancer_v2"
    kind = "balancer_v2"

    @classmethod
    async def load(cls, chain: str, rpc: Any, vault: str, tokens: list[str], block: int) -> BalancerV2Provider:
        vault = vault.lower()
        collector = address((await call_words(rpc, vault, GET_PROTOCOL_FEES_COLLECTOR, hex(block)))[0])
        fee = (await call_words(rpc, collector, GET_FLASH_LOAN_FEE_PERCENTAGE, hex(block)))[0]
        balances = _Balances(vault)
        await balances.read(rpc, [t.lower() for t in tokens], block)
        return cls(chain, vault, fee, collector, balances)

    @property
    def lender(self) -> str:
        return self.vault

    @property
    def cash(self) -> dict[str, int]:
        return self.balances.cash

    @property
    def fee_bps(self) -> float:
        return self.fee_percentage * 10_000 / ONE

    def fee(self, asset: str, amount: int) -> int:
        product = amount * self.fee_percentage
        return 0 if product == 0 else (product - 1) // ONE + 1

    def available(self, asset: str) -> int:
        return self.balances.cash.get(asset, 0)

    def loan_fee(self) -> tuple[int, int]:
        return (0, 0)

    def filters(self) -> list[dict[str, Any]]:
        """eth_getLogs filters of what moves it: transfers of its tokens out of and into the vault, fee changes."""
        holder = _address_topic(self.vault)
        tokens = self.balances.watched()
        return [
            {"address": tokens, "topics": [TRANSFER, holder]},
            {"address": tokens, "topics": [TRANSFER, None, holder]},
            {"address": [self.collector], "topics": [FLASH_FEE_CHANGED]},
        ]

    def apply(self, log: dict[str, Any]) -> None:
        if log["address"].lower() == self.collector and log["topics"][0] == FLASH_FEE_CHANGED:
            self.fee_percentage = words(log["data"])[0]
        else:
            self.balances.apply_transfer(log)
        self.balances.last_block = max(self.balances.last_block, int(log["blockNumber"], 16))


@dataclass
class UniswapV3FlashProvider:
    chain: str
    pool: str
    fee_pips: int  # the pool's fee, in hundredths of a basis point
    balances: _Balances
    name: str = "uniswap_v3"
    kind = "uniswap_v3"

    @classmethod
    async def load(cls, chain: str, rpc: Any, pool: str, block: int) -> UniswapV3FlashProvider:
        pool, tag = pool.lower(), hex(block)
        tokens = [address((await call_words(rpc, pool, s, tag))[0]) for s in (TOKEN0, TOKEN1)]
        fee = (await call_words(rpc, pool, FEE, tag))[0]
        if (await call_words(rpc, pool, LIQUIDITY, tag))[0] == 0:
            raise ValueError(f"{pool}: no in-range liquidity: its flash() refuses to lend")
        balances = _Balances(pool)
        await balances.read(rpc, tokens, block)
        return cls(chain, pool, fee, balances)

    @property
    def lender(self) -> str:
        return self.pool

    @property
    def cash(self) -> dict[str, int]:
        return self.balances.cash

    @property
    def fee_bps(self) -> float:
        return self.fee_pips / 100

    def fee(self, asset: str, amount: int) -> int:
        return -(-amount * self.fee_pips // 1_000_000)

    def available(self, asset: str) -> int:
        return self.balances.cash.get(asset, 0)

    def loan_fee(self) -> tuple[int, int]:
        return (0, 0)

    def filters(self) -> list[dict[str, Any]]:
        holder = _address_topic(self.pool)
        tokens = self.balances.watched()
        return [
            {"address": tokens, "topics": [TRANSFER, holder]},
            {"address": tokens, "topics": [TRANSFER, None, holder]},
        ]

    def apply(self, log: dict[str, Any]) -> None:
        self.balances.apply_transfer(log)
        self.balances.last_block = max(self.balances.last_block, int(log["blockNumber"], 16))


@dataclass
class UniswapV2FlashProvider:
    chain: str
    pair: str
    token0: str
    token1: str
    reserves: tuple[int, int]
    swap_fee: int
    fee_denominator: int
    last_block: int = 0
    name: str = "uniswap_v2"
    kind = "uniswap_v2"

    @classmethod
    async def load(
        cls, chain: str, rpc: Any, pair: str, swap_fee: int, fee_denominator: int, block: int
    ) -> UniswapV2FlashProvider:
        pair, tag = pair.lower(), hex(block)
        token0 = address((await call_words(rpc, pair, TOKEN0, tag))[0])
        token1 = address((await call_words(rpc, pair, TOKEN1, tag))[0])
        reserve0, reserve1, _ = await call_words(rpc, pair, GET_RESERVES, tag)
        return cls(chain, pair, token0, token1, (reserve0, reserve1), swap_fee, fee_denominator, block)

    @property
    def lender(self) -> str:
        return self.pair

    @property
    def cash(self) -> dict[str, int]:
        return {self.token0: self.reserves[0], self.token1: self.reserves[1]}

    @property
    def fee_bps(self) -> float:
        return self.swap_fee * 10_000 / (self.fee_denominator - self.swap_fee)

    def fee(self, asset: str, amount: int) -> int:
        kept = self.fee_denominator - self.swap_fee
        return -(-amount * self.fee_denominator // kept) - amount

    def available(self, asset: str) -> int:
        held = self.cash.get(asset, 0)
        return max(held - 1, 0)

    def loan_fee(self) -> tuple[int, int]:
        return (self.swap_fee, self.fee_denominator)

    def filters(self) -> list[dict[str, Any]]:
        return [{"address": [self.pair], "topics": [SYNC]}]

    def apply(self, log: dict[str, Any]) -> None:
        if log["address"].lower() == self.pair and log["topics"][0] == SYNC:
            reserve0, reserve1 = words(log["data"])[:2]
            self.reserves = (reserve0, reserve1)
        self.last_block = max(self.last_block, int(log["blockNumber"], 16))
