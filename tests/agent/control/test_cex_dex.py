"""CEX-DEX (docs/crosschain.md): the exchange feed interface with ccxt as the adapter, proven on a recorded feed
run through a real `ccxt.binance` object (its own request building and parsing; the recording stands in for its
HTTP client, so nothing reaches the network), and the engine's CEX-DEX gaps against an exact computation made
here on its own (Fractions over the recording's decimal strings and the pool's reserves). No node, bus or
database."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import ccxt
import pytest
from mevcontrol.cex import CcxtBooks, CexConfig, CexFeed, FeedError, OrderBook, Recording, ReplayTransport
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine

from mevagent.bus.events import PairPrice

RECORDING = Path(__file__).parent / "data" / "cex_binance_eth_usdc.json"
DEPTH = "GET https://api.binance.com/api/v3/depth?symbol=ETHUSDC&limit=20"
WETH = "0x82af49447d8a07e3bd95bd0d56f35241523fbab1"  # arbitrum:WETH (the bundled registry)
USDC = "0xaf88d065e77c8cc2239327c5edb3a432268e5831"  # arbitrum:USDC
POOL = "0x" + "ab" * 20
E18, E6 = 10**18, 10**6
STEP = 10**14  # the market's LOT_SIZE stepSize, 0.0001 ETH, in wei
TAKER = Fraction(1, 1000)  # ccxt's Binance spot taker fee
WEI = 10**7  # arbitrum's gas price in the tests (0.01 gwei)


def _recording() -> Recording:
    return Recording.load(RECORDING)


def _exchange(recording: Recording | None = None) -> tuple[Any, ReplayTransport]:
    exchange = ccxt.binance({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]}}})
    replay = ReplayTransport(recording or _recording())
    replay.install(exchange)
    exchange.load_markets()
    return exchange, replay


def _raw_books() -> list[dict[str, Any]]:
    return [s["body"] | {"received_ms": s["received_ms"]} for s in json.loads(RECORDING.read_text())["books"][DEPTH]]


def _by_hand(raw: dict[str, Any], shift_ms: int = 0) -> OrderBook:
    """The book as the recording states it, built here without ccxt."""
    return OrderBook(
        exchange="binance", symbol="ETH/USDC", timestamp_ms=raw["received_ms"] + shift_ms, nonce=raw["lastUpdateId"],
        taker_fee=Decimal("0.001"),
        bids=tuple({"price": Decimal(p).normalize(), "amount": Decimal(a).normalize()} for p, a in raw["bids"]),
        asks=tuple({"price": Decimal(p).normalize(), "amount": Decimal(a).normalize()} for p, a in raw["asks"]),
    )  # fmt: skip


def test_adapter_on_the_recorded_feed_equals_the_books_by_hand() -> None:
    exchange, replay = _exchange()
    assert replay.requests == ["GET https://api.binance.com/api/v3/exchangeInfo"]
    books = CcxtBooks(exchange)
    spec = books.market("ETH/USDC")
    assert (spec.base, spec.quote, spec.amount_step, spec.price_tick) == ("ETH", "USDC", Decimal("0.0001"),
                                                                           Decimal("0.01"))  # fmt: skip
    assert (spec.min_amount, spec.min_cost, spec.taker_fee) == (Decimal("0.0001"), Decimal(5), Decimal("0.001"))
    raws = _raw_books()
    assert len(raws) >= 30
    for raw in raws:
        unified = exchange.fetch_order_book("ETH/USDC", 20)
        # ccxt's parser ran: the exchange's strings became floats, the symbol and the nonce are ccxt's.
        assert unified["symbol"] == "ETH/USDC" and unified["nonce"] == raw["lastUpdateId"]
        assert isinstance(unified["bids"][0][0], float) and unified["timestamp"] is None
        assert books.book(unified, replay.received_ms) == _by_hand(raw)
    assert replay.requests[1:] == [DEPTH] * len(raws)  # the request ccxt built for ETH/USDC, market id ETHUSDC
    assert replay.exhausted
    with pytest.raises(FeedError, match="all 36 snapshots replayed"):
        exchange.fetch_order_book("ETH/USDC", 20)
    with pytest.raises(FeedError, match=r"no response recorded for GET .*ticker"):
        exchange.fetch_ticker("ETH/USDC")  # anything not recorded is refused: no network


def _altered(change: Any) -> Recording:
    data = json.loads(RECORDING.read_text())
    change(data["books"][DEPTH][0]["body"])
    return Recording.model_validate(data)


def test_bad_feed_data_is_refused_naming_the_field() -> None:
    def negative(body: dict) -> None:
        body["bids"][2][1] = "-0.50000000"

    def crossed(body: dict) -> None:
        body["asks"][0][0] = "2999.00000000"  # below the best bid 2999.96

    crossed_book = r"asks\.0\.price: 2999(\.0)? is not above bids\.0\.price 2999\.96: a crossed book"
    for change, field in ((negative, r"bids\.2\.amount: Input should be greater than 0"), (crossed, crossed_book)):
        exchange, replay = _exchange(_altered(change))
        unified = exchange.fetch_order_book("ETH/USDC", 20)  # ccxt passes both through (it sorts, it checks nothing)
        with pytest.raises(FeedError, match=f"binance ETH/USDC: {field}"):
            CcxtBooks(exchange).book(unified, replay.received_ms)
    exchange, replay = _exchange()
    books = CcxtBooks(exchange)
    with pytest.raises(FeedError, match=r"binance: symbol: 'ETH/XYZ' is not a market of the exchange \(1 loaded\)"):
        books.market("ETH/XYZ")
    unified = exchange.fetch_order_book("ETH/USDC", 20)
    with pytest.raises(FeedError, match="symbol: 'ETH/XYZ' is not a market"):
        books.book({**unified, "symbol": "ETH/XYZ"}, replay.received_ms)
    with pytest.raises(FeedError, match=r"bids\.0\.price: Input should be a valid decimal"):
        books.book({**unified, "bids": [["n/a", 1.0]]}, replay.received_ms)
    unordered = {**unified, "asks": [unified["asks"][1], unified["asks"][0]]}
    with pytest.raises(FeedError, match=r"asks\.1\.price: .* does not follow .* \(best first\)"):
        books.book(unordered, replay.received_ms)


# ---- the engine --------------------------------------------------------------------------------------------


def _engine(**cex: Any) -> CrossChainEngine:
    config = CrossChainConfig.model_validate({
        "usd": {"eth": "3000", "usdc": "1"},
        "gas_price_wei": {"arbitrum": WEI},
        "builder_payment_bps": {"arbitrum": 0},
        "cex": {"exchange": "binance", "markets": [{"symbol": "ETH/USDC", "base": "eth", "quote": "usdc"}],
                "withdraw_fee": {"usdc": {"arbitrum": "0.1"}, "eth": {"arbitrum": "0.0001"}}, **cex},
    })  # fmt: skip
    return CrossChainEngine(config)


def _pool(r_base: int, r_quote: int, block: int = 1) -> PairPrice:
    return PairPrice(
        agent="a", chain="arbitrum", block=block, pool=POOL, fork="uniswap_v2", base=WETH, quote=USDC,
        reserve_base=r_base, reserve_quote=r_quote, fee_base_in=30, fee_quote_in=30, fee_denominator=10_000,
        price=Decimal(r_quote) / Decimal(r_base),
    )  # fmt: skip


def _recorded_book(n: int = 0, taker_fee: Decimal | None = None) -> tuple[OrderBook, Any]:
    """Snapshot `n` of the recording through ccxt and the adapter, stamped as received now."""
    exchange, _ = _exchange()
    replay = ReplayTransport.starting_now(_recording())
    replay.install(exchange)
    books = CcxtBooks(exchange, taker_fee)
    for _ in range(n + 1):
        unified = exchange.fetch_order_book("ETH/USDC", 20)
    book = books.book(unified, replay.received_ms)
    return book, books.market("ETH/USDC")


def _absorb(engine: CrossChainEngine, book: OrderBook, spec: Any) -> list:
    assert engine.config.cex is not None
    return engine.absorb_book(book, engine.config.cex.markets[0], spec)


# The independent computation: the pool by the constant-product formula, the book walked in Fractions of the
# recording's decimal strings, every rounding against us; sized by its own search over whole amount steps.


def _v2_out(x: int, r_in: int, r_out: int) -> int:
    return x * 9970 * r_out // (r_in * 10_000 + x * 9970)


def _least_in(out: int, r_in: int, r_out: int) -> int:
    lo, hi = 1, r_in * 10
    while lo < hi:  # the least input paying at least `out`
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if _v2_out(mid, r_in, r_out) < out else (lo, mid)
    return lo


def _sell(base: int, bids: list[list[str]], fee: Fraction = TAKER, quote_unit: int = E6) -> int:
    rest, proceeds = Fraction(base - base % STEP, E18), Fraction(0)
    for price, amount in bids:
        take = min(rest, Fraction(amount))
        proceeds, rest = proceeds + take * Fraction(price), rest - take
    assert rest == 0
    return int(proceeds * quote_unit * (1 - fee))


def _buy_cost(base: int, asks: list[list[str]], quote_unit: int = E6) -> int:
    """Least whole quote units that buy `base` wei (a multiple of the step) on the asks."""
    rest, cost = Fraction(base, E18), Fraction(0)
    for price, amount in asks:
        take = min(rest, Fraction(amount))
        cost, rest = cost + take * Fraction(price), rest - take
    assert rest == 0
    whole = cost * quote_unit
    return -(-whole.numerator // whole.denominator)


def _best(profit: Any, hi: int) -> tuple[int, int]:
    lo = 1
    while hi - lo > 6:  # profit is concave in the number of steps traded
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        lo, hi = (m1 + 1, hi) if profit(m1)[0] < profit(m2)[0] else (lo, m2)
    return max((profit(k) for k in range(lo, hi + 1)), key=lambda p: (p[0], -p[1]))


def _costs(direction: str) -> int:
    gas = Fraction(150_000 * WEI, E18) * 3000
    restore = Fraction(65_000 * WEI, E18) * 3000 + (Fraction(1, 10) if direction == "dex_to_cex" else Fraction(3, 10))
    return sum(-(-(usd * E6).numerator // (usd * E6).denominator) for usd in (gas, restore))


def test_dex_to_cex_gap_equals_the_exact_computation() -> None:
    engine = _engine()
    r_base, r_quote = 1_000 * E18, 2_970_000 * E6  # the pool at 2,970, the book's best bid 2,999.96
    assert engine.absorb(_pool(r_base, r_quote)) == []
    book, spec = _recorded_book()
    [opp] = _absorb(engine, book, spec)
    raw = _raw_books()[0]

    def profit(k: int) -> tuple[int, int]:
        x = _least_in(k * STEP, r_quote, r_base)
        return _sell(_v2_out(x, r_quote, r_base), raw["bids"]) - x, x

    depth = sum(int(Decimal(a) * 10_000) for _, a in raw["bids"])
    gross, amount_in = _best(profit, depth)
    assert opp.direction == "dex_to_cex" and (opp.exchange, opp.symbol, opp.chain) == (
        "binance",
        "ETH/USDC",
        "arbitrum",
    )
    assert (opp.gross, opp.amount_in) == (gross, amount_in)
    base = _v2_out(amount_in, r_quote, r_base)
    assert (opp.base_amount, opp.base_traded, opp.amount_out) == (base, base - base % STEP, amount_in + gross)
    assert opp.gas_cost + opp.restore_cost == _costs("dex_to_cex") and opp.restore_priced
    assert opp.net == gross - _costs("dex_to_cex") > 0 and opp.net_usd == Decimal(opp.net) / E6
    assert opp.taker_fee == _sell(base, raw["bids"], Fraction(0)) - opp.amount_out
    assert opp.taker_fee_token == "arbitrum:USDC" and opp.cex_levels > 1
    assert engine.current_cex() == [opp]
    assert opp.as_json()["kind"] == "cex_dex" and opp.as_json()["net"] == str(opp.net)


def test_cex_to_dex_gap_equals_the_exact_computation() -> None:
    engine = _engine()
    r_base, r_quote = 1_000 * E18, 3_030_000 * E6  # the pool at 3,030, the book's best ask 2,999.97
    book, spec = _recorded_book(5)
    assert _absorb(engine, book, spec) == []  # no pool yet
    assert engine.absorb(_pool(r_base, r_quote)) == []  # DEX-DEX only: CEX-DEX gaps never go to the position book
    [opp] = engine.current_cex()
    raw = _raw_books()[5]

    def profit(k: int) -> tuple[int, int]:
        x = _buy_cost(k * STEP, raw["asks"])
        received = int(k * STEP * (1 - TAKER))
        return _v2_out(received, r_base, r_quote) - x, x

    depth = sum(int(Decimal(a) * 10_000) for _, a in raw["asks"])
    gross, amount_in = _best(profit, depth)
    assert opp.direction == "cex_to_dex" and opp.taker_fee_token == "arbitrum:WETH"
    assert (opp.gross, opp.amount_in) == (gross, amount_in)
    bought = opp.base_amount + opp.taker_fee
    assert bought % STEP == 0 and opp.base_amount == int(bought * (1 - TAKER)) == opp.base_traded
    assert opp.gas_cost + opp.restore_cost == _costs("cex_to_dex")
    assert opp.net == gross - _costs("cex_to_dex") > 0


def test_no_gap_when_the_fees_eat_it() -> None:
    book, spec = _recorded_book()
    pool = _pool(1_000 * E18, 2_985_000 * E6)  # 0.5 % under the best bid: the pool's 0.3 % and the taker's 0.1 % fit
    engine = _engine()
    engine.absorb(pool)
    assert [o.direction for o in _absorb(engine, book, spec)] == ["dex_to_cex"]
    # A taker fee of 0.25 % (the account's tier, from the config): 0.55 % of fees, no gap at any size.
    engine = _engine(taker_fee="0.0025")
    engine.absorb(pool)
    assert engine.config.cex is not None and engine.config.cex.taker_fee == Decimal("0.0025")
    dear, dear_spec = _recorded_book(taker_fee=engine.config.cex.taker_fee)  # as CexFeed hands it to the adapter
    assert dear.taker_fee == dear_spec.taker_fee == Decimal("0.0025")
    assert _absorb(engine, dear, dear_spec) == []
    assert engine.stats.cex_evaluated == 0 and engine.cex_opportunities == {}
    # Past the marginal test, but a withdrawal fee of 200 USDC is more than the gap can ever pay.
    engine = _engine(withdraw_fee={"usdc": {"arbitrum": "200"}})
    engine.absorb(pool)
    assert _absorb(engine, book, spec) == [] and engine.stats.cex_below_fixed_costs == 1
    # A pool within the book's spread after both fees: nothing either way.
    engine = _engine()
    engine.absorb(_pool(1_000 * E18, 3_000_000 * E6))
    assert _absorb(engine, book, spec) == [] and engine.stats.cex_evaluated == 0


def test_restoring_cost_not_configured_is_named() -> None:
    engine = _engine(withdraw_fee={})
    engine.absorb(_pool(1_000 * E18, 2_970_000 * E6))
    [opp] = _absorb(engine, *_recorded_book())
    assert not opp.restore_priced and opp.restore_unpriced == ("withdraw_fee.usdc.arbitrum",)
    assert opp.as_json()["restore_unpriced"] == ["withdraw_fee.usdc.arbitrum"]


def test_a_stale_book_is_ignored() -> None:
    engine = CrossChainEngine(_engine().config.model_copy(update={"stale_after_s": 2.0}))
    engine.absorb(_pool(1_000 * E18, 2_970_000 * E6))
    book, spec = _recorded_book()
    old = book.model_copy(update={"timestamp_ms": int((time.time() - 2.5) * 1000)})
    assert _absorb(engine, old, spec) == [] and engine.stats.books_stale == 1 and engine.books == {}
    # Fresh when it arrives, stale 0.6 s later: dropped from the answers, and no new pool state reopens it.
    ageing = book.model_copy(update={"timestamp_ms": int((time.time() - 1.5) * 1000)})
    assert len(_absorb(engine, ageing, spec)) == 1 and len(engine.current_cex()) == 1
    time.sleep(0.6)
    assert engine.current_cex() == []
    engine.absorb(_pool(1_000 * E18, 2_969_000 * E6, block=2))
    assert engine.cex_opportunities == {}


def test_the_feed_replays_the_recording_into_the_engine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"apiKey": "k" * 64, "secret": "s3cr3t" * 10}))
    keys.chmod(0o600)
    engine = _engine(recording=str(RECORDING), poll_s=0.001, keys_file=str(keys), taker_fee="0.001")
    engine.absorb(_pool(1_000 * E18, 2_970_000 * E6))
    cex = engine.config.cex
    assert cex is not None
    feed = CexFeed(cex, engine.absorb_book)
    with caplog.at_level(logging.DEBUG):
        asyncio.run(asyncio.wait_for(feed.run(), 20))
    assert feed.stats() | {"last_error": None} == {
        "exchange": "binance",
        "polled": 36,
        "refused": 0,
        "failures": 0,
        "last_error": None,
        "recording": True,
    }
    assert engine.stats.books_absorbed == 36 and engine.stats.books_stale == 0
    assert [o.direction for o in engine.current_cex()] == ["dex_to_cex"]
    assert feed.replay is not None and feed.replay.requests.count(DEPTH) == 37  # the 37th finds the recording over
    assert "s3cr3t" not in caplog.text and "k" * 64 not in caplog.text
    # An unknown market in the settings stops the feed before any book, naming it.
    bad = cex.model_copy(update={"markets": (cex.markets[0].model_copy(update={"symbol": "ETH/XYZ"}),)})
    with pytest.raises(FeedError, match="symbol: 'ETH/XYZ' is not a market"):
        asyncio.run(asyncio.wait_for(CexFeed(bad, engine.absorb_book).run(), 20))


def test_settings_are_refused_naming_the_field(tmp_path: Path) -> None:
    from pydantic import ValidationError

    base = {"exchange": "binance", "markets": [{"symbol": "ETH/USDC", "base": "eth", "quote": "usdc"}]}
    lower = {"markets": [{"symbol": "ethusdc", "base": "eth", "quote": "usdc"}]}
    for change, field in (({"markets": []}, "markets"), ({"taker_fee": "1.5"}, "taker_fee"),
                          ({"withdraw_fee": {"usdc": {"arbitrum": "-1"}}}, "withdraw_fee.usdc.arbitrum"),
                          (lower, "markets.0.symbol")):  # fmt: skip
        with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
            CexConfig.model_validate(base | change)


def test_the_service_serves_both_kinds(tmp_path: Path) -> None:
    """CrossChainService runs the feed beside the price stream (here alone: no Redis is reached) and answers
    /opportunities with the DEX-DEX and CEX-DEX gaps, net first, and the feed's counters."""
    from mevcontrol.crosschain import CrossChainService
    from redis.asyncio import Redis

    engine = _engine(recording=str(RECORDING), poll_s=0.001)
    engine.absorb(_pool(1_000 * E18, 2_970_000 * E6))
    service = CrossChainService(engine, Redis(port=1))  # never connected: only the feed runs
    assert service.cex_feed is not None
    asyncio.run(asyncio.wait_for(service._cex(), 20))
    answer = service.opportunities()
    assert [(o["kind"], o["direction"]) for o in answer["opportunities"]] == [("cex_dex", "dex_to_cex")]
    assert answer["cex"]["polled"] == 36 and answer["graph"]["books_absorbed"] == 36
    assert answer["cex"]["last_error"] is None  # the recording's end is not an error


def test_markets_of_unknown_or_unpriced_assets_are_refused_at_start() -> None:
    config = _engine().config
    assert config.cex is not None
    weth = config.cex.markets[0].model_copy(update={"base": "weth"})
    with pytest.raises(ValueError, match=r"crosschain\.cex: markets\.0\.base: weth is not an asset of the token reg"):
        CrossChainEngine(config.model_copy(update={"cex": config.cex.model_copy(update={"markets": (weth,)})}))
    with pytest.raises(ValueError, match=r"markets\.0\.quote: no USD price for asset usdc \(crosschain\.usd\)"):
        CrossChainEngine(config.model_copy(update={"usd": {"eth": Decimal(3000)}}))
    # The base needs one only when its withdrawal is priced (its gaps are valued in the quote).
    unpriced_base = config.model_copy(update={"usd": {"usdc": Decimal(1)}})
    with pytest.raises(ValueError, match=r"markets\.0\.base: no USD price for asset eth") as refused:
        CrossChainEngine(unpriced_base)
    assert "quote" not in str(refused.value)
    no_eth_fee = config.cex.model_copy(update={"withdraw_fee": {"usdc": config.cex.withdraw_fee["usdc"]}})
    CrossChainEngine(unpriced_base.model_copy(update={"cex": no_eth_fee, "gas_price_wei": {}}))


@pytest.mark.parametrize("direction", ["cex_to_dex", "dex_to_cex"])
def test_a_v3_pool_against_the_book(direction: str, tmp_path: Path) -> None:
    """A Uniswap V3 pool (published by the agent's reporter with its ticks) against the recorded book, the book's
    USDC taken as the test registry's 18-decimal TUSD. Either way the gap equals the independent optimum over
    whole steps: the full pool's exact swap (every tick; the least input of a step count by bisection over exact
    input swaps, where the engine takes the exact-output swap over the published ticks), the book by hand."""
    from mevagent.amm.v3 import simulate_swap
    from testbed.crosschain import registry_file

    from .test_crosschain_anvil import _config
    from .test_crosschain_v3 import TUSD, _ladder, _state, _v3_event
    from .test_crosschain_v3 import WETH as V3_WETH

    both = ("alpha", "beta")
    registry = registry_file(tmp_path, dict.fromkeys(both, V3_WETH), dict.fromkeys(both, TUSD))
    cex = {"exchange": "binance", "markets": [{"symbol": "ETH/USDC", "base": "eth", "quote": "tusd"}]}
    engine = CrossChainEngine(_config(registry, cex=cex))
    price = 3060 if direction == "cex_to_dex" else 2940
    state = _state(price, 60, _ladder(80_000, 60, 20, 5, 10**21))
    engine.absorb(_v3_event(state, chain="beta"))
    book, spec = _recorded_book()
    [opp] = _absorb(engine, book, spec)
    raw = _raw_books()[0]
    assert (opp.direction, opp.chain, opp.v3_fee) == (direction, "beta", 3000)

    def pool_out(amount: int, weth_in: bool) -> int:  # WETH is token0
        result = simulate_swap(state, weth_in, amount)
        return -(result.amount1 if weth_in else result.amount0)

    if direction == "cex_to_dex":

        def profit(k: int) -> tuple[int, int]:
            x = _buy_cost(k * STEP, raw["asks"], E18)
            return pool_out(int(k * STEP * (1 - TAKER)), True) - x, x

        gross, amount_in = _best(profit, sum(int(Decimal(a) * 10_000) for _, a in raw["asks"]))
        assert (opp.gross, opp.amount_in) == (gross, amount_in)
    else:

        def least(k: int) -> int:
            lo, hi = 1, 10**24
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (mid + 1, hi) if pool_out(mid, False) < k * STEP else (lo, mid)
            return lo

        def profit(k: int) -> tuple[int, int]:
            x = least(k)
            return _sell(pool_out(x, False), raw["bids"], quote_unit=E18) - x, x

        gross, amount_in = _best(profit, sum(int(Decimal(a) * 10_000) for _, a in raw["bids"]))
        assert (opp.gross, opp.amount_in) == (gross, amount_in)
        assert opp.base_amount == pool_out(opp.amount_in, False) and opp.taker_fee_token == "beta:TUSD"
    assert opp.net == opp.gross - opp.gas_cost - opp.builder_payment - opp.restore_cost > 0
