"""The cross-chain engine: the fleet's price graph from the agents' `pair_price` events, and the gaps
between chains that pay after every cost.

A gap is two inventory legs: buy the base token with the quote token on chain A, sell the same amount of
the base asset for the quote on chain B. The engine sizes it with the agent's exact AMM math
(mevagent.amm: the two pools as one cycle; two V2 pools by `size_v2_cycle`, the proven integer argmax of the
gross profit; with a V3 pool on either side or both by `search_cycle`, the concavity search over the exact
V3 swap simulation, which is not proven optimal), so `gross` is what the two pools pay to the base unit. A V3
pool is quoted from the ticks its agent published (PairPrice.v3) with the published range's edge as the
swap's price limit: an input that would take the price past it is infeasible, never guessed. From it come,
in quote base units (rounded up, against us):

- both legs' gas: `leg_gas` (`v3_leg_gas` for a V3 pool's leg) times the chain's gas price (the latest
  `gas_prices` event: base fee + p50 priority fee, or `gas_price_wei` from the config) valued at the native
  coin's USD price;
- the builder payment on chains that have builders: `builder_payment_bps` of the gross, per leg chain;
- restoring the inventory: the base amount back from A to B and the quote amount from B to A, each by
  the cheapest bridge route of the registry (mevagent.crosschain) that fills within `max_bridge_time`,
  `preferred_bridges` first among equal costs, never a route the bridge monitor marks unhealthy and
  never a rollup withdrawal.

Two pools are compared only when their base tokens are the same asset, their quote tokens too, their
decimals agree, and bridge routes join them (a bridged USDC.e and Circle's USDC are different tokens:
the route's cost is what makes them comparable). Prices of pools not updated for `stale_after_s` are
left out.

An exchange's book (crosschain.cex, mevcontrol.cex: ccxt as the adapter) is one more venue of its pair: a gap
between a chain's pool and the book is a cycle of the pool and the book walked at taker prices (mevagent.amm
BookHop), sized over whole amount steps (`_step_search`), costed with the pool's leg gas, the builder payment,
the taker fee (in the walk) and restoring the inventory (the exchange's withdrawal fee and a deposit's gas), and
listed as a `cex_dex` opportunity. It is never executed here (no order is placed on the exchange).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mevagent.amm.arbitrage import (
    BookHop,
    Hop,
    V2Hop,
    V3Hop,
    book_cost,
    cycle_amounts,
    hop_out,
    search_cycle,
    size_v2_cycle,
)
from mevagent.amm.errors import Revert
from mevagent.amm.v2 import get_amount_in
from mevagent.amm.v3 import Q96, V3PoolState, simulate_swap
from mevagent.bus.events import FIELD, PRICE_STREAM, GasPrices, InventoryBalances, PairPrice, V3Quote, decode_event
from mevagent.bus.publisher import reraise_if_cancelled
from mevagent.config import Strict
from mevagent.crosschain.quote import v3_hop, v3_state
from mevagent.crosschain.registry import Registry, Route, Token, load_registry, registry
from mevcontrol.bridge_monitor import BridgeMonitor, BridgeWatch, BridgeWatcher, pct, route_name
from mevcontrol.cex import CexConfig, CexFeed, CexMarket, MarketSpec, OrderBook
from mevcontrol.positions import ExecutionConfig, PositionBook
from mevcontrol.rebalance import Plan, RebalanceConfig, RebalancePlanner

log = logging.getLogger(__name__)

PositiveUsd = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class CrossChainConfig(Strict):
    """The cross-chain strategy's settings (control.yml `crosschain:`)."""

    max_bridge_time: Annotated[float, Field(gt=0, le=86_400 * 14, allow_inf_nan=False)] = 600.0  # seconds
    preferred_bridges: tuple[str, ...] = ()
    registry_file: Path | None = None  # None: the registry shipped with mevagent.crosschain
    # USD per whole unit of each asset used (the native coins, the quote assets).
    usd: dict[str, PositiveUsd] = Field(default_factory=dict)
    leg_gas: Annotated[int, Field(gt=0)] = 150_000  # gas units of one inventory leg (one V2 swap)
    v3_leg_gas: Annotated[int, Field(gt=0)] = 250_000  # one V3 swap through the SwapRouter (ticks crossed cost more)
    # Per chain, until its first gas_prices event arrives.
    gas_price_wei: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # Of the gross, per leg chain (chains whose legs go to builders).
    builder_payment_bps: dict[str, Annotated[int, Field(ge=0, le=10_000)]] = Field(default_factory=dict)
    min_profit_usd: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    stale_after_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    # Bridge contracts whose deposit and fill events the monitor follows (mevcontrol.bridge_monitor).
    watch: tuple[BridgeWatch, ...] = ()
    # A deposit unfilled this long is stuck (a route's `stuck_s` in the bridge catalog wins).
    stuck_after_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3600.0
    slow_factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 3.0  # fill p90 above catalog fill_s x this
    # Present: the opportunities are executed as two legs through the agents (mevcontrol.positions).
    execution: ExecutionConfig | None = None
    # Present: GET /rebalance/plan advises bridge moves from the agents' inventory events (mevcontrol.rebalance).
    rebalance: RebalanceConfig | None = None
    # Present: an exchange's order books are a venue of the graph, for CEX-DEX detection (mevcontrol.cex).
    cex: CexConfig | None = None


@dataclass(slots=True)
class PoolQuote:
    chain: str
    pool: str
    base: Token
    quote: Token
    event: PairPrice
    seen: float  # time.monotonic() when absorbed
    v3: V3PoolState | None = None  # a V3 pool: its state over the published ticks (v3_state)
    # A V3 pool: (base, quote) virtual reserves of its largest liquidity in the published range, at its price
    # (a constant-product pool that pays at least as much for any input: the fixed-cost pre-test's bound).
    v3_bound: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Opportunity:
    buy_chain: str
    buy_pool: str
    sell_chain: str
    sell_pool: str
    base: str  # token ids
    quote: str
    sell_base: str  # the base token sold on the sell chain
    sell_quote: str
    amount_in: int  # quote paid on the buy chain
    base_amount: int  # base bought on the buy chain and sold on the sell chain
    amount_out: int  # quote received on the sell chain
    gross: int  # amount_out - amount_in, quote base units
    gas_cost: int  # both legs, quote base units
    builder_payment: int
    bridge_cost: int
    net: int
    net_usd: Decimal
    base_route: str  # bridge restoring the base inventory (sell chain ← buy chain)
    quote_route: str
    blocks: tuple[int, int]
    found_at: float
    # A V3 pool's fee (millionths) on that side, None for a V2 pool: the legs swap through the V3 router then.
    buy_v3_fee: int | None = None
    sell_v3_fee: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else value
        out["blocks"] = list(self.blocks)
        out["kind"] = "dex_dex"
        return out


@dataclass(slots=True)
class CexVenue:
    """An exchange market's latest book, and its sides as BookHops per (base, quote) token decimals."""

    book: OrderBook
    market: CexMarket
    spec: MarketSpec
    hops: dict[tuple[int, int], tuple[BookHop, BookHop]]  # (bids walked selling base, asks walked buying it)

    def sides(self, base_decimals: int, quote_decimals: int) -> tuple[BookHop, BookHop]:
        key = (base_decimals, quote_decimals)
        cached = self.hops.get(key)
        if cached is None:
            cached = self.hops[key] = book_hops(self.book, self.spec, base_decimals, quote_decimals)
        return cached


def book_hops(book: OrderBook, spec: MarketSpec, base_decimals: int, quote_decimals: int) -> tuple[BookHop, BookHop]:
    """The book's bids and asks in the chain tokens' base units, exact: each price as an integer numerator over
    one common power of ten (quote base units per base base unit), each amount in base units (rounded down to
    the token's unit, never up), the amount step likewise; the taker fee as a fraction."""
    step = 1 if spec.amount_step is None else max(1, int(spec.amount_step.scaleb(base_decimals)))
    fee = Fraction(book.taker_fee)

    def side(levels: tuple[Any, ...], sell: bool) -> BookHop:
        # A price p with k decimals is n / 10^k; in base units it is n * 10^quote_decimals / 10^(k + base_decimals).
        digits = max((-level.price.as_tuple().exponent for level in levels), default=0)
        shift = digits + base_decimals - quote_decimals
        scale = 10 ** max(0, -shift)
        rows = tuple(
            (int(level.amount.scaleb(base_decimals)), int(level.price.scaleb(digits)) * scale) for level in levels
        )
        return BookHop(tuple(r for r in rows if r[0] > 0), 10 ** max(0, shift), sell, step, fee.numerator,
                       fee.denominator)  # fmt: skip

    return side(book.bids, True), side(book.asks, False)


@dataclass(frozen=True, slots=True)
class CexDexOpportunity:
    """A gap between a chain's pool and an exchange's book, after the pool leg's gas, the builder payment, the
    taker fee and restoring the inventory. `direction`: `dex_to_cex` buys the base on the pool with the quote
    and sells it on the exchange; `cex_to_dex` buys it on the exchange and sells it on the pool. Amounts are the
    chain tokens' base units; `amount_in` is the quote paid at the first venue, `amount_out` the quote received
    at the second."""

    exchange: str
    symbol: str
    chain: str
    pool: str
    direction: str
    base: str  # the chain's token ids
    quote: str
    amount_in: int
    base_amount: int  # base received at the first venue
    base_traded: int  # base the second venue takes (the exchange's amount step: the rest stays as inventory)
    amount_out: int
    gross: int  # amount_out - amount_in (the taker fee is inside: it is paid in what the exchange pays out)
    taker_fee: int  # what the taker fee took, in base units of what the exchange paid out (cex_fee_token)
    taker_fee_token: str
    cex_levels: int  # book levels walked
    gas_cost: int  # the pool leg
    builder_payment: int
    restore_cost: int  # withdrawal fee + deposit gas, quote units (the priced part)
    restore_priced: bool
    restore_unpriced: tuple[str, ...]  # what has no cost configured (crosschain.cex.withdraw_fee)
    net: int
    net_usd: Decimal
    block: int
    book_ms: int
    found_at: float
    v3_fee: int | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "cex_dex"}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, int | Decimal) and not isinstance(value, bool) else value
        out["restore_unpriced"] = list(self.restore_unpriced)
        return out


@dataclass
class EngineStats:
    absorbed: int = 0
    unknown_token: int = 0
    decimals_differ: int = 0
    no_route: int = 0
    evaluated: int = 0  # past the marginal-price test
    below_fixed_costs: int = 0  # the real-valued optimum cannot pay gas and the bridges' fixed fees
    sized: int = 0  # sized exactly (mevagent.amm.size_v2_cycle, or search_cycle with a V3 pool)
    sized_v3: int = 0  # of which with a V3 pool on either side
    found: int = 0
    books_absorbed: int = 0  # exchange books (crosschain.cex)
    books_stale: int = 0  # older than stale_after_s when they arrived: not kept
    cex_evaluated: int = 0  # pool-book pairs past the marginal test
    cex_below_fixed_costs: int = 0
    cex_sized: int = 0
    cex_found: int = 0


class CrossChainEngine:
    def __init__(self, config: CrossChainConfig, reg: Registry | None = None) -> None:
        self.config = config
        self.registry = reg or (load_registry(config.registry_file) if config.registry_file else registry())
        self.quotes: dict[tuple[str, str], PoolQuote] = {}
        self._by_pair: dict[tuple[str, str], dict[tuple[str, str], PoolQuote]] = defaultdict(dict)
        self.opportunities: dict[tuple[str, str, str, str], Opportunity] = {}
        self.gas_wei: dict[str, int] = dict(config.gas_price_wei)
        bounds = {route_name(r.bridge, r.src, r.dst): r.stuck_s for rs in self.registry.routes.values() for r in rs
                  if r.stuck_s is not None}  # fmt: skip
        self.monitor = BridgeMonitor(stuck_after_s=config.stuck_after_s, bounds=bounds)
        self.stats = EngineStats()
        self._fixed: dict[tuple[str, str, str, str, bool, bool], float | None] = {}  # see _fixed_costs
        self.decision_s: deque[float] = deque(maxlen=10_000)  # event's `at` → decided, seconds (same host clock)
        self.rebalancer = (
            None if config.rebalance is None else RebalancePlanner(config.rebalance, self.registry, dict(config.usd))
        )
        self.books: dict[tuple[str, str], CexVenue] = {}  # (exchange, symbol)
        self._books_by_pair: dict[tuple[str, str], dict[tuple[str, str], CexVenue]] = defaultdict(dict)
        self.cex_opportunities: dict[tuple[str, str, str, str, str], CexDexOpportunity] = {}
        if config.cex is not None:
            _check_cex_assets(config, self.registry)
        self._cex_fixed: dict[tuple[str, str, str, bool, bool], tuple[Fraction, Fraction, tuple[str, ...], float]] = {}

    # ---- inputs --------------------------------------------------------------------------------------

    def gas_prices(self, event: GasPrices) -> None:
        wei = event.base_fee_wei + event.priority_fee_p50_wei
        if self.gas_wei.get(event.chain) != wei:
            self.gas_wei[event.chain] = wei
            self._fixed.clear()
            self._cex_fixed.clear()

    def absorb(self, event: PairPrice) -> list[Opportunity]:
        """Take one pool's new state; the gaps it opens (or keeps open) against the other chains."""
        self.stats.absorbed += 1
        base = self.registry.token_at(event.chain, event.base)
        quote = self.registry.token_at(event.chain, event.quote)
        if base is None or quote is None:
            self.stats.unknown_token += 1
            return []
        now = time.monotonic()
        key = (event.chain, event.pool)
        if event.v3 is None:
            mine = PoolQuote(event.chain, event.pool, base, quote, event, now)
        else:
            state = v3_state(event.v3)
            mine = PoolQuote(event.chain, event.pool, base, quote, event, now, state, _v3_bound(event.v3, state))
        self.quotes[key] = mine
        pair = self._by_pair[(base.asset, quote.asset)]
        pair[key] = mine
        found: list[Opportunity] = []
        for other in pair.values():
            if other.chain == event.chain or now - other.seen > self.config.stale_after_s:
                continue
            for buy, sell in ((mine, other), (other, mine)):
                opp = self._gap(buy, sell)
                index = (buy.chain, buy.pool, sell.chain, sell.pool)
                if opp is None:
                    self.opportunities.pop(index, None)
                else:
                    self.opportunities[index] = opp
                    found.append(opp)
        self.stats.found += len(found)
        for venue in self._books_by_pair.get((base.asset, quote.asset), {}).values():
            self._cex_pair(mine, venue)
        self.decision_s.append(max(0.0, time.time() - event.at))
        return found

    def absorb_book(self, book: OrderBook, market: CexMarket, spec: MarketSpec) -> list[CexDexOpportunity]:
        """Take an exchange market's new book; the gaps it opens against the pair's pools on every chain. A book
        older than `stale_after_s` (by its own time) is not kept. The book goes nowhere near the position book:
        CEX-DEX gaps are reported, not executed."""
        self.stats.books_absorbed += 1
        key = (book.exchange, book.symbol)
        if time.time() - book.timestamp_ms / 1000 > self.config.stale_after_s:
            self.stats.books_stale += 1
            return []
        venue = CexVenue(book, market, spec, {})
        self.books[key] = venue
        self._books_by_pair[(market.base, market.quote)][key] = venue
        found: list[CexDexOpportunity] = []
        for pool in self._by_pair.get((market.base, market.quote), {}).values():
            found.extend(self._cex_pair(pool, venue))
        return found

    def _cex_pair(self, pool: PoolQuote, venue: CexVenue) -> list[CexDexOpportunity]:
        now = time.time()
        found = []
        fresh = (now - venue.book.timestamp_ms / 1000 <= self.config.stale_after_s
                 and time.monotonic() - pool.seen <= self.config.stale_after_s)  # fmt: skip
        for direction in ("dex_to_cex", "cex_to_dex"):
            index = (venue.book.exchange, venue.book.symbol, pool.chain, pool.pool, direction)
            opp = self._cex_gap(pool, venue, direction) if fresh else None
            if opp is None:
                self.cex_opportunities.pop(index, None)
            else:
                self.cex_opportunities[index] = opp
                found.append(opp)
        self.stats.cex_found += len(found)
        return found

    def _cex_gap(self, pool: PoolQuote, venue: CexVenue, direction: str) -> CexDexOpportunity | None:
        """The pool and the book as one cycle from the quote token, sized over whole amount steps (`_step_search`:
        the book walk is concave, each level paying less than the one before), priced exactly at that size."""
        e = pool.event
        bids, asks = venue.sides(pool.base.decimals, pool.quote.decimals)
        dex_to_cex = direction == "dex_to_cex"
        side = bids if dex_to_cex else asks
        if not side.levels:
            return None
        top, den = side.levels[0][1], side.price_denominator  # the best level: quote units per base unit, top / den
        fee_kept, fee_den = side.fee_den - side.fee_num, side.fee_den
        # The marginal round trip quote -> base -> quote at zero size must beat 1 (integers for a V2 pool).
        if e.v3 is not None:
            price = Fraction(top, den) * Fraction(fee_kept, fee_den)
            marginal = _marginal(e, buy_base=True) * price if dex_to_cex else _marginal(e, buy_base=False) / price
            if marginal <= 1:
                return None
        elif dex_to_cex:
            kept = e.fee_denominator - e.fee_quote_in
            if kept * e.reserve_base * top * fee_kept <= e.fee_denominator * e.reserve_quote * den * fee_den:
                return None
        else:
            kept = e.fee_denominator - e.fee_base_in
            if fee_kept * den * kept * e.reserve_quote <= fee_den * top * e.fee_denominator * e.reserve_base:
                return None
        self.stats.cex_evaluated += 1
        gas_usd, restore_usd, unpriced, fixed = self._cex_fixed_costs(pool, dex_to_cex)
        unit = self._usd(pool.quote) / Fraction(10**pool.quote.decimals)
        if _cex_gross_bound(pool, top / den * fee_kept / fee_den, dex_to_cex) <= fixed:
            self.stats.cex_below_fixed_costs += 1
            return None
        pool_leg = pool_hop(pool, buy_base=dex_to_cex)
        hops: list[Hop] = [pool_leg, side] if dex_to_cex else [side, pool_leg]
        self.stats.cex_sized += 1
        # The exchange trades whole amount steps, so the profit is a staircase: searched over the step counts, each
        # at its exact least input (the engine's concavity search, tried first, settled 1.6 % of the steps away
        # from the best on a V3 pool: the stairs' noise misleads it where the profit is flat).
        x = _step_search(hops, pool_leg, side, dex_to_cex)
        best = None if x is None else cycle_amounts(hops, x)
        if best is None or best[-1] <= best[0]:
            return None
        amount_in, base_amount, amount_out = best
        gross = amount_out - amount_in
        gas_cost, restore_cost = _ceil(gas_usd / unit), _ceil(restore_usd / unit)
        builder = _ceil(Fraction(max(gross, 0) * self.config.builder_payment_bps.get(pool.chain, 0), 10_000))
        net = gross - gas_cost - builder - restore_cost
        net_usd = Decimal(net) * Decimal(unit.numerator) / Decimal(unit.denominator)
        if net <= 0 or net_usd < self.config.min_profit_usd:
            return None
        walked, before_fee = _walk(side, base_amount if dex_to_cex else amount_in)
        traded = base_amount - base_amount % side.step if dex_to_cex else base_amount
        book = venue.book
        return CexDexOpportunity(
            exchange=book.exchange, symbol=book.symbol, chain=pool.chain, pool=pool.pool, direction=direction,
            base=pool.base.id, quote=pool.quote.id, amount_in=amount_in, base_amount=base_amount,
            base_traded=traded, amount_out=amount_out, gross=gross,
            taker_fee=before_fee - (amount_out if dex_to_cex else base_amount),
            taker_fee_token=pool.quote.id if dex_to_cex else pool.base.id, cex_levels=walked, gas_cost=gas_cost,
            builder_payment=builder, restore_cost=restore_cost, restore_priced=not unpriced,
            restore_unpriced=unpriced, net=net, net_usd=net_usd, block=e.block, book_ms=book.timestamp_ms,
            found_at=time.time(), v3_fee=e.v3.fee if e.v3 else None,
        )  # fmt: skip

    def _cex_fixed_costs(self, pool: PoolQuote, dex_to_cex: bool) -> tuple[Fraction, Fraction, tuple[str, ...], float]:
        """(the pool leg's gas, restoring the inventory, what is not priced, both in quote units as a float), USD;
        kept until a gas price changes."""
        key = (pool.chain, pool.base.id, pool.quote.id, pool.v3 is not None, dex_to_cex)
        cached = self._cex_fixed.get(key)
        if cached is None:
            gas_usd = self._leg_gas_usd(pool)
            restore_usd, unpriced = self._cex_restore_usd(pool, dex_to_cex)
            unit = self._usd(pool.quote) / Fraction(10**pool.quote.decimals)
            cached = self._cex_fixed[key] = (gas_usd, restore_usd, unpriced, float((gas_usd + restore_usd) / unit))
        return cached

    def _cex_restore_usd(self, pool: PoolQuote, dex_to_cex: bool) -> tuple[Fraction, tuple[str, ...]]:
        """Restoring the inventory after the trade, USD: the asset bought on the exchange is withdrawn to the
        chain (the exchange's fee), the asset bought on the chain is deposited to the exchange (one transfer's
        gas). What has no configured fee is named, not guessed."""
        cex = self.config.cex
        assert cex is not None
        withdrawn = pool.quote if dex_to_cex else pool.base
        fee = cex.withdraw_fee.get(withdrawn.asset, {}).get(pool.chain)
        usd = Fraction(0)
        unpriced: tuple[str, ...] = ()
        if fee is None:
            unpriced = (f"withdraw_fee.{withdrawn.asset}.{pool.chain}",)
        else:
            usd += Fraction(fee) * self._usd(withdrawn)
        wei = self.gas_wei.get(pool.chain, 0)
        if wei:
            native = self.registry.natives[pool.chain]
            usd += Fraction(cex.deposit_gas * wei, 10**native.decimals) * self._usd(native)
        return usd, unpriced

    # ---- one gap -------------------------------------------------------------------------------------

    def _gap(self, buy: PoolQuote, sell: PoolQuote) -> Opportunity | None:
        b, s = buy.event, sell.event
        v3 = buy.v3 is not None or sell.v3 is not None
        # Quick refusal: the marginal round trip quote → base (buy) → quote (sell) must beat 1.
        if v3:
            if _marginal(b, buy_base=True) * _marginal(s, buy_base=False) <= 1:
                return None
        else:
            kept_b = b.fee_denominator - b.fee_quote_in
            kept_s = s.fee_denominator - s.fee_base_in
            if kept_b * kept_s * b.reserve_base * s.reserve_quote <= (
                b.fee_denominator * s.fee_denominator * b.reserve_quote * s.reserve_base
            ):
                return None
        self.stats.evaluated += 1
        if buy.base.decimals != sell.base.decimals or buy.quote.decimals != sell.quote.decimals:
            self.stats.decimals_differ += 1
            return None
        # The costs that do not grow with the size: if even the real-valued optimum of the two pools cannot
        # pay them, nothing is sized (the common case of a gap just above the pools' fees).
        fixed = self._fixed_costs(buy, sell)
        if fixed is None:
            self.stats.no_route += 1
            return None
        if _gross_bound(buy, sell) <= fixed:
            self.stats.below_fixed_costs += 1
            return None
        quote_unit_usd = self._usd(buy.quote) / Fraction(10**buy.quote.decimals)
        gas_usd = self._leg_gas_usd(buy) + self._leg_gas_usd(sell)
        hops: list[Hop] = [pool_hop(buy, buy_base=True), pool_hop(sell, buy_base=False)]
        self.stats.sized += 1
        if v3:
            self.stats.sized_v3 += 1
            sized = search_cycle(hops)
        else:
            sized = size_v2_cycle([h for h in hops if isinstance(h, V2Hop)])
        if sized is None or sized.profit <= 0:
            return None
        unit = quote_unit_usd
        routes = self._routes(buy, sell, sized.amount_in, unit)
        if routes is None:
            self.stats.no_route += 1
            return None
        best = self._costed(buy, sell, hops, sized.amount_in, routes, unit, gas_usd)
        if any(r.fee.fee_bps for r in routes):
            # A fee on the amount moves the net optimum below the gross one: search [1, gross argmax] with the
            # routes of the gross optimum (the net is concave there), then price the answer by its own routes.
            x = self._net_argmax(buy, sell, hops, sized.amount_in, routes)
            own = self._routes(buy, sell, x, unit)
            if own is not None:
                candidate = self._costed(buy, sell, hops, x, own, unit, gas_usd)
                if candidate is not None and (best is None or candidate[-1] > best[-1]):
                    best, routes = candidate, own
        if best is None:
            return None
        amount_in, base_amount, amount_out, gas_cost, bridge_cost, builder, net = best
        net_usd = Decimal(net) * Decimal(unit.numerator) / Decimal(unit.denominator)
        if net <= 0 or net_usd < self.config.min_profit_usd:
            return None
        base_route, quote_route = routes
        return Opportunity(
            buy_chain=buy.chain, buy_pool=buy.pool, sell_chain=sell.chain, sell_pool=sell.pool,
            base=buy.base.id, quote=buy.quote.id, sell_base=sell.base.id, sell_quote=sell.quote.id,
            amount_in=amount_in, base_amount=base_amount, amount_out=amount_out, gross=amount_out - amount_in,
            gas_cost=gas_cost, builder_payment=builder, bridge_cost=bridge_cost, net=net, net_usd=net_usd,
            base_route=base_route.bridge, quote_route=quote_route.bridge, blocks=(b.block, s.block),
            found_at=time.time(), buy_v3_fee=b.v3.fee if b.v3 else None, sell_v3_fee=s.v3.fee if s.v3 else None,
        )  # fmt: skip

    def _routes(self, buy: PoolQuote, sell: PoolQuote, amount_in: int, unit: Fraction) -> tuple[Route, Route] | None:
        """The cheapest routes restoring the base (sell chain's, from the buy chain) and the quote inventory."""
        notional = Decimal(amount_in) * Decimal(unit.numerator) / Decimal(unit.denominator)
        base_route = self._route(buy.base.id, sell.base.id, notional)
        quote_route = self._route(sell.quote.id, buy.quote.id, notional)
        return None if base_route is None or quote_route is None else (base_route, quote_route)

    def _costed(
        self,
        buy: PoolQuote,
        sell: PoolQuote,
        hops: list[Hop],
        amount_in: int,
        routes: tuple[Route, Route],
        unit: Fraction,
        gas_usd: Fraction,
    ) -> tuple[int, int, int, int, int, int, int] | None:
        """(amount_in, base bought, quote out, gas, bridge, builder, net) at `amount_in`, exact (quote units,
        costs rounded up): the pools' outputs by mevagent.amm's cycle_amounts."""
        amounts = cycle_amounts(hops, amount_in)
        if amounts is None:
            return None
        _, base_amount, amount_out = amounts
        gross = amount_out - amount_in
        notional = Fraction(amount_in) * unit
        bridge_usd = sum((Fraction(r.fee.fixed_usd) + notional * Fraction(r.fee.fee_bps) / 10_000 for r in routes),
                         Fraction(0))  # fmt: skip
        gas_cost, bridge_cost = _ceil(gas_usd / unit), _ceil(bridge_usd / unit)
        bps = self.config.builder_payment_bps
        share = bps.get(buy.chain, 0) + bps.get(sell.chain, 0)
        builder = _ceil(Fraction(max(gross, 0) * share, 10_000))
        net = gross - gas_cost - bridge_cost - builder
        return amount_in, base_amount, amount_out, gas_cost, bridge_cost, builder, net

    def _net_argmax(
        self, buy: PoolQuote, sell: PoolQuote, hops: list[Hop], high: int, routes: tuple[Route, Route]
    ) -> int:
        """Ternary search over [1, high] of the part of the net that depends on the size (the gross after the
        builder's share, less the routes' fees on the amount), down to 1/65,536 of `high`: the net is flat
        there. The answer is then priced exactly by `_costed`."""
        bps = self.config.builder_payment_bps
        kept = 1 - (bps.get(buy.chain, 0) + bps.get(sell.chain, 0)) / 10_000
        fee = float(sum(r.fee.fee_bps for r in routes)) / 10_000

        def net(x: int) -> float:
            amounts = cycle_amounts(hops, x)
            return -math.inf if amounts is None else (amounts[-1] - x) * kept - x * fee

        lo, hi = 1, high
        while hi - lo > max(2, high >> 16):
            m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
            if net(m1) < net(m2):
                lo = m1 + 1
            else:
                hi = m2
        return max((lo, (lo + hi) // 2, hi), key=net)

    def _fixed_costs(self, buy: PoolQuote, sell: PoolQuote) -> float | None:
        """Both legs' gas and the cheapest routes' fixed fees, quote units (None: no route joins them);
        kept until a gas price or a bridge's health changes."""
        key = (buy.base.id, sell.base.id, buy.quote.id, sell.quote.id, buy.v3 is not None, sell.v3 is not None)
        cached = self._fixed.get(key, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        cheap_base = self._route(buy.base.id, sell.base.id, Decimal(0))
        cheap_quote = self._route(sell.quote.id, buy.quote.id, Decimal(0))
        value: float | None = None
        if cheap_base is not None and cheap_quote is not None:
            usd = self._leg_gas_usd(buy) + self._leg_gas_usd(sell)
            usd += Fraction(cheap_base.fee.fixed_usd) + Fraction(cheap_quote.fee.fixed_usd)
            value = float(usd / (self._usd(buy.quote) / Fraction(10**buy.quote.decimals)))
        self._fixed[key] = value
        return value

    def inventory(self, event: InventoryBalances) -> None:
        if self.rebalancer is not None:
            self.rebalancer.book.absorb(event)

    def rebalance_plan(self) -> Plan:
        """The planner's moves now: never through a bridge the monitor finds unhealthy."""
        assert self.rebalancer is not None
        return self.rebalancer.plan(frozenset(self.monitor.unhealthy), self.config.preferred_bridges)

    def set_healthy(self, bridge: str, healthy: bool) -> None:
        """The monitor's verdict on a bridge: an unhealthy one is never chosen to restore inventory."""
        (self.monitor.unhealthy.discard if healthy else self.monitor.unhealthy.add)(bridge)
        self._fixed.clear()

    def check_health(self, now: float) -> None:
        """A bridge with a stuck transfer, or a route whose recent fill p90 is above `slow_factor` times its
        catalog time, is unhealthy until that clears; the route choice avoids it."""
        typical = {route_name(r.bridge, r.src, r.dst): r.fill_s for rs in self.registry.routes.values() for r in rs}
        bad = self.monitor.unhealthy_bridges(now, typical, self.config.slow_factor)
        for bridge in set(self.registry.catalog.bridges):
            if (bridge in bad) != (bridge in self.monitor.unhealthy):
                self.set_healthy(bridge, bridge not in bad)

    def _route(self, src: str, dst: str, amount_usd: Decimal) -> Route | None:
        if src == dst:
            return None
        return self.registry.cheapest_route(
            src, dst, amount_usd, max_time_s=self.config.max_bridge_time,
            preferred=self.config.preferred_bridges, avoid=frozenset(self.monitor.unhealthy),
        )  # fmt: skip

    def _usd(self, token: Token) -> Fraction:
        price = self.config.usd.get(token.asset)
        if price is None:
            raise KeyError(f"crosschain.usd: no USD price for asset {token.asset}")
        return Fraction(price)

    def leg_gas(self, v3: bool) -> int:
        """Gas units of one leg: its transaction's limit and what its cost is reckoned with."""
        return self.config.v3_leg_gas if v3 else self.config.leg_gas

    def _leg_gas_usd(self, pool: PoolQuote) -> Fraction:
        wei = self.gas_wei.get(pool.chain, 0)
        if wei == 0:
            return Fraction(0)
        native = self.registry.natives[pool.chain]
        return Fraction(self.leg_gas(pool.v3 is not None) * wei, 10**native.decimals) * self._usd(native)

    # ---- answers -------------------------------------------------------------------------------------

    def graph_stats(self) -> dict[str, Any]:
        decided = sorted(self.decision_s)
        return {
            "pools": len(self.quotes),
            "chains": sorted({chain for chain, _ in self.quotes}),
            "pairs": len(self._by_pair),
            **{k: v for k, v in vars(self.stats).items()},
            "decision_s_p99": pct(decided, 0.99) if decided else None,
        }

    def current(self) -> list[Opportunity]:
        """The open gaps, net first; a gap whose pools stopped reporting for `stale_after_s` is dropped."""
        now = time.monotonic()
        for index in list(self.opportunities):
            buy, sell = self.quotes.get(index[:2]), self.quotes.get(index[2:])
            if buy is None or sell is None or now - min(buy.seen, sell.seen) > self.config.stale_after_s:
                del self.opportunities[index]
        return sorted(self.opportunities.values(), key=lambda o: o.net_usd, reverse=True)

    def current_cex(self) -> list[CexDexOpportunity]:
        """The open CEX-DEX gaps, net first; one whose book or pool is older than `stale_after_s` is dropped."""
        now, mono = time.time(), time.monotonic()
        for index in list(self.cex_opportunities):
            pool, venue = self.quotes.get(index[2:4]), self.books.get(index[:2])
            if (pool is None or venue is None or mono - pool.seen > self.config.stale_after_s
                    or now - venue.book.timestamp_ms / 1000 > self.config.stale_after_s):  # fmt: skip
                del self.cex_opportunities[index]
        return sorted(self.cex_opportunities.values(), key=lambda o: o.net_usd, reverse=True)

    def bridges_status(self) -> dict[str, Any]:
        catalog = self.registry.catalog
        now = time.time()
        pending = self.monitor.pending_rows(now)
        bridges = []
        for name, bridge in catalog.bridges.items():
            routes = [r for rs in self.registry.routes.values() for r in rs if r.bridge == name]
            bridges.append(
                {"bridge": name, "kind": bridge.kind, "use": bridge.use, "why": bridge.why,
                 "healthy": name not in self.monitor.unhealthy, "routes": len(routes),
                 "within_max_bridge_time": sum(1 for r in routes if r.fill_s <= self.config.max_bridge_time),
                 "pending": sum(1 for p in pending if p["bridge"] == name),
                 "stuck": sum(1 for p in pending if p["bridge"] == name and p["stuck"]),
                 "fills_unmatched": self.monitor.unmatched.get(name, 0)}
            )  # fmt: skip
        return {
            "max_bridge_time": self.config.max_bridge_time,
            "preferred_bridges": list(self.config.preferred_bridges),
            "bridges": bridges,
            "not_used": dict(catalog.not_used),
            "pending": pending,
        }


def pool_hop(pool: PoolQuote, *, buy_base: bool) -> Hop:
    """The pool as one hop of the cycle: quote in, base out (`buy_base`), or base in, quote out."""
    e = pool.event
    if e.v3 is not None and pool.v3 is not None:
        # token0 in (zeroForOne) when what goes in is token0: quote in with base token1, or base in with base token0
        return v3_hop(e.v3, pool.v3, e.v3.base_is_token0 != buy_base)
    if buy_base:
        return V2Hop(e.reserve_quote, e.reserve_base, e.fee_quote_in, e.fee_denominator)
    return V2Hop(e.reserve_base, e.reserve_quote, e.fee_base_in, e.fee_denominator)


def _marginal(e: PairPrice, *, buy_base: bool) -> Fraction:
    """Output per unit of input at zero size, after the fee, exact: base per quote (`buy_base`) or quote per base."""
    kept = Fraction(e.fee_denominator - (e.fee_quote_in if buy_base else e.fee_base_in), e.fee_denominator)
    if (e.v3.sqrt_price_x96 == 0) if e.v3 is not None else (e.reserve_base == 0 or e.reserve_quote == 0):
        return Fraction(0)  # an empty pool (never published by the agents' reporter): nothing to trade
    if e.v3 is not None:
        price1 = Fraction(e.v3.sqrt_price_x96**2, 1 << 192)  # token1 per token0
        quote_per_base = price1 if e.v3.base_is_token0 else 1 / price1
    else:
        quote_per_base = Fraction(e.reserve_quote, e.reserve_base)
    return kept * (1 / quote_per_base if buy_base else quote_per_base)


def _v3_bound(quote: V3Quote, state: V3PoolState) -> tuple[int, int]:
    """(base, quote) reserves of a constant-product pool at the V3 pool's price with the most liquidity the pool
    has anywhere in the published range. It pays at least as much as the V3 pool for any input: at every price
    on the way it offers at least as much output (a swap buys the cheapest output first, and each price's output
    is the liquidity there), and past the range the V3 quote is refused anyway; the fee is the same share of
    the input. So the two-pool bound below holds with it in place of the V3 pool."""
    most = up = down = state.liquidity
    for tick, net in state.ticks.items():  # ascending: upwards a crossed tick adds its net
        if tick > state.tick:
            up += net
            most = max(most, up)
    for tick, net in reversed(state.ticks.items()):  # downwards a crossed tick takes its net off
        if tick <= state.tick:
            down -= net
            most = max(most, down)
    sqrt_p = quote.sqrt_price_x96
    if sqrt_p == 0:
        return 0, 0  # an empty pool: the marginal test refuses it before any bound
    r0, r1 = most * Q96 // sqrt_p, most * sqrt_p // Q96 + 1  # token0 = L / sqrtP, token1 = L * sqrtP (rounded up)
    r0 += 1
    return (r0, r1) if quote.base_is_token0 else (r1, r0)


def _gross_bound(buy: PoolQuote, sell: PoolQuote) -> float:
    """Above the most the two pools can pay as a cycle (quote units): the real-valued optimum of the
    composed constant-product curves, (sqrt(A) - sqrt(B))^2 / C, with a margin over float rounding. A V3 pool
    counts as the constant-product pool of its largest liquidity in the published range (_v3_bound)."""
    b, s = buy.event, sell.event
    b_base, b_quote = buy.v3_bound or (b.reserve_base, b.reserve_quote)
    s_base, s_quote = sell.v3_bound or (s.reserve_base, s.reserve_quote)
    k1 = (b.fee_denominator - b.fee_quote_in) / b.fee_denominator
    k2 = (s.fee_denominator - s.fee_base_in) / s.fee_denominator
    big_a = k1 * k2 * b_base * s_quote
    big_b = float(b_quote) * s_base
    big_c = k1 * s_base + k1 * k2 * b_base
    return (math.sqrt(big_a) - math.sqrt(big_b)) ** 2 / big_c * (1 + 1e-9) + 1


def _step_search(hops: list[Hop], pool: Hop, side: BookHop, dex_to_cex: bool) -> int | None:
    """The quote input of the best whole number of amount steps traded on the exchange (None: none pays). A step
    count k needs at least x(k) of the quote: on the asks, `book_cost` of k steps; from a V2 pool, its
    getAmountIn of k steps; from a V3 pool, its exact-output swap of k steps (within the published ticks). The
    profit over k is concave (the book pays less per step as it is walked, the pool more per step as it moves):
    a ternary search, then the last few steps scanned (floor rounding leaves plateaus of a unit)."""
    step = side.step
    depth = sum(a for a, _ in side.levels) // step
    if dex_to_cex:

        def least(k: int) -> int | None:
            x = _pool_least_in(pool, k * step)
            if x is None:
                return None
            return x - 1 if x > 1 and (hop_out(pool, x - 1) or 0) >= k * step else x  # rounded up by one

    else:

        def least(k: int) -> int | None:
            return book_cost(side, k * step)

    cache: dict[int, tuple[int, int]] = {}

    def profit(k: int) -> tuple[int, int]:
        if k not in cache:
            x = least(k)
            amounts = None if x is None else cycle_amounts(hops, x)
            cache[k] = (-(1 << 600), 0) if amounts is None or x is None else (amounts[-1] - x, x)
        return cache[k]

    lo, hi = 1, depth
    if hi < lo:
        return None
    while hi - lo > 8:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if profit(m1)[0] < profit(m2)[0]:
            lo = m1 + 1
        else:
            hi = m2
    gain, x = max((profit(k) for k in range(lo, hi + 1)), key=lambda p: (p[0], -p[1]))
    return x if gain > 0 else None


def _pool_least_in(pool: Hop, out: int) -> int | None:
    """The input a pool takes to pay `out` (V2: getAmountIn; V3: the exact-output swap, never past the published
    ticks); None if it cannot."""
    if isinstance(pool, V2Hop):
        if out >= pool.reserve_out:
            return None
        return get_amount_in(out, pool.reserve_in, pool.reserve_out, pool.fee, pool.fee_denominator)
    if not isinstance(pool, V3Hop):
        raise TypeError(f"not a pool hop: {type(pool).__name__}")
    try:
        result = simulate_swap(pool.pool, pool.zero_for_one, -out, pool.sqrt_price_limit_x96)
    except Revert:
        return None
    taken, paid = (result.amount0, -result.amount1) if pool.zero_for_one else (result.amount1, -result.amount0)
    return taken if paid == out else None  # stopped at the range's edge: it cannot


def _check_cex_assets(config: CrossChainConfig, reg: Registry) -> None:
    """The exchange's markets name assets of the registry, their quote (and an asset with a withdrawal fee) with a
    USD price: refused when the control plane starts, naming the market, instead of a market that silently never
    meets a pool or fails at its first gap."""
    assert config.cex is not None
    assets = {t.asset for t in reg.tokens.values()}
    problems = []
    for n, market in enumerate(config.cex.markets):
        for field in ("base", "quote"):
            asset = getattr(market, field)
            if asset not in assets:
                problems.append(f"markets.{n}.{field}: {asset} is not an asset of the token registry")
            # Gaps are valued in the quote (and a withdrawal fee in its asset): those need a USD price.
            elif asset not in config.usd and (field == "quote" or asset in config.cex.withdraw_fee):
                problems.append(f"markets.{n}.{field}: no USD price for asset {asset} (crosschain.usd)")
    if problems:
        raise ValueError("crosschain.cex: " + "; ".join(problems))


def _walk(side: BookHop, amount_in: int) -> tuple[int, int]:
    """(levels walked, what the exchange pays out before its taker fee) for `amount_in` into the book side."""
    if side.sell:
        rest, paid, walked = amount_in - amount_in % side.step, 0, 0
        for amount, price in side.levels:
            if rest == 0:
                break
            take = min(rest, amount)
            paid, rest, walked = paid + take * price, rest - take, walked + 1
        return walked, paid // side.price_denominator
    rest, bought, walked = amount_in * side.price_denominator, 0, 0
    for amount, price in side.levels:
        if rest == 0:
            break
        walked += 1
        if rest >= amount * price:
            bought, rest = bought + amount, rest - amount * price
        else:
            bought, rest = bought + rest // price, 0
    return walked, bought - bought % side.step


def _cex_gross_bound(pool: PoolQuote, price: float, dex_to_cex: bool) -> float:
    """Above the most the pool and the book can pay as a cycle (quote units): the book as unlimited depth at its
    best price after the fee (`price`, quote units per base unit), against the pool's constant-product curve
    (a V3 pool's bound reserves, _v3_bound). Quote x into a pool with reserves (in B, out R, fee kept k), its
    output sold at p: p k R x / (B + k x) - x, largest at (sqrt(p k R) - sqrt(B))^2 / k. Buying at p (base per
    quote c = 1/p) and selling into the pool (in R_b, out R_q) is the same with A = k R_q c, B = R_b, k c."""
    e = pool.event
    r_base, r_quote = pool.v3_bound or (e.reserve_base, e.reserve_quote)
    if dex_to_cex:
        k = (e.fee_denominator - e.fee_quote_in) / e.fee_denominator
        big_a, big_b, div = price * k * r_base, float(r_quote), k
    else:
        k = (e.fee_denominator - e.fee_base_in) / e.fee_denominator
        c = 1 / price
        big_a, big_b, div = k * r_quote * c, float(r_base), k * c
    if big_a <= big_b:
        return 0.0
    return (math.sqrt(big_a) - math.sqrt(big_b)) ** 2 / div * (1 + 1e-9) + 1


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


class CrossChainService:
    """Reads the price stream (XREAD from the tail it finds, no consumer group: prices are not stored) into
    the engine; gas prices come from the ingest's commits (Control.on_events)."""

    def __init__(self, engine: CrossChainEngine, redis: Redis, *, block_ms: int = 100, count: int = 1000) -> None:
        self.engine = engine
        self.redis = redis
        self.block_ms = block_ms
        self.count = count
        self.invalid = 0
        self.last_id = "0"  # the stream's tail rebuilds the graph after a restart
        self._stopping = False
        self.book: PositionBook | None = None  # set by the control plane when `execution` is configured
        self.watchers = [
            BridgeWatcher(w, engine.registry, engine.monitor, engine.check_health) for w in engine.config.watch
        ]
        cex = engine.config.cex
        self.cex_feed = None if cex is None else CexFeed(cex, engine.absorb_book)

    def stop(self) -> None:
        """End `run` at the next turn (a cancellation inside redis-py can be lost; this cannot)."""
        self._stopping = True
        for watcher in self.watchers:
            watcher.stop()
        if self.cex_feed is not None:
            self.cex_feed.stop()

    def opportunities(self) -> dict[str, Any]:
        """GET :8906/opportunities: DEX-DEX gaps (`kind: dex_dex`, executed when `execution:` is set) and CEX-DEX
        ones (`kind: cex_dex`, reported only), net first; the graph's counters; the exchange feed's."""
        found: list[Opportunity | CexDexOpportunity] = [*self.engine.current(), *self.engine.current_cex()]
        found.sort(key=lambda o: o.net_usd, reverse=True)
        answer = {"opportunities": [o.as_json() for o in found], "graph": self.engine.graph_stats()}
        if self.cex_feed is not None:
            answer["cex"] = self.cex_feed.stats()
        return answer

    def on_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, GasPrices):
                self.engine.gas_prices(event)
        if self.book is not None:
            self.book.on_events(events)

    async def run(self) -> None:
        book = [self.book.run()] if self.book is not None else []
        cex = [self._cex()] if self.cex_feed is not None else []
        await asyncio.gather(self._prices(), *(w.run() for w in self.watchers), *book, *cex)

    async def _cex(self) -> None:
        """The exchange feed: its failure (an unknown symbol, a recording that ends) is logged and counted in
        its stats, never ending the engine's gather."""
        assert self.cex_feed is not None
        try:
            await self.cex_feed.run()
        except Exception as exc:
            reraise_if_cancelled()
            self.cex_feed.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.error("crosschain: the exchange feed stopped: %s", self.cex_feed.last_error)

    async def _prices(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                answer = await self.redis.xread({PRICE_STREAM: self.last_id}, count=self.count, block=self.block_ms)
                failures = 0
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                if failures == 0:
                    log.warning("crosschain: Redis: %s; retrying", exc)
                failures += 1
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    raw = fields.get(FIELD.encode()) or fields.get(FIELD) or b""
                    try:
                        event = decode_event(raw)
                    except ValueError:
                        self.invalid += 1
                        continue
                    if isinstance(event, InventoryBalances):
                        self.engine.inventory(event)
                    elif isinstance(event, PairPrice):
                        found = self.engine.absorb(event)
                        if self.book is not None:
                            for opp in sorted(found, key=lambda o: o.net_usd, reverse=True):
                                self.book.consider(opp)
