"""The position book's float screen never hides a liquidatable position: after every oracle answer it
returns exactly the positions holding that asset whose exact health factor (mevagent.lending.aave_v3,
checked against the Pool itself in test_aave_v3) is below 1, for random markets, positions, price paths
and index updates."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mevagent.lending.aave_v3 import RAY, Position, PositionBook, Reserve, ReserveParams, account_data

ASSETS = ("0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20)
DECIMALS = (18, 6, 8)
PRICES = (2_000 * 10**8, 10**8, 60_000 * 10**8)


def _reserves(thresholds: list[int], indexes: list[int]) -> dict[str, Reserve]:
    return {
        asset: Reserve(
            asset=asset,
            id=i,
            params=ReserveParams(threshold - 300, threshold, 10_500, DECIMALS[i], True, False, 0),
            a_token=asset,
            debt_token=asset,
            liquidity_index=RAY + indexes[i],
            variable_borrow_index=RAY + 2 * indexes[i],
            liquidity_rate=RAY // 50,
            variable_borrow_rate=RAY // 20,
            last_update=1_000,
        )
        for i, (asset, threshold) in enumerate(zip(ASSETS, thresholds, strict=True))
    }


positions_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 10**6)), min_size=1, max_size=2),  # collateral, USD
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 10**6)), min_size=1, max_size=2),  # debt, weights
        st.integers(4_000, 9_500),  # debt / collateral value, basis points: many positions near the threshold
    ),
    min_size=1,
    max_size=60,
)


def _position(n: int, collateral: list, debt: list, ratio: int) -> Position:
    """USD amounts turned into scaled balances at the starting prices."""
    position = Position(f"0x{n:040x}")
    total = sum(usd for _, usd in collateral)
    weights = sum(w for _, w in debt)
    owed = [(index, total * ratio * w // (10_000 * weights) + 1) for index, w in debt]
    for holdings, target in ((collateral, position.collateral), (owed, position.debt)):
        for index, usd in holdings:
            target[ASSETS[index]] = usd * 10**8 * 10 ** DECIMALS[index] // PRICES[index]
    return position


@settings(max_examples=60, deadline=None)
@given(
    thresholds=st.lists(st.integers(5_000, 9_000), min_size=3, max_size=3),
    indexes=st.lists(st.integers(0, RAY // 5), min_size=3, max_size=3),
    plans=positions_strategy,
    path=st.lists(st.tuples(st.integers(0, 2), st.integers(50, 150), st.integers(0, 90 * 86_400)), max_size=12),
)
def test_every_answer_returns_exactly_the_liquidatable_holders(
    thresholds: list[int], indexes: list[int], plans: list, path: list
) -> None:
    reserves = _reserves(thresholds, indexes)
    prices = dict(zip(ASSETS, PRICES, strict=True))
    book = PositionBook(reserves, prices)
    positions = [_position(n, c, d, r) for n, (c, d, r) in enumerate(plans)]
    for position in positions:
        book.set_position(position)
    now = 1_000
    at_start = {p.user for p in positions if account_data(p, reserves, prices, now).liquidatable}
    assert {p.user for p, _ in book.evaluate_all(now)} == at_start
    for step, (index, percent, seconds) in enumerate(path):
        asset = ASSETS[index]
        now += seconds
        if step % 3 == 2:  # the Pool wrote new indexes: the book is told, as the collector would
            reserve = reserves[asset]
            reserve.updated(reserve.liquidity_rate, reserve.variable_borrow_rate,
                            reserve.normalized_income(now), reserve.normalized_debt(now), now)  # fmt: skip
            book.reserves_updated([asset], now)
        if step % 4 == 1:  # an event named a borrower: its re-read position replaces the old one
            changed = positions[step % len(positions)]
            changed.debt = {asset: scaled * 21 // 20 for asset, scaled in changed.debt.items()}
            book.set_position(changed)
        price = PRICES[index] * percent // 100
        found = {p.user for p, data in book.on_price(asset, price, now)}
        prices[asset] = price
        expected = {
            p.user
            for p in positions
            if (asset in p.collateral or asset in p.debt) and account_data(p, reserves, prices, now).liquidatable
        }
        assert found == expected, (step, asset, price)


def test_debt_grown_by_interest_without_an_index_write_is_still_found() -> None:
    """Months pass with no event writing the indexes: debt grows, the floats do not. Positions just above
    the threshold when the book was built fall under it, and the next answer must find every one."""
    reserves = _reserves([8_000, 8_000, 8_000], [0, 0, 0])
    prices = dict(zip(ASSETS, PRICES, strict=True))
    book = PositionBook(reserves, prices)
    positions = [_position(n, [(0, 10**5)], [(1, 1)], 7_800 + n * 4) for n in range(50)]
    for position in positions:
        book.set_position(position)
    assert book.evaluate_all(1_000) == []
    for days in (30, 120, 300):
        now = 1_000 + days * 86_400
        found = {p.user for p, _ in book.on_price(ASSETS[0], PRICES[0], now)}
        expected = {p.user for p in positions if account_data(p, reserves, prices, now).liquidatable}
        assert expected and found == expected, days
