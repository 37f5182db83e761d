"""Aave V3 positions, valued exactly as the Pool values them (GenericLogic.calculateUserAccountData).

A reserve's state is its liquidity and variable-borrow indexes, their rates and the timestamp they were
written (the Pool emits all of them in `ReserveDataUpdated`); its risk parameters come from its packed
configuration word. A position is its owner's scaled aToken balances (where used as collateral) and
scaled variable-debt balances, read when an event names the owner. The health factor at a timestamp is
then integer arithmetic: each balance grown by the reserve's normalized income or debt at that time
(linear interest for deposits, the Pool's three-term compounded interest for debt), valued at the
protocol oracle's price, summed, weighted by the liquidation thresholds and divided with the Pool's own
rounding (rayMul, percentMul, wadDiv round half up; the base-currency conversions truncate).

Re-evaluating every position on every oracle answer would cost tens of milliseconds at 50,000
positions, so `PositionBook` keeps each position's threshold-weighted collateral and debt as floats in
numpy vectors and, per asset, the positions holding it with their price-free weights. An oracle answer
moves only those positions' two floats (one vector operation each); only the positions whose float
health factor comes within `margin` of 1 are recomputed exactly, and only the exact figure decides. Between
answers interest alone moves health factors (debt compounds, collateral income grows): at each head
`on_head` bounds that move by the largest debt growth since the floats were computed, and the same sorted
screen selects the few positions it may have taken under 1 (and those an event set since), valued exactly.
Stable-rate debt is not tracked on V3 markets (Aave disabled stable borrowing there; a V3 reserve with it
enabled is refused at load). Aave V2 and its forks (mevagent.lending.aave_v2) keep it: a position's
stable debt is its principal, rate and timestamp per asset (StableDebtToken.balanceOf), valued with the
reserve's own compounding; the screen adds them to its floats at each rebuild (vectorized) and bounds
their growth since by the largest stable rate tracked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

RAY = 10**27
HALF_RAY = RAY // 2
WAD = 10**18
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = 5_000
SECONDS_PER_YEAR = 365 * 24 * 3600
MAX_UINT = 2**256 - 1
# Below this health factor a position may be liquidated; below CLOSE_FACTOR_HF_THRESHOLD all of its
# debt may be repaid at once (LiquidationLogic), above it half.
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD
CLOSE_FACTOR_HF_THRESHOLD = 95 * WAD // 100
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000


def ray_mul(a: int, b: int) -> int:
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    return (a * RAY + b // 2) // b


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage


def linear_interest(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateLinearInterest."""
    return RAY + rate * (now - last_update) // SECONDS_PER_YEAR


def compounded_interest(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest: the binomial expansion to the third term."""
    exp = now - last_update
    if exp == 0:
        return RAY
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    return binomial_terms(exp, rate * exp // SECONDS_PER_YEAR, base_power_two, base_power_three)


def binomial_terms(exp: int, first_term: int, base_power_two: int, base_power_three: int) -> int:
    """RAY + the binomial expansion's first three terms over `exp` seconds, V3's and V2's alike (they differ
    in how the per-second rate's powers are rounded)."""
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    second_term = exp * exp_minus_one * base_power_two // 2
    third_term = exp * exp_minus_one * exp_minus_two * base_power_three // 6
    return RAY + first_term + second_term + third_term


@dataclass(frozen=True, slots=True)
class ReserveParams:
    """The fields of a reserve's packed configuration word (ReserveConfiguration) the valuation uses."""

    ltv: int  # basis points
    liquidation_threshold: int  # basis points
    liquidation_bonus: int  # basis points, 10_000 + the liquidator's bonus
    decimals: int
    active: bool
    stable_borrowing: bool
    liquidation_protocol_fee: int  # basis points of the liquidation bonus kept by the protocol

    @classmethod
    def decode(cls, word: int) -> ReserveParams:
        return cls(
            ltv=word & 0xFFFF,
            liquidation_threshold=(word >> 16) & 0xFFFF,
            liquidation_bonus=(word >> 32) & 0xFFFF,
            decimals=(word >> 48) & 0xFF,
            active=bool((word >> 56) & 1),
            stable_borrowing=bool((word >> 59) & 1),
            liquidation_protocol_fee=(word >> 152) & 0xFFFF,
        )


@dataclass(frozen=True, slots=True)
class StableDebt:
    """One user's stable-rate debt in one reserve, as its StableDebtToken keeps it."""

    principal: int  # principalBalanceOf
    rate: int  # getUserStableRate, ray
    last_update: int  # getUserLastUpdated


@dataclass(slots=True)
class Reserve:
    asset: str
    id: int  # its bit pair in a user's configuration bitmap
    params: ReserveParams
    a_token: str
    debt_token: str  # the variable-debt token
    liquidity_index: int
    variable_borrow_index: int
    liquidity_rate: int
    variable_borrow_rate: int
    last_update: int  # the timestamp of the block that wrote the indexes
    stable_debt_token: str = ""

    # The kind of the Hop a liquidation of this reserve's debt is reported under (V2's reserve has its own).
    LIQUIDATION_HOP: ClassVar[str] = "aave_v3_liquidation"

    def compounded(self, rate: int, last_update: int, now: int) -> int:
        """The protocol's MathUtils.calculateCompoundedInterest (V3's; mevagent.lending.aave_v2 has V2's)."""
        return compounded_interest(rate, last_update, now)

    def flashloan_premium(self, amount: int, premium_bps: int) -> int:
        """What the market's own flashloan of `amount` of this asset charges: V3 rounds half up (percentMul)."""
        return percent_mul(amount, premium_bps)

    def liquidation(
        self,
        position: Position,
        collateral_asset: str,
        reserves: Mapping[str, Reserve],
        prices: Mapping[str, int],
        now: int,
        health_factor: int,
    ) -> Liquidation:
        """The most debt of this reserve's asset the protocol lets a liquidator repay against `collateral_asset`,
        and what it seizes (V3's LiquidationLogic: size_liquidation; V2's collateral manager in aave_v2)."""
        return size_liquidation(position, collateral_asset, self.asset, reserves, prices, now, health_factor)

    def normalized_income(self, now: int) -> int:
        if now == self.last_update:
            return self.liquidity_index
        return ray_mul(linear_interest(self.liquidity_rate, self.last_update, now), self.liquidity_index)

    def normalized_debt(self, now: int) -> int:
        if now == self.last_update:
            return self.variable_borrow_index
        return ray_mul(self.compounded(self.variable_borrow_rate, self.last_update, now), self.variable_borrow_index)

    def stable_balance(self, debt: StableDebt, now: int) -> int:
        """StableDebtToken.balanceOf at `now` (the principal before its own timestamp: the book's floats may
        be older than a debt opened since)."""
        if debt.principal == 0:
            return 0
        return ray_mul(debt.principal, self.compounded(debt.rate, debt.last_update, max(now, debt.last_update)))

    def updated(
        self, liquidity_rate: int, variable_borrow_rate: int, liquidity_index: int, variable_index: int, at: int
    ) -> None:
        """A `ReserveDataUpdated` of the block with timestamp `at`."""
        self.liquidity_rate = liquidity_rate
        self.variable_borrow_rate = variable_borrow_rate
        self.liquidity_index = liquidity_index
        self.variable_borrow_index = variable_index
        self.last_update = at


@dataclass(slots=True)
class Position:
    user: str
    collateral: dict[str, int] = field(default_factory=dict)  # asset -> scaled aToken balance used as collateral
    debt: dict[str, int] = field(default_factory=dict)  # asset -> scaled variable-debt balance
    stable: dict[str, StableDebt] = field(default_factory=dict)  # asset -> stable-rate debt (V2 markets)

    def owed(self, asset: str, reserve: Reserve, now: int) -> int:
        """The debt in `asset` at `now`: variable plus stable, as the debt tokens' balanceOf answer them."""
        scaled = self.debt.get(asset, 0)
        owed = ray_mul(scaled, reserve.normalized_debt(now)) if scaled else 0
        stable = self.stable.get(asset)
        return owed if stable is None else owed + reserve.stable_balance(stable, now)


@dataclass(frozen=True, slots=True)
class AccountData:
    """What Pool.getUserAccountData answers, to the unit."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int

    @property
    def liquidatable(self) -> bool:
        return self.health_factor < HEALTH_FACTOR_LIQUIDATION_THRESHOLD


def account_data(
    position: Position, reserves: Mapping[str, Reserve], prices: Mapping[str, int], now: int
) -> AccountData:
    """GenericLogic.calculateUserAccountData (no e-mode) plus the Pool's available-borrows figure."""
    collateral = debt = avg_ltv = avg_threshold = 0
    for asset, scaled in position.collateral.items():
        reserve = reserves[asset]
        params = reserve.params
        if params.liquidation_threshold == 0 or scaled == 0:
            continue
        value = ray_mul(scaled, reserve.normalized_income(now)) * prices[asset] // 10**params.decimals
        collateral += value
        avg_ltv += value * params.ltv
        avg_threshold += value * params.liquidation_threshold
    for asset in position.debt.keys() | position.stable.keys() if position.stable else position.debt:
        reserve = reserves[asset]
        owed = position.owed(asset, reserve, now)
        if owed:
            debt += prices[asset] * owed // 10**reserve.params.decimals
    if collateral:
        avg_ltv //= collateral
        avg_threshold //= collateral
    health = MAX_UINT if debt == 0 else wad_div(percent_mul(collateral, avg_threshold), debt)
    borrowable = percent_mul(collateral, avg_ltv)
    available = 0 if borrowable <= debt else borrowable - debt
    return AccountData(collateral, debt, available, avg_threshold, avg_ltv, health)


def close_factor(health_factor: int) -> int:
    """LiquidationLogic: the share of a debt one liquidation may repay, in basis points."""
    if health_factor > CLOSE_FACTOR_HF_THRESHOLD:
        return DEFAULT_LIQUIDATION_CLOSE_FACTOR
    return MAX_LIQUIDATION_CLOSE_FACTOR


@dataclass(frozen=True, slots=True)
class Liquidation:
    """The amounts LiquidationLogic computes for one (collateral, debt) pair of a position."""

    user: str
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int  # in the debt token
    collateral_seized: int  # in the collateral token, what the liquidator receives (protocol fee excluded)


def size_liquidation(
    position: Position,
    collateral_asset: str,
    debt_asset: str,
    reserves: Mapping[str, Reserve],
    prices: Mapping[str, int],
    now: int,
    health_factor: int,
) -> Liquidation:
    """LiquidationLogic._calculateDebt and _calculateAvailableCollateralToLiquidate, for the most debt
    the close factor allows (receiveAToken false, no e-mode)."""
    debt_reserve, collateral_reserve = reserves[debt_asset], reserves[collateral_asset]
    user_debt = ray_mul(position.debt.get(debt_asset, 0), debt_reserve.normalized_debt(now))
    debt_to_cover = percent_mul(user_debt, close_factor(health_factor))
    debt_to_cover, seized = seizure(
        position, collateral_asset, debt_asset, reserves, prices, now, debt_to_cover, _bonus_after_the_price
    )
    bonus = collateral_reserve.params.liquidation_bonus
    protocol_fee = collateral_reserve.params.liquidation_protocol_fee
    if protocol_fee:
        bonus_collateral = seized - percent_div(seized, bonus)
        seized -= percent_mul(bonus_collateral, protocol_fee)
    return Liquidation(position.user, collateral_asset, debt_asset, debt_to_cover, seized)


def _bonus_after_the_price(debt_value: int, collateral_price: int, debt_unit: int, bonus: int) -> int:
    """LiquidationLogic's most collateral for a debt's value: in collateral first, then with the bonus."""
    return percent_mul(debt_value // (collateral_price * debt_unit), bonus)


def seizure(
    position: Position,
    collateral_asset: str,
    debt_asset: str,
    reserves: Mapping[str, Reserve],
    prices: Mapping[str, int],
    now: int,
    debt_to_cover: int,
    max_collateral: Callable[[int, int, int, int], int],
) -> tuple[int, int]:
    """(debt covered, collateral seized) of _calculateAvailableCollateralToLiquidate, V3's and V2's alike: the
    collateral `debt_to_cover` buys with the bonus (`max_collateral` of the debt's value times the collateral's
    unit, the collateral's price, the debt's unit and the bonus: where each version applies the bonus), or all
    the position holds and the debt that buys it."""
    debt_reserve, collateral_reserve = reserves[debt_asset], reserves[collateral_asset]
    collateral_balance = ray_mul(
        position.collateral.get(collateral_asset, 0), collateral_reserve.normalized_income(now)
    )
    collateral_price, debt_price = prices[collateral_asset], prices[debt_asset]
    collateral_unit = 10**collateral_reserve.params.decimals
    debt_unit = 10**debt_reserve.params.decimals
    bonus = collateral_reserve.params.liquidation_bonus
    most = max_collateral(debt_price * debt_to_cover * collateral_unit, collateral_price, debt_unit, bonus)
    if most > collateral_balance:
        seized = collateral_balance
        debt_to_cover = percent_div((collateral_price * seized * debt_unit) // (debt_price * collateral_unit), bonus)
        return debt_to_cover, seized
    return debt_to_cover, most


def _grown_rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    if matrix.shape[0] >= rows:
        return matrix
    grown = np.zeros((rows, matrix.shape[1]))
    grown[: matrix.shape[0]] = matrix
    return grown


class PositionBook:
    """Every tracked position of one market, re-evaluated on each oracle answer (see the module doc).

    The screen is two steps, both exact-safe. A float health factor can fall at most by the factor
    G = min(1, smallest price ratio) / max(1, largest price ratio) of the prices since the floats' last
    rebuild (collateral values scale down with their prices at worst, debts up), so the positions
    sorted by their health factor at that rebuild give, by one binary search, the only ones that can
    be near 1 now. Of those, the ones holding the answered asset are valued in floats (a matrix-vector
    product over the few rows), and only those within `margin` (widened by the debt interest accrued
    since the rebuild) are valued exactly. The floats are rebuilt (vectorized, O(positions)) after
    index writes, and by `maintain` between answers once the candidate prefix has grown well past its
    size at the last rebuild (or many positions changed, or debt interest has drifted past the margin).
    """

    def __init__(self, reserves: Mapping[str, Reserve], prices: Mapping[str, int], *, margin: float = 1e-3) -> None:
        self.reserves = dict(reserves)
        self.prices = dict(prices)
        self.margin = margin
        self.positions: list[Position] = []
        self._index: dict[str, int] = {}
        self._assets = list(self.reserves)
        self._column = {a: j for j, a in enumerate(self._assets)}
        width = len(self._assets)
        self._scaled_collateral = np.zeros((0, width))  # scaled balances, as floats
        self._scaled_debt = np.zeros((0, width))
        self._rows_dirty = False  # positions changed: their rows must be refreshed
        self._pending_rows: dict[int, Position] = {}
        self._built_at = -1  # the timestamp the floats were computed at (-1: never)
        self._debt_at_build: dict[str, int] = {}
        self._ref_prices = np.zeros(width)
        self._prices = np.zeros(width)
        self._cw = np.zeros((0, width))  # threshold-weighted collateral per unit of price
        self._dw = np.zeros((0, width))  # debt per unit of price
        self._order = np.zeros(0, dtype=np.int64)  # positions by their float health factor at the rebuild
        self._sorted_hf = np.zeros(0)
        self._prefix_at_build = 0
        self._changed: set[int] = set()  # rows set since the rebuild
        self._income = np.zeros(width)  # per reserve: what a scaled collateral unit weighs, per unit of price
        self._growth = np.zeros(width)  # per reserve: what a scaled debt unit weighs, per unit of price
        self.exact_evaluations = 0
        self.rebuilds = 0
        self.stale = False
        self._drift_at = (-1, 0.0)
        self._stable_rows: dict[int, Position] = {}  # the positions with stable-rate debt (V2 markets)
        self._stable_arrays: tuple[np.ndarray, ...] | None = None  # their debts as vectors (None: to be rebuilt)
        self._max_stable_rate = 0  # the largest stable rate tracked, ray: bounds their growth between rebuilds

    def __len__(self) -> int:
        return len(self.positions)

    def set_position(self, position: Position) -> None:
        """Add or replace a position (after an event named its owner and its balances were read)."""
        at = self._index.get(position.user)
        if at is None:
            at = self._index[position.user] = len(self.positions)
            self.positions.append(position)
        else:
            self.positions[at] = position
        self._pending_rows[at] = position
        if position.stable or at in self._stable_rows:
            self._stable_arrays = None
        if position.stable:
            self._stable_rows[at] = position
            self._max_stable_rate = max(self._max_stable_rate, *(d.rate for d in position.stable.values()))
        else:
            self._stable_rows.pop(at, None)
        if self._built_at >= 0:
            self._refresh_rows()
            self._cw = _grown_rows(self._cw, len(self.positions))
            self._dw = _grown_rows(self._dw, len(self.positions))
            self._cw[at] = self._scaled_collateral[at] * self._income
            self._dw[at] = self._scaled_debt[at] * self._growth
            if position.stable:
                self._dw[at] += self._stable_row(position, self._built_at)
            self._changed.add(at)

    def _stable_row(self, position: Position, now: int) -> np.ndarray:
        """A position's stable debt at `now`, per unit of price (the same units as its variable debt's row)."""
        row = np.zeros(len(self._assets))
        for asset, debt in position.stable.items():
            reserve = self.reserves[asset]
            row[self._column[asset]] = reserve.stable_balance(debt, now) / 10**reserve.params.decimals
        return row

    def _add_stable(self, now: int) -> None:
        """Every stable debt at `now` added to its row, vectorized: the reserves' compounding in floats (the
        screen's margin absorbs their rounding; the exact valuation is integer)."""
        if self._stable_arrays is None:
            entries = [
                (
                    i,
                    self._column[asset],
                    debt.principal,
                    debt.rate,
                    debt.last_update,
                    self.reserves[asset].params.decimals,
                )
                for i, position in self._stable_rows.items()
                for asset, debt in position.stable.items()
            ]
            rows, columns, principal, rate, since, decimals = (np.array(v) for v in zip(*entries, strict=True))
            per_unit = principal.astype(float) / 10.0 ** decimals.astype(float)
            self._stable_arrays = (rows, columns, per_unit, rate.astype(float) / RAY / SECONDS_PER_YEAR, since)
        rows, columns, per_unit, per_second, since = self._stable_arrays
        t = np.maximum(now - since, 0).astype(float)
        x = per_second * t
        growth = 1.0 + x + x * x / 2.0 + x * x * x / 6.0  # both versions' three terms, within the margin
        np.add.at(self._dw, (rows, columns), per_unit * growth)

    def position(self, user: str) -> Position:
        return self.positions[self._index[user]]

    def holders(self, asset: str) -> int:
        """How many positions hold `asset` as collateral or debt."""
        self._refresh_rows()
        n, column = len(self.positions), self._column[asset]
        held = (self._scaled_collateral[:n, column] > 0) | (self._scaled_debt[:n, column] > 0)
        for i, position in self._stable_rows.items():  # stable-rate debt only (V2 markets)
            held[i] |= asset in position.stable
        return int(held.sum())

    def _refresh_rows(self) -> None:
        n, width = len(self.positions), len(self._assets)
        if self._scaled_collateral.shape[0] < n:
            grow = max(n, 2 * self._scaled_collateral.shape[0])
            for name in ("_scaled_collateral", "_scaled_debt"):
                old = getattr(self, name)
                new = np.zeros((grow, width))
                new[: old.shape[0]] = old
                setattr(self, name, new)
        for i, position in self._pending_rows.items():
            self._scaled_collateral[i] = 0.0
            self._scaled_debt[i] = 0.0
            for asset, scaled in position.collateral.items():
                self._scaled_collateral[i, self._column[asset]] = scaled
            for asset, scaled in position.debt.items():
                self._scaled_debt[i, self._column[asset]] = scaled
        self._pending_rows.clear()

    def _rebuild(self, now: int) -> None:
        """The float weights at `now` and the order by health factor at the current prices."""
        self._refresh_rows()
        n = len(self.positions)
        income = np.array(
            [
                r.normalized_income(now) / RAY * r.params.liquidation_threshold / PERCENTAGE_FACTOR
                / 10**r.params.decimals
                for r in self.reserves.values()
            ]
        )  # fmt: skip
        growth = np.array([r.normalized_debt(now) / RAY / 10**r.params.decimals for r in self.reserves.values()])
        self._income, self._growth = income, growth
        self._cw = self._scaled_collateral[:n] * income
        self._dw = self._scaled_debt[:n] * growth
        if self._stable_rows:
            self._add_stable(now)
        self._changed.clear()
        self._prices = np.array([float(self.prices[a]) for a in self._assets])
        self._ref_prices = self._prices.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = (self._cw @ self._prices) / (self._dw @ self._prices)
        hf = np.where(np.isnan(hf), np.inf, hf)
        self._order = np.argsort(hf)
        self._sorted_hf = hf[self._order]
        self._built_at = now
        self._debt_at_build = {a: r.normalized_debt(now) for a, r in self.reserves.items()}
        self._prefix_at_build = int(np.searchsorted(self._sorted_hf, 1.0 + 2 * self.margin))
        self.rebuilds += 1
        self.stale = False
        self._drift_at = (-1, 0.0)

    def _drift(self, now: int) -> float:
        """The largest relative growth of any reserve's normalized debt since the floats were computed."""
        if now == self._built_at:
            return 0.0
        if self._drift_at[0] != now:  # one figure per timestamp: several answers share a block
            drift = max((r.normalized_debt(now) / self._debt_at_build[a] - 1.0 for a, r in self.reserves.items()))
            if self._max_stable_rate:  # e^(rate t) bounds the protocols' truncated compounding from above
                years = (now - self._built_at) / SECONDS_PER_YEAR
                drift = max(drift, math.expm1(self._max_stable_rate / RAY * years))
            self._drift_at = (now, drift)
        return self._drift_at[1]

    def _prefix(self, now: int) -> int:
        """How many positions, in the rebuild's order, may have a float health factor near 1 now."""
        ratios = self._prices / self._ref_prices
        worst = min(1.0, float(ratios.min())) / max(1.0, float(ratios.max()))
        return int(np.searchsorted(self._sorted_hf, (1.0 + self.margin + self._drift(now)) / worst))

    def on_price(self, asset: str, price: int, now: int) -> list[tuple[Position, AccountData]]:
        """The oracle now answers `price` for `asset`: the liquidatable positions holding it, exactly."""
        self.prices[asset] = price
        if self._built_at < 0:
            self._rebuild(now)
        column = self._column[asset]
        self._prices[column] = float(price)
        k = self._prefix(now)
        # The screen stays exact however stale; it only gets slower. Rebuilding is left to maintain().
        self.stale = k > 2 * self._prefix_at_build + 256 or len(self._changed) > 256 or self._drift(now) > self.margin
        candidates = self._candidates(k)
        holding = (self._cw[candidates, column] > 0.0) | (self._dw[candidates, column] > 0.0)
        return self._exact(now, candidates[holding])

    def _candidates(self, k: int) -> np.ndarray:
        """The first `k` positions of the rebuild's order and every row set since (not in its order by their
        new figures, always screened; one may also be in the prefix by its old ones: `_exact` values it once)."""
        candidates = self._order[:k]
        if self._changed:
            candidates = np.concatenate((candidates, np.fromiter(self._changed, dtype=np.int64)))
        return candidates

    def on_head(self, now: int) -> list[tuple[Position, AccountData]]:
        """A head with timestamp `now`, answered or not: every liquidatable position, exactly.

        Between answers health factors move by interest alone (debt indexes compound with time, collateral
        income grows linearly), and a position an event set since the rebuild may be liquidatable as it
        is. The bound is the answers' own: a float health factor at the rebuild can have fallen at most by
        the prices' worst ratio since and by the largest debt growth since (`_drift`; income only raises
        it), so the one binary search of `_prefix` selects every position that may be near 1 now, the
        rows set since are added, the floats of those few are computed at the current prices, and only
        the ones within the margin widened by that growth are valued exactly."""
        if self._built_at < 0:
            self._rebuild(now)
        k = self._prefix(now)
        self.stale = k > 2 * self._prefix_at_build + 256 or len(self._changed) > 256 or self._drift(now) > self.margin
        return self._exact(now, self._candidates(k))

    def _exact(self, now: int, candidates: np.ndarray) -> list[tuple[Position, AccountData]]:
        if candidates.size == 0:
            return []
        with np.errstate(divide="ignore", invalid="ignore"):  # a row without debt: inf, never near
            hf = (self._cw[candidates] @ self._prices) / (self._dw[candidates] @ self._prices)
        near = candidates[hf < 1.0 + self.margin + self._drift(now)]
        found = []
        for i in dict.fromkeys(near.tolist()):  # a row set since the rebuild may be listed twice
            position = self.positions[i]
            self.exact_evaluations += 1
            data = account_data(position, self.reserves, self.prices, now)
            if data.liquidatable:
                found.append((position, data))
        return found

    def maintain(self, now: int) -> bool:
        """Rebuild the floats if the last answers found them stale (called between answers, e.g. per head)."""
        if self.stale or self._built_at < 0:
            self._rebuild(now)
            return True
        return False

    def evaluate_all(self, now: int) -> list[tuple[Position, AccountData]]:
        """Every liquidatable position (at start, and after a reload)."""
        self._rebuild(now)
        return self._exact(now, self._order[: self._prefix(now)])

    def reserves_updated(self, assets: Iterable[str], now: int) -> None:
        """Indexes moved (a ReserveDataUpdated): the float weights are rebuilt."""
        if any(a in self.reserves for a in assets):
            self._rebuild(now)
