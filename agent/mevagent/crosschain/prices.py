"""What an agent tells the cross-chain engine about its pairs: `PairPrice` events from the exact pool state.

`PairPriceReporter.observe(pools, block)` is called with the pools a block changed, after the strategies
had their turn (never on the hot path's clock): for each configured pair among them it reads the pool
from the store, computes the marginal price and the exact outputs at the configured sizes (the executor's
mevagent.amm.arbitrage.hop_out, as the pools' contracts round), and publishes a `PairPrice` only when the price
moved by at least `min_move_bps` since the last one published (or the pair was never published). Publishing is
the bus publisher's O(1) append: best effort, dropped and counted when its queue is full.

A Uniswap V3 pool (mevagent.state.pools.V3Pool) is published with what an exact quote needs (the event's
`v3`: sqrtPriceX96, liquidity, tick, fee, spacing, and the initialized ticks with their liquidityNet in a
bounded range). The range is `v3_words` whole tick-bitmap words (256 tick spacings each) on each side of
the current tick's word: its edges are where the pool's own swap loop ends a step
(TickBitmap.nextInitializedTickWithinOneWord never looks past a word), so a swap simulated over the published
ticks with the range's edge as its price limit takes the very steps the pool takes; one that would go past
an edge is refused by the engine. With the default 2 (five words) that is at least 512 spacings on each
side: ±512 ticks (±5 % in price) at spacing 1 (the 0.01 % pools, stable pairs), ±5,120 (a factor 1.67) at
spacing 10, ±30,720 at spacing 60: far beyond any gap a cross-chain pair trades, while the event carries only
the ticks initialized there (MAX_V3_TICKS bounds it; a pool with more is left out and counted). A V3 pool
is published when its price moved by `min_move_bps` or its liquidity, the range's ticks or the range itself changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from mevagent.amm.arbitrage import Hop, hop_out
from mevagent.amm.v3 import MAX_TICK, MIN_TICK, Q96
from mevagent.bus.events import MAX_V3_TICKS, DepthPoint, Event, PairPrice, V3Quote, V3Tick
from mevagent.config import Strict
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

V3_FEE_DENOMINATOR = 1_000_000

Address = Annotated[str, Field(pattern=r"^0x[0-9a-f]{40}$")]
Size = Annotated[int, Field(gt=0)]


class PairSpec(Strict):
    pool: Address  # lower case
    base: Address  # the pool's token that is priced; the other one is the quote


class PairPricesConfig(Strict):
    pairs: tuple[PairSpec, ...] = Field(min_length=1)
    buy_sizes: tuple[Size, ...] = ()  # quote base units paid in: depth of buying base
    sell_sizes: tuple[Size, ...] = ()  # base base units paid in: depth of selling base
    min_move_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 1.0
    # V3 pools: initialized ticks published in this many tick-bitmap words on each side of the current one.
    v3_words: Annotated[int, Field(ge=0, le=16)] = 2


class PairPriceReporter:
    def __init__(self, agent: str, store: PoolStore, config: PairPricesConfig, publish: Callable[[Event], None]):
        self.agent = agent
        self.store = store
        self.config = config
        self.publish = publish
        self._base = {p.pool: p.base for p in config.pairs}
        self._last: dict[str, tuple[int, int]] = {}  # pool → (reserve_base, reserve_quote) last published
        # pool → (sqrtP, (L, tick_lower, tick_upper, ticks, their liquidityNet)) last published
        self._last_v3: dict[str, tuple[int, tuple[int, int, int, list[int], list[int]]]] = {}
        self.published = 0
        self.unquotable = 0  # configured pools that cannot be quoted (a Camelot stable pair, a wrong base)
        self.too_many_ticks = 0  # V3 pools left out: more than MAX_V3_TICKS initialized ticks in the range

    def observe(self, pools: Iterable[str], block: int) -> int:
        """Publish the moved prices among `pools` (addresses, lower case); how many were published."""
        sent = 0
        for address in pools:
            base = self._base.get(address)
            if base is None:
                continue
            event = self._event(address, base, block)
            if event is not None:
                self.publish(event)
                sent += 1
        self.published += sent
        return sent

    def _event(self, address: str, base: str, block: int) -> PairPrice | None:
        pool = self.store.get(address)
        if isinstance(pool, V3Pool) and base in pool.tokens:
            return self._v3_event(pool, base, block)
        if not isinstance(pool, V2Pool) or not pool.quotable or base not in pool.tokens:
            self.unquotable += 1
            return None
        quote = pool.token1 if base == pool.token0 else pool.token0
        r_base, r_quote = (pool.reserve0, pool.reserve1) if base == pool.token0 else (pool.reserve1, pool.reserve0)
        if r_base <= 0 or r_quote <= 0:
            return None
        last = self._last.get(address)
        if last is not None:
            if last == (r_base, r_quote):
                return None
            # |p/p_last - 1| in bps, over the integers: p = r_quote / r_base
            moved = abs(r_quote * last[0] - last[1] * r_base) * 10_000
            if moved < self.config.min_move_bps * last[1] * r_base:
                return None
        self._last[address] = (r_base, r_quote)
        fee_base, fee_quote = pool.fee_in(base), pool.fee_in(quote)
        d = pool.fee_denominator
        return PairPrice(
            agent=self.agent,
            chain=self.store.chain,
            block=block,
            pool=address,
            fork=pool.fork,
            base=base,
            quote=quote,
            reserve_base=r_base,
            reserve_quote=r_quote,
            fee_base_in=fee_base,
            fee_quote_in=fee_quote,
            fee_denominator=d,
            price=Decimal(r_quote) / Decimal(r_base),
            buy=_depths(pool.hop(quote), self.config.buy_sizes),
            sell=_depths(pool.hop(base), self.config.sell_sizes),
        )

    def _v3_event(self, pool: V3Pool, base: str, block: int) -> PairPrice | None:
        state = pool.state
        sqrt_p, liquidity = state.sqrt_price_x96, state.liquidity
        if sqrt_p <= 0:
            return None
        base_is_token0 = base == pool.token0
        spacing, words = state.tick_spacing, self.config.v3_words
        word = (state.tick // spacing) >> 8
        lower = max(MIN_TICK, (word - words) * 256 * spacing)
        upper = min(MAX_TICK, ((word + words + 1) * 256 - 1) * spacing)
        start, end = state.ticks.bisect_left(lower), state.ticks.bisect_right(upper)
        if end - start > MAX_V3_TICKS:
            self.too_many_ticks += 1
            return None
        # Compared as plain integers first: most blocks move the price too little to publish, and building up to
        # MAX_V3_TICKS V3Tick models only to find them equal to the last ones cost 20-120 x more per block (bench).
        # The range is part of it: its edges are published (a tick crossing a word moves them).
        keys = state.ticks.keys()[start:end]
        depth_now = (liquidity, lower, upper, keys, list(map(state.ticks.__getitem__, keys)))
        last = self._last_v3.get(pool.address)
        if last is not None and last[1] == depth_now:  # only the price may have moved: by min_move_bps at least?
            if last[0] == sqrt_p:
                return None
            # |p/p_last - 1| with p the quote per base: sqrtP² (base token0) or 1/sqrtP² (base token1)
            now, before = sqrt_p * sqrt_p, last[0] * last[0]
            moved = abs(now - before) * 10_000
            if moved < self.config.min_move_bps * (before if base_is_token0 else now):
                return None
        self._last_v3[pool.address] = (sqrt_p, depth_now)
        ticks = tuple(V3Tick(tick=t, liquidity_net=n) for t, n in zip(keys, depth_now[4], strict=True))
        quote = pool.token1 if base_is_token0 else pool.token0
        # Virtual reserves of the current range (informative): x = L / sqrtP, y = L * sqrtP.
        r0, r1 = liquidity * Q96 // sqrt_p, liquidity * sqrt_p // Q96
        r_base, r_quote = (r0, r1) if base_is_token0 else (r1, r0)
        price1 = Decimal(sqrt_p * sqrt_p) / Decimal(1 << 192)  # token1 per token0
        fee = state.fee
        v3 = V3Quote(
            sqrt_price_x96=sqrt_p, liquidity=liquidity, tick=state.tick, fee=fee, tick_spacing=spacing,
            tick_lower=lower, tick_upper=upper, ticks=ticks, base_is_token0=base_is_token0,
        )  # fmt: skip

        return PairPrice(
            agent=self.agent, chain=self.store.chain, block=block, pool=pool.address, fork=pool.fork, base=base,
            quote=quote, reserve_base=r_base, reserve_quote=r_quote, fee_base_in=fee, fee_quote_in=fee,
            fee_denominator=V3_FEE_DENOMINATOR, price=price1 if base_is_token0 else 1 / price1,
            buy=_depths(pool.hop(quote), self.config.buy_sizes),
            sell=_depths(pool.hop(base), self.config.sell_sizes),
            v3=v3,
        )  # fmt: skip


def _depths(hop: Hop, sizes: tuple[int, ...]) -> tuple[DepthPoint, ...]:
    """The exact output of each size through the pool (the store's own hop, as the executor's sizing computes it):
    0 where the swap would revert or fill only partly (a V3 pool running out of ticks)."""
    return tuple(DepthPoint(amount_in=size, amount_out=hop_out(hop, size) or 0) for size in sizes)
