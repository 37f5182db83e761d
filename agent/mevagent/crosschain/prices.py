"""What an agent tells the cross-chain engine about its pairs: `PairPrice` events from the exact pool state.

`PairPriceReporter.observe(pools, block)` is called with the pools a block changed, after the strategies
had their turn (never on the hot path's clock): for each configured pair among them it reads the pool
from the store, computes the marginal price and the exact outputs at the configured sizes (mevagent.amm's
get_amount_out, as the pair's contract rounds), and publishes a `PairPrice` only when the price moved by
at least `min_move_bps` since the last one published (or the pair was never published). Publishing is
the bus publisher's O(1) append: best effort, dropped and counted when its queue is full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from mevagent.amm.errors import Revert
from mevagent.amm.v2 import get_amount_out
from mevagent.bus.events import DepthPoint, Event, PairPrice
from mevagent.config import Strict
from mevagent.state.pools import PoolStore, V2Pool

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


class PairPriceReporter:
    def __init__(self, agent: str, store: PoolStore, config: PairPricesConfig, publish: Callable[[Event], None]):
        self.agent = agent
        self.store = store
        self.config = config
        self.publish = publish
        self._base = {p.pool: p.base for p in config.pairs}
        self._last: dict[str, tuple[int, int]] = {}  # pool → (reserve_base, reserve_quote) last published
        self.published = 0
        self.unquotable = 0  # configured pools that are not constant-product (V3 is not published yet)

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
            buy=tuple(_depth(size, r_quote, r_base, fee_quote, d) for size in self.config.buy_sizes),
            sell=tuple(_depth(size, r_base, r_quote, fee_base, d) for size in self.config.sell_sizes),
        )


def _depth(amount_in: int, reserve_in: int, reserve_out: int, fee: int, denominator: int) -> DepthPoint:
    try:
        out = get_amount_out(amount_in, reserve_in, reserve_out, fee, denominator)
    except Revert:
        out = 0
    return DepthPoint(amount_in=amount_in, amount_out=out)
