"""Aave V2 and its forks (Radiant): what differs from Aave V3 (mevagent.lending.aave_v3), which values both.

The account data are V3's (GenericLogic.calculateUserAccountData sums the same per-asset truncated values,
weights and health factor) with two differences kept here: MathUtils.calculateCompoundedInterest divides
the rate by the seconds of a year before raising it (V3 divides after), for the variable index and for each
user's stable-rate debt, which V2 markets keep; and the LendingPoolCollateralManager's liquidation, which
always lets half of a debt (stable plus variable) be repaid, applies the bonus before dividing by the
collateral's price, and keeps no protocol share of the bonus. V2 has no e-mode, isolation or siloed
borrowing. A reserve's configuration word has the same layout for the fields valued (ltv, liquidation
threshold and bonus, decimals, active, stable borrowing); its ReserveData tuple is ordered differently
(mevagent.lending.aave_reader reads both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mevagent.lending.aave_v3 import (
    RAY,
    SECONDS_PER_YEAR,
    Liquidation,
    Position,
    Reserve,
    binomial_terms,
    percent_mul,
    ray_mul,
    seizure,
)

LIQUIDATION_CLOSE_FACTOR_PERCENT = 5_000  # LendingPoolCollateralManager: half of the debt, whatever the health


def compounded_interest_v2(rate: int, last_update: int, now: int) -> int:
    """V2's MathUtils.calculateCompoundedInterest: the binomial expansion to the third term, per-second rate first."""
    exp = now - last_update
    if exp == 0:
        return RAY
    rate_per_second = rate // SECONDS_PER_YEAR
    base_power_two = ray_mul(rate_per_second, rate_per_second)
    base_power_three = ray_mul(base_power_two, rate_per_second)
    return binomial_terms(exp, rate_per_second * exp, base_power_two, base_power_three)


@dataclass(slots=True)
class ReserveV2(Reserve):
    """A reserve of an Aave V2 market: V3's, compounded the V2 way, liquidated by the collateral manager's
    rules (half the debt whatever the health factor), its flashloan premium truncated."""

    LIQUIDATION_HOP: ClassVar[str] = "aave_v2_liquidation"

    def compounded(self, rate: int, last_update: int, now: int) -> int:
        return compounded_interest_v2(rate, last_update, now)

    def flashloan_premium(self, amount: int, premium_bps: int) -> int:
        """LendingPool.flashLoan's premium: amount * FLASHLOAN_PREMIUM_TOTAL / 10,000, truncated."""
        return amount * premium_bps // 10_000

    def liquidation(
        self,
        position: Position,
        collateral_asset: str,
        reserves: Mapping[str, Reserve],
        prices: Mapping[str, int],
        now: int,
        health_factor: int,
    ) -> Liquidation:
        return size_liquidation_v2(position, collateral_asset, self.asset, reserves, prices, now)


def _bonus_before_the_price(debt_value: int, collateral_price: int, debt_unit: int, bonus: int) -> int:
    """The collateral manager's most collateral for a debt's value: with the bonus first, then in collateral."""
    return percent_mul(debt_value, bonus) // (collateral_price * debt_unit)


def size_liquidation_v2(
    position: Position,
    collateral_asset: str,
    debt_asset: str,
    reserves: Mapping[str, Reserve],
    prices: Mapping[str, int],
    now: int,
) -> Liquidation:
    """LendingPoolCollateralManager.liquidationCall's amounts for the most debt it lets be repaid (half of the
    stable plus variable debt; receiveAToken false): _calculateAvailableCollateralToLiquidate, to the unit."""
    user_debt = position.owed(debt_asset, reserves[debt_asset], now)
    debt_to_cover = percent_mul(user_debt, LIQUIDATION_CLOSE_FACTOR_PERCENT)
    debt_to_cover, seized = seizure(
        position, collateral_asset, debt_asset, reserves, prices, now, debt_to_cover, _bonus_before_the_price
    )
    return Liquidation(position.user, collateral_asset, debt_asset, debt_to_cover, seized)
