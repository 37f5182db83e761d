"""USD per SOL (and per lamport) right now: a fixed figure from the config, or the mid price of a pool of the
book that pairs the base mint with a USD stablecoin (`solana.sol_usd_pool`), read at the time of the call,
so the strategy's profit floor and the risk gate's USD values follow the price the chain trades SOL at.

The mid price is read through the pools' own exact quotes, one path for every pool kind: `x` lamports in
gives `y` USD units; those `y` back give `x'` lamports. The forward rate is mid·(1-f)·(1-i), the backward one
(1-f)·(1-i')/mid with the same fee f both ways and impacts i ≈ i' (the backward amount is the forward's
output, so both move the pool by the same value), hence mid = y / sqrt(x·x'): the fee cancels exactly, the
impact to first order (a constant-product pool leaves x²/(2R²) of it; 10⁻⁵ of the reserve, 5·10⁻¹¹). What
does not cancel is what is one-sided: a CPMM creator fee taken on one mint only, a Token-2022 transfer fee
on one of the two mints, a probe that crosses a tick or bin; each skews the result by half its size at most.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from solders.pubkey import Pubkey

from .book import PoolBook
from .config import SolanaChainConfig, SolUsdPool
from .raydium import Pool, QuoteError

log = logging.getLogger(__name__)

LAMPORTS_PER_SOL = 1_000_000_000


class SolPrice(Protocol):
    def sol_usd(self) -> float | None:
        """USD per SOL right now; None when it cannot be known (never trade on it then)."""
        ...

    def missing(self) -> str:
        """Why `sol_usd()` is None (for a rejection's reason)."""
        ...


@dataclass(frozen=True, slots=True)
class FixedSolPrice:
    """The config's `sol_usd`: the same figure at every call (how SOL was valued before the pool option)."""

    usd: float

    def sol_usd(self) -> float:
        return self.usd

    def missing(self) -> str:
        return ""


class PoolSolPrice:
    """SOL's mid price in a pool of the book against a USD stablecoin, recomputed only when the pool's state
    version moved (the version moves on every change a quote can see)."""

    __slots__ = ("_address", "_base", "_book", "_cached", "_source", "_usd", "_warned")

    def __init__(self, book: PoolBook, base_mint: str, source: SolUsdPool) -> None:
        self._book, self._source = book, source
        self._base, self._usd = Pubkey.from_string(base_mint), Pubkey.from_string(source.usd_mint)
        self._address = Pubkey.from_string(source.address)
        self._cached: tuple[int, int, float | None] | None = None  # (id of the pool, its version, the price)
        self._warned: tuple[Pubkey, Pubkey] | None = None

    def sol_usd(self) -> float | None:
        pool = self._book.pools.get(self._address)
        if pool is None or not pool.ready():
            return None
        cached = self._cached
        if cached is not None and cached[0] == id(pool) and cached[1] == pool.version:
            return cached[2]
        price = self._read(pool)
        self._cached = (id(pool), pool.version, price)
        return price

    def _read(self, pool: Pool) -> float | None:
        if not self._pairs_base_with_usd(pool):
            return None
        sol_first = pool.mints[0] == self._base
        x = self._source.probe_lamports
        try:
            y = pool.quote(x, sol_first)
            back = pool.quote(y, not sol_first) if y > 0 else 0
        except QuoteError:
            return None
        if back <= 0:
            return None
        # y / sqrt(x·x') USD units per lamport (see the module doc), scaled to whole tokens per SOL.
        return y / math.sqrt(x * back) * LAMPORTS_PER_SOL / 10**self._source.usd_decimals

    def _pairs_base_with_usd(self, pool: Pool) -> bool:
        """The pool's mints are known only from its state: a pool of other mints gives no price, said once."""
        if set(pool.mints) == {self._base, self._usd}:
            return True
        if self._warned != pool.mints:
            self._warned = pool.mints
            log.warning("solana: sol_usd_pool %s pairs %s/%s, not the base mint with usd_mint", self._address,
                        *pool.mints)  # fmt: skip
        return False

    def missing(self) -> str:
        pool = self._book.pools.get(self._address)
        if pool is None or not pool.ready():
            return f"no SOL price: sol_usd_pool {self._address} is not read yet"
        if set(pool.mints) != {self._base, self._usd}:
            return f"no SOL price: sol_usd_pool {self._address} does not pair the base mint with usd_mint"
        return f"no SOL price: sol_usd_pool {self._address} does not quote both ways"


def sol_price(config: SolanaChainConfig, book: PoolBook) -> SolPrice:
    """The chain's SOL price as its config says: the fixed `sol_usd` or the `sol_usd_pool` of `book`."""
    if config.sol_usd_pool is not None:
        return PoolSolPrice(book, config.base_mint, config.sol_usd_pool)
    assert config.sol_usd is not None  # the config validated exactly one
    return FixedSolPrice(config.sol_usd)
