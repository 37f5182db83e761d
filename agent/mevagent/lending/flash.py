"""Flashloan providers: what borrowing `amount` of a token costs and whether a provider has it now.

An Aave V3 pool lends what its aTokens hold of the underlying: that cash is read once and then moved by
the Pool's own events (supplies and repayments add to it, withdrawals and borrows take from it, a
flashloan leaves its premium, a liquidation adds the repaid debt to one reserve and, unless the
liquidator takes aTokens, takes the seized collateral from another), so no call is made per block. Its
fee is `flashLoanSimple`'s: the amount times the Pool's FLASHLOAN_PREMIUM_TOTAL, rounded half up
(percentMul). `cheapest` picks, among providers holding enough, the one charging least.

An Aave V2 LendingPool (Radiant's) is followed the same way from its own events (`AaveV2Provider`); it
lends through `flashLoan` (one asset, mode 0: the ArbExecutor's loan kind 5), whose premium is the amount
times FLASHLOAN_PREMIUM_TOTAL / 10,000, truncated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mevagent.lending.aave_reader import address_arg, call_words
from mevagent.lending.aave_v3 import percent_mul
from mevagent.state.abi import address, selector, topic, words

BALANCE_OF = selector("balanceOf(address)")

SUPPLY = topic("Supply(address,address,address,uint256,uint16)")
WITHDRAW = topic("Withdraw(address,address,address,uint256)")
BORROW = topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")
REPAY = topic("Repay(address,address,address,uint256,bool)")
FLASH_LOAN = topic("FlashLoan(address,address,address,uint256,uint8,uint256,uint16)")
LIQUIDATION_CALL = topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
DEPOSIT_V2 = topic("Deposit(address,address,address,uint256,uint16)")
BORROW_V2 = topic("Borrow(address,address,address,uint256,uint256,uint256,uint16)")
REPAY_V2 = topic("Repay(address,address,address,uint256)")
FLASH_LOAN_V2 = topic("FlashLoan(address,address,address,uint256,uint256,uint16)")


@dataclass
class AaveV3Provider:
    """One Aave V3 pool as a flashloan provider: its premium and the cash of each reserve."""

    chain: str
    pool: str
    premium_bps: int
    cash: dict[str, int] = field(default_factory=dict)  # underlying held by the reserve's aToken
    last_block: int = 0
    name: str = "aave_v3"
    kind = "aave_v3"  # mevagent.executor.funding: the contract borrows with flashLoanSimple

    @property
    def lender(self) -> str:
        return self.pool

    def loan_fee(self) -> tuple[int, int]:
        return (0, 0)  # the pool says its premium in the callback

    @classmethod
    async def load(cls, chain: str, rpc: Any, pool: str, a_tokens: dict[str, str], premium_bps: int, block: int):
        cash = {}
        for asset, a_token in a_tokens.items():
            cash[asset] = (await call_words(rpc, asset, BALANCE_OF + address_arg(a_token), hex(block)))[0]
        return cls(chain, pool.lower(), premium_bps, cash, block)

    def fee(self, asset: str, amount: int) -> int:
        return percent_mul(amount, self.premium_bps)

    def available(self, asset: str) -> int:
        return self.cash.get(asset, 0)

    def apply(self, log: dict[str, Any]) -> None:
        """One log of the pool (others are ignored), in chain order."""
        if log["address"].lower() != self.pool:
            return
        topics = log["topics"]
        reserve = address(int(topics[1], 16)) if len(topics) > 1 else ""
        self._event(topics[0], topics, words(log["data"]), reserve, log)
        self.last_block = max(self.last_block, int(log["blockNumber"], 16))

    def _event(self, kind: str, topics: list[str], data: list[int], reserve: str, log: dict[str, Any]) -> None:
        """What one of the pool's events moves: `reserve` is its first indexed address, `data` its words."""
        if kind == SUPPLY:
            self._move(reserve, data[1])  # data: user, amount
        elif kind == WITHDRAW:
            self._move(reserve, -data[0])
        elif kind == BORROW:
            self._move(reserve, -data[1])  # data: user, amount, mode, rate
        elif kind == REPAY:
            if not data[1]:  # repaid with aTokens: they are burnt, the cash stays where it was
                self._move(reserve, data[0])
        elif kind == FLASH_LOAN:
            asset = address(int(topics[2], 16))  # FlashLoan(target, initiator indexed, asset indexed, ...)
            amount, mode, premium = data[1], data[2], data[3]
            if mode == 0:
                self._move(asset, premium)
            else:  # not repaid: opened as a debt position of `amount`
                self._move(asset, -amount)
        elif kind == LIQUIDATION_CALL:
            collateral, debt = reserve, address(int(topics[2], 16))
            debt_to_cover, seized, _liquidator, receive_a_token = data[0], data[1], data[2], data[3]
            self._move(debt, debt_to_cover)
            if not receive_a_token:
                self._move(collateral, -seized)

    def _move(self, asset: str, amount: int) -> None:
        if asset in self.cash:
            self.cash[asset] += amount


@dataclass
class AaveV2Provider(AaveV3Provider):
    """An Aave V2 LendingPool as a flashloan provider: its premium and the cash of each reserve."""

    name: str = "aave_v2"
    kind = "aave_v2"  # mevagent.executor.funding: the contract borrows with flashLoan (one asset, mode 0)
    # The last Borrow: a flashLoan left open as debt (mode 1 or 2) emits it, then its FlashLoan, no premium paid.
    _borrowed: tuple[str, str, int] = ("", "", 0)

    def fee(self, asset: str, amount: int) -> int:
        return amount * self.premium_bps // 10_000

    def _event(self, kind: str, topics: list[str], data: list[int], reserve: str, log: dict[str, Any]) -> None:
        if kind == DEPOSIT_V2:
            self._move(reserve, data[1])  # data: user, amount
        elif kind == BORROW_V2:
            self._move(reserve, -data[1])  # data: user, amount, mode, rate
            self._borrowed = (log.get("transactionHash", ""), reserve, data[1])
        elif kind == REPAY_V2:
            self._move(reserve, data[0])
        elif kind == FLASH_LOAN_V2:
            asset = address(int(topics[3], 16))  # FlashLoan(target, initiator, asset: all indexed; amount, premium)
            amount, premium = data[0], data[1]
            if self._borrowed != (log.get("transactionHash", ""), asset, amount):
                self._move(asset, premium)  # repaid with its premium
        elif kind in (WITHDRAW, LIQUIDATION_CALL):  # the same events as V3's
            super()._event(kind, topics, data, reserve, log)


def cheapest(providers: Iterable[AaveV3Provider], asset: str, amount: int) -> AaveV3Provider | None:
    """The provider with at least `amount` of `asset` that charges least for it (None: nobody has it)."""
    able = [p for p in providers if p.available(asset) >= amount]
    return min(able, key=lambda p: p.fee(asset, amount), default=None)
