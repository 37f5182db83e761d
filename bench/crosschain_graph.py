"""The cross-chain engine's graph: how fast it absorbs price updates, 8 chains x 500 tracked pairs.

Synthetic registry (8 chains, 500 base tokens and one quote token per chain, a bridge mesh per asset) and
one V2 pool per pair and chain (a tenth of them 1,000 times deeper). Prices start within +-0.5 % of each
other across chains (a round trip through two 0.3 % pools needs more than 0.6 %, so a share of the
updates opens a gap that is sized and costed exactly); each update moves one pool's reserves by a random
walk step.

Figures, one core, same run:
- baseline: decoding the updates from their bus JSON (`decode_event`): what receiving them costs anyway;
- absorb: `CrossChainEngine.absorb` of already decoded updates (graph update + comparison with the pair's
  pools on the 7 other chains, sizing where the quick test passes);
- decode + absorb: what `CrossChainService` does per stream entry.
The ratio is absorb's rate over the baseline's. Target: >= 10,000 updates/s absorbed on one core.

`--v3-share F`: that share of the pools are Uniswap V3 pools instead (fee 0.3 %, spacing 60, ten nested
positions ±600..±6,000 ticks around the first price, about as deep as the V2 pool they replace), published
by the agents' own PairPriceReporter from the pool's state (the `v3` field: the ticks of five bitmap words);
a move shifts the price and the active liquidity with it. A gap with a V3 pool is sized by the concavity
search over the exact V3 swap.

Then across the bus (`--bus`): an agent process publishes updates through a real BusPublisher at a fixed
rate into Debian's redis-server (started on loopback in a temporary directory, as testbed/services.py starts them);
the control side's CrossChainService reads `mev:prices` and absorbs them. Figure: the event's creation on
the agent → the engine's decision, p50/p99; baseline: the same path with an engine that only records
the time of arrival (the bus alone). Target: p99 <= 10 ms.

`--cex-markets N` (default 100): an exchange's books for the first N pairs (`T<n>/USD`, 20 levels a side around
the pair's price, within +-0.5 % of the pools like them, 0.1 % taker fee) as a venue of the graph
(crosschain.cex). Each book update is the exchange's raw depth response (decimal strings) run through ccxt's own
parser (`binance.parse_order_book`, markets set from a synthetic list), the adapter (`CcxtBooks.book`: the
pydantic OrderBook) and `CrossChainEngine.absorb_book` (the book against the pair's pools on the 8 chains, both
directions, sizing where the marginal test passes). Figures, same run: the DEX-only absorb rate of the same
moves (baseline), then the moves with one book update after each DEX update: DEX updates/s, book updates/s, and
the total against the baseline.

Run: .venv/bin/python bench/crosschain_graph.py [--updates 50000] [--pairs 500] [--bus 10000 --rate 2000]
     [--v3-share 0.1] [--cex-markets 100]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from math import isqrt
from pathlib import Path

from eth_utils import to_checksum_address
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService

from mevagent.amm.v3 import V3PoolState, get_tick_at_sqrt_ratio
from mevagent.bus.events import PRICE_STREAM, Event, PairPrice, decode_event, encode
from mevagent.crosschain.prices import PairPriceReporter, PairPricesConfig, PairSpec
from mevagent.crosschain.registry import Catalog, Registry
from mevagent.state.pools import PoolStore, V3Pool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testbed/, the local worlds

CHAINS = ("ethereum", "arbitrum", "optimism", "base", "polygon", "avalanche", "bsc", "blast")
E18 = 10**18


def address(chain: int, token: int) -> str:
    return to_checksum_address(f"0x{chain:04x}{token:036x}")


def registry(pairs: int) -> Registry:
    chains = {name: {"chain_id": 1000 + i, "native": "ETH"} for i, name in enumerate(CHAINS)}
    tokens: dict[str, dict] = {}
    for i, chain in enumerate(CHAINS):
        tokens[f"{chain}:ETH"] = {"asset": "eth", "variant": "native", "address": "native", "decimals": 18}
        tokens[f"{chain}:USD"] = {"asset": "usd", "variant": "issued", "address": address(i, 0), "decimals": 18}
        for t in range(1, pairs + 1):
            tokens[f"{chain}:T{t}"] = {"asset": f"t{t}", "variant": "issued", "address": address(i, t), "decimals": 18}
    mesh = [[f"{c}:USD" for c in CHAINS]] + [[f"{c}:T{t}" for c in CHAINS] for t in range(1, pairs + 1)]
    bridge = {"kind": "intent", "use": "trade", "why": "bench", "fee": {"fee_bps": 3, "fixed_usd": "0.5"},
              "fill_s": 30, "mesh": mesh}  # fmt: skip
    return Registry(Catalog.model_validate({"chains": chains, "tokens": tokens, "bridges": {"mesh": bridge}}))


def updates(
    pairs: int, count: int, rng: random.Random, v3_share: float = 0.0
) -> tuple[list[PairPrice], list[PairPrice]]:
    """The first state of every pool, then `count` random-walk updates."""
    state: dict[tuple[int, int], tuple[int, int]] = {}
    v3: dict[tuple[int, int], V3Bench] = {}
    first: list[PairPrice] = []
    for c in range(len(CHAINS)):
        for t in range(1, pairs + 1):
            price = 1 + t % 7  # quote per base, per pair
            r_base = (1_000_000 if t % 10 == 0 else 1_000) * E18  # a tenth of the pairs deep enough to pay
            r_quote = int(r_base * price * (1 + rng.uniform(-0.005, 0.005)))
            state[(c, t)] = (r_base, r_quote)
            if rng.random() < v3_share:
                v3[(c, t)] = V3Bench(c, t, r_base, r_quote)
                first.append(v3[(c, t)].event(r_quote, 1))
            else:
                first.append(event(c, t, r_base, r_quote, 1))
    moves: list[PairPrice] = []
    for n in range(count):
        c, t = rng.randrange(len(CHAINS)), rng.randrange(1, pairs + 1)
        r_base, r_quote = state[(c, t)]
        step = rng.uniform(-0.001, 0.001)
        r_quote = int(r_quote * (1 + step))
        state[(c, t)] = (r_base, r_quote)
        pool = v3.get((c, t))
        moves.append(event(c, t, r_base, r_quote, 2 + n) if pool is None else pool.event(r_quote, 2 + n))
    return first, moves


class V3Bench:
    """One V3 pool of the bench (see the module doc), published by the agents' PairPriceReporter."""

    def __init__(self, c: int, t: int, r_base: int, r_quote: int) -> None:
        self.r_base = r_base
        base, quote = address(c, t).lower(), address(c, 0).lower()  # quote < base: token0 is the quote
        self.address = f"0x2{c:03x}{t:036x}"
        sqrt_p = isqrt((r_base << 192) // r_quote)  # token1 (base) per token0 (quote)
        centre = get_tick_at_sqrt_ratio(sqrt_p) // 60 * 60
        per = isqrt(r_base * r_quote) // 4  # ten nested positions: about the V2 pool's depth near the price
        self.positions = [(centre - 600 * k, centre + 600 * k, per) for k in range(1, 11)]
        ticks: dict[int, int] = {}
        for lower, upper, liquidity in self.positions:
            ticks[lower], ticks[upper] = liquidity, -liquidity
        self.state = V3PoolState.from_ticks(sqrt_price_x96=sqrt_p, tick=0, liquidity=0, fee=3000, tick_spacing=60,
                                            ticks=ticks)  # fmt: skip
        self.store = PoolStore(CHAINS[c])
        self.store.add(V3Pool(self.address, "uniswap_v3", quote, base, self.state))
        self.published: list[Event] = []
        config = PairPricesConfig(pairs=(PairSpec(pool=self.address, base=base),), min_move_bps=0)
        self.reporter = PairPriceReporter(f"a{c}", self.store, config, self.published.append)

    def event(self, r_quote: int, block: int) -> PairPrice:
        state = self.state
        state.sqrt_price_x96 = isqrt((self.r_base << 192) // r_quote)
        state.tick = get_tick_at_sqrt_ratio(state.sqrt_price_x96)
        state.liquidity = sum(liq for lower, upper, liq in self.positions if lower <= state.tick < upper)
        self.reporter.observe([self.address], block)
        published = self.published.pop()
        assert isinstance(published, PairPrice)
        return published


def event(c: int, t: int, r_base: int, r_quote: int, block: int) -> PairPrice:
    return PairPrice(
        agent=f"a{c}", chain=CHAINS[c], block=block, pool=f"0x{c:04x}{t:036x}".replace("0x", "0x1", 1)[:42],
        fork="uniswap_v2", base=address(c, t).lower(), quote=address(c, 0).lower(), reserve_base=r_base,
        reserve_quote=r_quote, fee_base_in=30, fee_quote_in=30, fee_denominator=10_000,
        price=Decimal(r_quote) / Decimal(r_base),
    )  # fmt: skip


def engine_config(cex_markets: int = 0) -> CrossChainConfig:
    markets = [{"symbol": f"T{t}/USD", "base": f"t{t}", "quote": "usd"} for t in range(1, cex_markets + 1)]
    cex = {"cex": {"exchange": "binance", "markets": markets}} if markets else {}
    return CrossChainConfig.model_validate(
        {"usd": {"eth": 3000, "usd": 1}, "gas_price_wei": dict.fromkeys(CHAINS, 10**8), "stale_after_s": 3600, **cex}
    )


def engine(reg: Registry, first: list[PairPrice], cex_markets: int = 0) -> CrossChainEngine:
    e = CrossChainEngine(engine_config(cex_markets), reg)
    for update in first:
        e.absorb(update)
    return e


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _agent(port: int, password: str, moves: list[PairPrice], rate: float, spool: str) -> None:
    """The agent side, a process of its own: publish `moves` (re-stamped when sent) at `rate` per second."""
    from redis.asyncio import Redis

    from mevagent.bus.publisher import BusPublisher
    from mevagent.bus.spool import Spool

    async def run() -> None:
        redis = Redis(host="127.0.0.1", port=port, password=password)
        publisher = BusPublisher(redis, Spool(Path(spool)), max_queue=1_000_000)
        task = asyncio.create_task(publisher.run())
        started = time.perf_counter()
        for n, move in enumerate(moves):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            publisher.publish(move.model_copy(update={"at": time.time()}))
        await publisher.flushed(30)
        publisher.stop()
        await task
        await redis.aclose()

    asyncio.run(run())


class ArrivalOnly(CrossChainEngine):
    """The baseline: the bus alone (decoded, then only the time of arrival recorded)."""

    def absorb(self, event: PairPrice) -> list:  # type: ignore[override]
        self.decision_s.append(max(0.0, time.time() - event.at))
        return []


async def _over_bus(engine: CrossChainEngine, port: int, password: str, moves: list[PairPrice], rate: float) -> None:
    from redis.asyncio import Redis

    redis = Redis(host="127.0.0.1", port=port, password=password)
    await redis.delete(PRICE_STREAM)
    service = CrossChainService(engine, redis, block_ms=50)
    engine.decision_s.clear()
    task = asyncio.create_task(service.run())
    with tempfile.TemporaryDirectory() as spool:
        agent = multiprocessing.get_context("spawn").Process(target=_agent, args=(port, password, moves, rate, spool))
        agent.start()
        while agent.is_alive() or len(engine.decision_s) < len(moves):
            await asyncio.sleep(0.05)
            if not agent.is_alive() and agent.exitcode not in (0, None):
                raise RuntimeError(f"the agent process failed ({agent.exitcode})")
            if not agent.is_alive() and len(engine.decision_s) >= len(moves):
                break
        agent.join()
    service.stop()
    await asyncio.gather(task, return_exceptions=True)
    await redis.aclose()


def _bus_figures(reg: Registry, first: list[PairPrice], moves: list[PairPrice], rate: float) -> None:
    from testbed.services import RedisServer

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            for round_ in (1, 2):
                figures = []
                for side in (ArrivalOnly(engine_config(), reg), engine(reg, first)):
                    asyncio.run(_over_bus(side, server.port, server.password, moves, rate))
                    delays = sorted(side.decision_s)
                    figures.append((delays[len(delays) // 2] * 1e3, delays[int(len(delays) * 0.99)] * 1e3))
                (b50, b99), (e50, e99) = figures
                print(
                    f"bus round {round_}: {len(moves)} updates at {rate:,.0f}/s; update -> decision p50 {e50:.2f} ms, "
                    f"p99 {e99:.2f} ms; baseline (bus alone) p50 {b50:.2f} ms, p99 {b99:.2f} ms; "
                    f"ratio p99 x{e99 / b99:.2f}"
                )
        finally:
            server.stop()


def book_updates(markets: int, count: int, rng: random.Random) -> list[dict]:
    """`count` raw depth responses (Binance's shape: decimal strings, best first) of random markets, each a
    random-walk step of the market's mid from within +-0.5 % of the pair's price."""
    mids = {t: (1 + t % 7) * (1 + rng.uniform(-0.005, 0.005)) for t in range(1, markets + 1)}
    out = []
    for n in range(count):
        t = rng.randrange(1, markets + 1)
        mids[t] *= 1 + rng.uniform(-0.001, 0.001)
        mid = mids[t]
        bids = [[f"{mid * (1 - 0.0001 * (i + 1)):.6f}", f"{rng.uniform(5, 50):.4f}"] for i in range(20)]
        asks = [[f"{mid * (1 + 0.0001 * (i + 1)):.6f}", f"{rng.uniform(5, 50):.4f}"] for i in range(20)]
        out.append({"symbol": f"T{t}/USD", "response": {"lastUpdateId": n, "bids": bids, "asks": asks}})
    return out


def cex_figures(reg: Registry, first: list[PairPrice], moves: list[PairPrice], markets: int, rounds: int) -> None:
    import ccxt
    from mevcontrol.cex import CcxtBooks

    exchange = ccxt.binance()
    exchange.set_markets([
        {"id": f"T{t}USD", "symbol": f"T{t}/USD", "base": f"T{t}", "quote": "USD", "baseId": f"T{t}", "quoteId": "USD",
         "type": "spot", "spot": True, "active": True, "taker": 0.001,
         "precision": {"amount": 0.0001, "price": 0.000001}, "limits": {"amount": {"min": 0.0001}, "cost": {"min": 5}}}
        for t in range(1, markets + 1)
    ])  # fmt: skip
    books = CcxtBooks(exchange)
    raws = book_updates(markets, len(moves), random.Random(16))
    for round_ in range(1, rounds + 1):
        e = engine(reg, first)
        started = time.perf_counter()
        for m in moves:
            e.absorb(m)
        baseline = rate(len(moves), time.perf_counter() - started)

        e = engine(reg, first, markets)
        cex = e.config.cex
        assert cex is not None
        by_symbol = {m.symbol: m for m in cex.markets}
        specs = {m.symbol: books.market(m.symbol) for m in cex.markets}
        dex_s = parse_s = adapt_s = absorb_s = 0.0
        now_ms = int(time.time() * 1000)
        for m, raw in zip(moves, raws, strict=True):
            t0 = time.perf_counter()
            e.absorb(m)
            t1 = time.perf_counter()
            symbol = raw["symbol"]
            unified = exchange.parse_order_book(raw["response"], symbol, now_ms)
            t2 = time.perf_counter()
            book = books.book(unified, now_ms)
            t3 = time.perf_counter()
            e.absorb_book(book, by_symbol[symbol], specs[symbol])
            t4 = time.perf_counter()
            dex_s, parse_s, adapt_s, absorb_s = (
                dex_s + t1 - t0,
                parse_s + t2 - t1,
                adapt_s + t3 - t2,
                absorb_s + t4 - t3,
            )
        book_s = parse_s + adapt_s + absorb_s
        total = rate(2 * len(moves), dex_s + book_s)
        st = e.stats
        print(
            f"cex round {round_}: DEX only {baseline:,.0f} updates/s (baseline); with {markets} exchange books, one "
            f"book update after each DEX update: DEX {rate(len(moves), dex_s):,.0f}/s, books (ccxt parse + adapter "
            f"+ absorb_book) {rate(len(raws), book_s):,.0f}/s (of their time: ccxt {parse_s / book_s:.0%}, adapter "
            f"{adapt_s / book_s:.0%}, absorb_book {absorb_s / book_s:.0%}), all updates {total:,.0f}/s "
            f"(x{total / baseline:.2f} the baseline); {st.cex_evaluated:,} pool-book pairs past the marginal test, "
            f"{st.cex_sized:,} sized, {st.cex_found:,} paying; load average {os.getloadavg()[0]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=50_000)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bus", type=int, default=0, help="updates sent across the bus (0: skip)")
    parser.add_argument("--rate", type=float, default=2000.0, help="updates per second across the bus")
    parser.add_argument("--v3-share", type=float, default=0.0, help="share of the pools that are V3 pools")
    parser.add_argument("--cex-markets", type=int, default=100, help="exchange books of the first pairs (0: skip)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rng = random.Random(15)
    reg = registry(args.pairs)
    first, moves = updates(args.pairs, args.updates, rng, args.v3_share)
    raws = [encode(m) for m in moves]
    print(f"{len(CHAINS)} chains x {args.pairs} pairs = {len(first)} pools; {len(moves)} updates per round")
    for round_ in range(1, args.rounds + 1):
        started = time.perf_counter()
        for raw in raws:
            decode_event(raw)
        baseline = rate(len(raws), time.perf_counter() - started)

        e = engine(reg, first)
        found_before = e.stats.found
        started = time.perf_counter()
        for m in moves:
            e.absorb(m)
        absorbed = rate(len(moves), time.perf_counter() - started)
        passed, sized, sized_v3 = e.stats.evaluated, e.stats.sized, e.stats.sized_v3
        found = e.stats.found - found_before

        e = engine(reg, first)
        started = time.perf_counter()
        for raw in raws:
            e.absorb(decode_event(raw))  # type: ignore[arg-type]
        both = rate(len(raws), time.perf_counter() - started)
        print(
            f"round {round_}: baseline decode {baseline:,.0f}/s; absorb {absorbed:,.0f}/s "
            f"(x{absorbed / baseline:.2f} the baseline); decode + absorb {both:,.0f}/s; "
            f"{passed:,} comparisons past the marginal test, {sized:,} sized exactly ({sized_v3:,} with a V3 pool), "
            f"{found:,} paying after "
            f"costs; open now {len(e.opportunities):,}"
        )
    if args.cex_markets:
        cex_figures(reg, first, moves, min(args.cex_markets, args.pairs), args.rounds)
    if args.bus:
        _bus_figures(reg, first, moves[: args.bus], args.rate)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
