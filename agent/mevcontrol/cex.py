"""An exchange's order books as one more venue of the cross-chain price graph (docs/crosschain.md, CEX-DEX).

- The interface: `OrderBook` (exchange, symbol, bids and asks as exact Decimals, best first, the time of the
  book, the taker fee) and `MarketSpec` (the market's amount step, price tick, minimums), refused whole with a
  `FeedError` naming the field when anything is wrong (a crossed book, a negative amount, an unknown symbol).
- The adapter, ccxt: `CcxtBooks` turns ccxt's unified order book (`fetch_order_book` / `watch_order_book`:
  `{'symbol', 'bids': [[price, amount], ...], 'asks', 'timestamp', 'nonce'}`) and market structure
  (`exchange.markets[symbol]`: precision, limits, `taker`) into the interface.
- A recording: `Recording` holds the exchange's raw HTTP responses (markets, then one depth response per
  snapshot, each with the time it was received); `ReplayTransport` serves them to a real ccxt exchange object
  in place of its HTTP client (`exchange.fetch`), so `load_markets` and `fetch_order_book` run ccxt's own
  request building and parsing, and any request the recording does not hold is refused: no network.
- `CexFeed`: the control plane's loop. Polls `fetch_order_book` of the configured markets on ccxt's asyncio
  exchange (live: the operator's exchange id and keys from `keys_file`, never logged; or a recording) and
  hands each book to the engine (`CrossChainEngine.absorb_book`). Detection only: no order is ever placed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator

from mevagent.config import Name, SecretFile, Strict, describe, read_secret

log = logging.getLogger(__name__)
_QUERY = re.compile(r"\?\S*")

Amount = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
Fee = Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False)]


class FeedError(ValueError):
    """Feed data or settings refused, naming the field."""


# ---- the interface ---------------------------------------------------------------------------------------


class BookLevel(Strict):
    price: Amount  # quote currency per base currency, whole units
    amount: Amount  # base currency, whole units


class OrderBook(Strict):
    """One snapshot of a market's book, best level first on each side."""

    exchange: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    timestamp_ms: Annotated[int, Field(ge=0)]  # the exchange's time of the book, else when it was received
    nonce: int | None = None  # the exchange's update id, when it gives one
    taker_fee: Fee

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for side, levels, better in (("bids", self.bids, Decimal.__gt__), ("asks", self.asks, Decimal.__lt__)):
            for i in range(1, len(levels)):
                if not better(levels[i - 1].price, levels[i].price):
                    raise ValueError(
                        f"{side}.{i}.price: {levels[i].price} does not follow {levels[i - 1].price} (best first)"
                    )
        if self.bids and self.asks and self.bids[0].price >= self.asks[0].price:
            raise ValueError(f"asks.0.price: {self.asks[0].price} is not above bids.0.price {self.bids[0].price}: "
                             "a crossed book")  # fmt: skip
        return self


class MarketSpec(Strict):
    """What the exchange says of one market: its currencies, amount step, price tick, minimums, taker fee."""

    exchange: str
    symbol: str
    base: str  # the exchange's currency codes
    quote: str
    amount_step: Amount | None = None  # None: the exchange states no fixed step
    price_tick: Amount | None = None
    min_amount: Decimal | None = None
    min_cost: Decimal | None = None
    taker_fee: Fee


# ---- settings ---------------------------------------------------------------------------------------------


class CexMarket(Strict):
    """One market of the exchange, and the registry assets its currencies are (ETH/USDC: eth, usdc)."""

    symbol: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,12}/[A-Z0-9]{2,12}$")]
    base: Name  # registry asset
    quote: Name


class CexConfig(Strict):
    """crosschain.cex: an exchange's books as a venue (detection and reporting only)."""

    exchange: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,31}$")]  # a ccxt exchange id: binance, kraken...
    # JSON {"apiKey": ..., "secret": ..., "password": ...} (0600; never in the repository or a log). Without it
    # the public books are read and the market's published taker fee is used.
    keys_file: SecretFile | None = None
    recording: Path | None = None  # replay this recording (Recording) instead of asking the exchange
    markets: tuple[CexMarket, ...] = Field(min_length=1)
    depth: Annotated[int, Field(ge=1, le=5000)] = 20
    poll_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 1.0
    taker_fee: Fee | None = None  # the account's tier, overriding what the exchange reports
    # Restoring inventory: what the exchange charges to withdraw an asset to a chain (whole units of the asset),
    # asset -> chain -> fee. A pair with no entry is reported with its restoring cost not priced.
    withdraw_fee: dict[Name, dict[Name, Amount]] = Field(default_factory=dict)
    deposit_gas: Annotated[int, Field(gt=0)] = 65_000  # one token transfer to the exchange's deposit address

    @model_validator(mode="after")
    def _unique(self) -> Self:
        symbols = [m.symbol for m in self.markets]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"markets: symbols repeat: {sorted(symbols)}")
        return self


# ---- the ccxt adapter -------------------------------------------------------------------------------------


def _decimal(value: Any) -> Any:
    """ccxt's numbers are floats parsed from the exchange's decimal strings: repr gives that string back (it is
    the shortest that round-trips, and exchange prices have far fewer than 15 digits). Anything else is left
    for the model to refuse, naming the field."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _levels(raw: Any) -> Any:
    if not isinstance(raw, list | tuple):
        return raw
    return [
        {"price": _decimal(level[0]), "amount": _decimal(level[1])}
        if isinstance(level, list | tuple) and len(level) >= 2 else level
        for level in raw
    ]  # fmt: skip


class CcxtBooks:
    """ccxt's unified structures into the interface, for one ccxt exchange object (sync or asyncio)."""

    def __init__(self, exchange: Any, taker_fee: Decimal | None = None) -> None:
        self.exchange = exchange
        self.taker_fee = taker_fee  # the account's fee (config, or fetch_trading_fee with keys); else the market's
        self._specs: dict[str, MarketSpec] = {}

    @property
    def id(self) -> str:
        return str(self.exchange.id)

    def market(self, symbol: str) -> MarketSpec:
        spec = self._specs.get(symbol)
        if spec is not None:
            return spec
        markets = self.exchange.markets or {}
        raw = markets.get(symbol)
        if raw is None:
            raise FeedError(f"{self.id}: symbol: {symbol!r} is not a market of the exchange ({len(markets)} loaded)")
        precision, limits = raw.get("precision") or {}, raw.get("limits") or {}
        fee = self.taker_fee if self.taker_fee is not None else _decimal(raw.get("taker"))
        if fee is None:
            raise FeedError(f"{self.id} {symbol}: taker_fee: the exchange states none; set crosschain.cex.taker_fee")
        data = {
            "exchange": self.id, "symbol": symbol, "base": raw.get("base"), "quote": raw.get("quote"),
            "amount_step": self._step(precision.get("amount")), "price_tick": self._step(precision.get("price")),
            "min_amount": _decimal((limits.get("amount") or {}).get("min")),
            "min_cost": _decimal((limits.get("cost") or {}).get("min")), "taker_fee": fee,
        }  # fmt: skip
        try:
            spec = MarketSpec.model_validate(data)
        except ValidationError as exc:
            raise FeedError(f"{self.id} {symbol}: market: {describe(exc, data)}") from None
        self._specs[symbol] = spec
        return spec

    def _step(self, precision: Any) -> Decimal | None:
        """The market's step from ccxt's precision: a step itself (TICK_SIZE), or decimal places."""
        if precision is None:
            return None
        mode = getattr(self.exchange, "precisionMode", None)
        if mode == 2:  # ccxt.DECIMAL_PLACES
            return Decimal(1).scaleb(-int(precision))
        if mode == 3:  # ccxt.SIGNIFICANT_DIGITS: no fixed step
            return None
        return _decimal(precision)  # ccxt.TICK_SIZE (4)

    def book(self, raw: Any, received_ms: int) -> OrderBook:
        """One unified order book. Its time is the exchange's `timestamp`, else `received_ms` (Binance's spot
        depth has no time of its own)."""
        if not isinstance(raw, dict):
            raise FeedError(f"{self.id}: order book: expected ccxt's order book structure, got {type(raw).__name__}")
        symbol = raw.get("symbol")
        if not isinstance(symbol, str):
            raise FeedError(f"{self.id}: symbol: missing from the order book")
        spec = self.market(symbol)
        stamp = raw.get("timestamp")
        data = {
            "exchange": self.id, "symbol": symbol, "bids": _levels(raw.get("bids")), "asks": _levels(raw.get("asks")),
            "timestamp_ms": received_ms if stamp is None else stamp, "nonce": raw.get("nonce"),
            "taker_fee": spec.taker_fee,
        }  # fmt: skip
        try:
            return OrderBook.model_validate(data)
        except ValidationError as exc:
            # A check across fields (the order of the levels) names its own field: no "(top level)" before it.
            raise FeedError(f"{self.id} {symbol}: {describe(exc, data).replace('(top level): ', '')}") from None


# ---- a recording, replayed through ccxt -------------------------------------------------------------------


class Snapshot(Strict):
    received_ms: Annotated[int, Field(ge=0)]
    body: dict[str, Any]  # the exchange's raw response


class Recording(Strict):
    """Raw exchange responses: `responses` by "METHOD url" (markets), and per depth request its snapshots in
    the order received."""

    exchange: str
    synthetic: bool  # true: written in the exchange's response format, not captured from it
    note: str = ""
    responses: dict[str, Any]
    books: dict[str, tuple[Snapshot, ...]]  # "GET <depth url>" -> snapshots

    @classmethod
    def load(cls, path: Path) -> Recording:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FeedError(f"recording {path}: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise FeedError(f"recording {path}: {describe(exc, data)}") from None


class ReplayTransport:
    """Stands in for a ccxt exchange's HTTP client (`exchange.fetch`): the recorded response to each request,
    each depth request answered by its next snapshot; `received_ms` is that snapshot's time, shifted by
    `shift_ms` (a replay starting now keeps the recording's spacing). A request not in the recording is
    refused, so nothing ever reaches the network."""

    def __init__(self, recording: Recording, shift_ms: int = 0) -> None:
        self.recording = recording
        self.shift_ms = shift_ms
        self.received_ms = 0
        self.requests: list[str] = []
        self._next = dict.fromkeys(recording.books, 0)

    @classmethod
    def starting_now(cls, recording: Recording) -> ReplayTransport:
        first = min((s[0].received_ms for s in recording.books.values() if s), default=0)
        return cls(recording, int(time.time() * 1000) - first)

    @property
    def exhausted(self) -> bool:
        return all(n >= len(self.recording.books[k]) for k, n in self._next.items())

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        key = f"{method} {url}"
        self.requests.append(key)
        if key in self.recording.books:
            n = self._next[key]
            snapshots = self.recording.books[key]
            if n >= len(snapshots):
                raise FeedError(f"recording: {key}: all {len(snapshots)} snapshots replayed")
            self._next[key] = n + 1
            self.received_ms = snapshots[n].received_ms + self.shift_ms
            return json.loads(json.dumps(snapshots[n].body))  # a fresh object, as a response would be
        if key in self.recording.responses:
            return json.loads(json.dumps(self.recording.responses[key]))
        raise FeedError(f"recording: no response recorded for {key} (replay only: no network)")

    async def afetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return self.fetch(url, method, headers, body)

    def install(self, exchange: Any) -> None:
        """Replace the exchange object's HTTP client with this replay (the asyncio one awaits `fetch`)."""
        exchange.fetch = self.afetch if asyncio.iscoroutinefunction(exchange.fetch) else self.fetch


def exchange_options(config: CexConfig) -> dict[str, Any]:
    """ccxt's constructor options: the keys from `keys_file` (read here, never logged), rate limiting on."""
    options: dict[str, Any] = {"enableRateLimit": config.recording is None}
    if config.exchange == "binance":
        # Spot books only: one markets request; no currencies nor margin pairs (signed requests with keys; the
        # withdrawal fees are the config's).
        options["options"] = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
    if config.keys_file is not None:
        try:
            keys = json.loads(read_secret(config.keys_file))
        except ValueError as exc:
            raise FeedError(f"crosschain.cex.keys_file: {exc}") from None
        if not isinstance(keys, dict) or not isinstance(keys.get("apiKey"), str) or not isinstance(keys.get("secret"),
                                                                                                   str):  # fmt: skip
            raise FeedError("crosschain.cex.keys_file: expected a JSON object with apiKey and secret")
        options.update({k: keys[k] for k in ("apiKey", "secret", "password", "uid") if isinstance(keys.get(k), str)})
    return options


# ---- the feed loop ----------------------------------------------------------------------------------------


class CexFeed:
    """Polls the configured markets' books and hands each to `sink(book, market, spec)`; a book the adapter
    refuses is counted and logged (the first time per reason), never passed on."""

    def __init__(self, config: CexConfig, sink: Callable[[OrderBook, CexMarket, MarketSpec], Any]) -> None:
        self.config = config
        self.sink = sink
        self.polled = 0
        self.refused = 0
        self.failures = 0
        self.last_error: str | None = None
        self._stopping = False
        self.replay: ReplayTransport | None = None

    def stop(self) -> None:
        self._stopping = True

    def stats(self) -> dict[str, Any]:
        return {"exchange": self.config.exchange, "polled": self.polled, "refused": self.refused,
                "failures": self.failures, "last_error": self.last_error,
                "recording": self.config.recording is not None}  # fmt: skip

    async def run(self) -> None:
        import ccxt.async_support as ccxt_async  # the control plane loads ccxt only with crosschain.cex

        factory = getattr(ccxt_async, self.config.exchange, None)
        if factory is None:
            raise FeedError(f"crosschain.cex.exchange: {self.config.exchange!r} is not a ccxt exchange")
        exchange = factory(exchange_options(self.config))
        if self.config.recording is not None:
            self.replay = ReplayTransport.starting_now(Recording.load(self.config.recording))
            self.replay.install(exchange)
        try:
            await self._run(exchange)
        finally:
            await exchange.close()

    async def _run(self, exchange: Any) -> None:
        while not self._stopping:
            try:
                await exchange.load_markets()
                break
            except FeedError:
                raise
            except Exception as exc:  # ccxt's network and exchange errors: try again
                self._failed(exc)
                await asyncio.sleep(min(30.0, self.config.poll_s * 2**self.failures))
        fee = self.config.taker_fee
        if fee is None and self.config.keys_file is not None and exchange.has.get("fetchTradingFee"):
            try:  # the account's own tier
                fee = _decimal((await exchange.fetch_trading_fee(self.config.markets[0].symbol)).get("taker"))
            except Exception as exc:
                self._failed(exc)
        books = CcxtBooks(exchange, fee)
        specs = {m.symbol: books.market(m.symbol) for m in self.config.markets}  # an unknown symbol stops here
        while not self._stopping:
            for market in self.config.markets:
                try:
                    raw = await exchange.fetch_order_book(market.symbol, self.config.depth)
                except FeedError as exc:
                    if self.replay is not None and self.replay.exhausted:
                        return  # the recording is over
                    raise exc
                except Exception as exc:
                    self._failed(exc)
                    continue
                received = self.replay.received_ms if self.replay is not None else int(time.time() * 1000)
                self.polled += 1
                try:
                    book = books.book(raw, received)
                except FeedError as exc:
                    self.refused += 1
                    if str(exc) != self.last_error:
                        log.warning("cex: book refused: %s", exc)
                    self.last_error = str(exc)
                    continue
                self.sink(book, market, specs[market.symbol])
            await asyncio.sleep(self.config.poll_s)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        # ccxt's errors quote the request's URL: a signed one carries a timestamp and signature in its query.
        reason = _QUERY.sub("?...", f"{type(exc).__name__}: {exc}")[:300]
        if reason != self.last_error:
            log.warning("cex: %s: %s", self.config.exchange, reason)
        self.last_error = reason
