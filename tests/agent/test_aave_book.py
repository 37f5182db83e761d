"""The position book's float screen never hides a liquidatable position: after every oracle answer it
returns exactly the positions holding that asset whose exact health factor (mevagent.lending.aave_v3,
checked against the Pool itself in test_aave_v3) is below 1, and after every head, answered or not,
exactly every position whose exact health factor is below 1 at the head's timestamp (interest alone moves
them between answers), each once, for random markets, positions, price paths, quiet spells and index
updates."""

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
    path=st.lists(
        st.tuples(st.integers(0, 2), st.integers(50, 150), st.integers(0, 90 * 86_400), st.booleans()), max_size=12
    ),
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
    for step, (index, percent, seconds, answered) in enumerate(path):
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
        if answered:
            price = PRICES[index] * percent // 100
            answer = [p.user for p, data in book.on_price(asset, price, now)]
            prices[asset] = price
            expected = {
                p.user
                for p in positions
                if (asset in p.collateral or asset in p.debt) and account_data(p, reserves, prices, now).liquidatable
            }
            assert set(answer) == expected and len(answer) == len(expected), (step, asset, price)
        # The head of the block (after the answer, or alone: a quiet spell of `seconds`), then maintenance.
        head = [p.user for p, data in book.on_head(now)]
        everyone = {p.user for p in positions if account_data(p, reserves, prices, now).liquidatable}
        assert set(head) == everyone and len(head) == len(everyone), (step, now)
        book.maintain(now)


def test_heads_alone_find_what_interest_made_liquidatable_and_value_only_the_few_near_1() -> None:
    """No answer and no index write for months: each head reports exactly the positions debt interest has
    pushed under 1 by then, and values exactly only those the screen keeps near 1, not the whole book."""
    reserves = _reserves([8_000, 8_000, 8_000], [0, 0, 0])
    prices = dict(zip(ASSETS, PRICES, strict=True))
    book = PositionBook(reserves, prices)
    near = [_position(n, [(0, 10**5)], [(1, 1)], 7_800 + n * 4) for n in range(50)]  # health factors 1.02-1.03
    far = [_position(50 + n, [(0, 10**5)], [(1, 1), (2, 1)], 4_000 + n % 2_000) for n in range(2_000)]  # >= 1.33
    for position in near + far:
        book.set_position(position)
    assert book.on_head(1_000) == []
    seen: set[str] = set()
    for days in (30, 120, 200, 300):
        now = 1_000 + days * 86_400
        before = book.exact_evaluations
        found = [p.user for p, _ in book.on_head(now)]
        expected = {p.user for p in near + far if account_data(p, reserves, prices, now).liquidatable}
        assert set(found) == expected and len(found) == len(expected), days
        assert book.exact_evaluations - before <= len(near), days  # the far 2,000 never valued exactly
        seen |= expected
        book.maintain(now)
    assert seen and seen < {p.user for p in near}  # some crossed over the months, not all


def test_a_position_set_already_liquidatable_is_reported_at_the_next_head() -> None:
    """An event opens a position under 1 (or a borrow takes one there): the head of its block reports it,
    with no price answer; once repaid, the next head does not."""
    reserves = _reserves([8_000, 8_000, 8_000], [0, 0, 0])
    prices = dict(zip(ASSETS, PRICES, strict=True))
    book = PositionBook(reserves, prices)
    healthy = [_position(n, [(0, 10**5)], [(1, 1)], 6_000) for n in range(20)]
    for position in healthy:
        book.set_position(position)
    assert book.evaluate_all(1_000) == []
    under = _position(99, [(0, 10**5)], [(1, 1)], 8_100)  # health factor 0.99: the threshold is 8,000 bp
    book.set_position(under)
    ((position, data),) = book.on_head(1_012)
    assert position is under and data.health_factor == account_data(under, reserves, prices, 1_012).health_factor
    borrowed = healthy[3]
    borrowed.debt = {asset: scaled * 14 // 10 for asset, scaled in borrowed.debt.items()}  # 6,000 -> 8,400 bp
    book.set_position(borrowed)
    assert {p.user for p, _ in book.on_head(1_024)} == {under.user, borrowed.user}
    for position in (under, borrowed):
        book.set_position(Position(position.user, dict(position.collateral), {}))
    assert book.on_head(1_036) == []


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
