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

The stablecoin is taken at 1 USD. With `sol_usd_pool.peg` that holds only while its mid price in a second
USD token (read the same way from a second pool) stays within `tolerance_bps` of 1: beyond, there is no SOL
price, so a depeg stops the strategy and the executor instead of inflating (or deflating) SOL's value.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from solders.pubkey import Pubkey

from .book import PoolBook
from .config import SolanaChainConfig, SolUsdPool, UsdPeg
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


def mid_price(pool: Pool, mint_in: Pubkey, probe: int) -> float | None:
    """The pool's mid price in units of its other mint per unit of `mint_in` (see the module doc): `probe` in
    gives y, y back gives x', mid = y / sqrt(probe·x'). None when either way does not quote."""
    forward = pool.mints[0] == mint_in
    try:
        y = pool.quote(probe, forward)
        back = pool.quote(y, not forward) if y > 0 else 0
    except QuoteError:
        return None
    return y / math.sqrt(probe * back) if back > 0 else None


class _Reading:
    """One pool's mid price of `mint_in` in `mint_out`, recomputed only when the pool's state version moved
    (the version moves on every change a quote can see); None while the pool is not read, does not pair the
    two mints (said once) or does not quote."""

    __slots__ = ("_address", "_book", "_cached", "_in", "_name", "_names", "_out", "_probe", "_warned")

    def __init__(
        self, book: PoolBook, name: str, address: str, mints: tuple[str, str], names: tuple[str, str], probe: int
    ) -> None:
        self._book, self._name, self._names, self._probe = book, name, names, probe
        mint_in, mint_out = mints
        self._address = Pubkey.from_string(address)
        self._in, self._out = Pubkey.from_string(mint_in), Pubkey.from_string(mint_out)
        self._cached: tuple[int, int, float | None] | None = None  # (id of the pool, its version, the price)
        self._warned: tuple[Pubkey, Pubkey] | None = None

    def value(self) -> float | None:
        pool = self._book.pools.get(self._address)
        if pool is None or not pool.ready():
            return None
        cached = self._cached
        if cached is not None and cached[0] == id(pool) and cached[1] == pool.version:
            return cached[2]
        price = mid_price(pool, self._in, self._probe) if self._pairs(pool) else None
        self._cached = (id(pool), pool.version, price)
        return price

    def _pairs(self, pool: Pool) -> bool:
        """The pool's mints are known only from its state: a pool of other mints gives no price, said once."""
        if set(pool.mints) == {self._in, self._out}:
            return True
        if self._warned != pool.mints:
            self._warned = pool.mints
            log.warning("solana: %s %s pairs %s/%s, not %s with %s", self._name, self._address, *pool.mints,
                        *self._names)  # fmt: skip
        return False

    def missing(self) -> str:
        pool = self._book.pools.get(self._address)
        if pool is None or not pool.ready():
            return f"{self._name} {self._address} is not read yet"
        if set(pool.mints) != {self._in, self._out}:
            return f"{self._name} {self._address} does not pair {self._names[0]} with {self._names[1]}"
        return f"{self._name} {self._address} does not quote both ways"


class PoolSolPrice:
    """SOL's mid price in a pool of the book against a USD stablecoin, the stablecoin checked against its peg
    when the config gives one."""

    __slots__ = ("_depeg_said", "_peg", "_peg_reading", "_sol", "_usd_decimals")

    def __init__(self, book: PoolBook, base_mint: str, source: SolUsdPool) -> None:
        mints, names = (base_mint, source.usd_mint), ("the base mint", "usd_mint")
        self._sol = _Reading(book, "sol_usd_pool", source.address, mints, names, source.probe_lamports)
        self._usd_decimals = source.usd_decimals
        self._peg: UsdPeg | None = source.peg
        self._peg_reading: _Reading | None = None
        self._depeg_said = False  # the depeg logged (once, until the stablecoin is back within its tolerance)
        if source.peg is not None:
            peg = source.peg
            mints, names = (source.usd_mint, peg.reference_mint), ("usd_mint", "reference_mint")
            self._peg_reading = _Reading(book, "sol_usd_pool.peg.pool", peg.pool, mints, names, peg.probe_units)

    def sol_usd(self) -> float | None:
        depegged = self._depegged()
        if depegged and not self._depeg_said:
            log.warning("solana: %s", self.missing())
        self._depeg_said = bool(depegged)
        if depegged is not False:
            return None
        mid = self._sol.value()  # USD units per lamport: scaled to whole tokens per SOL
        return None if mid is None else mid * LAMPORTS_PER_SOL / 10**self._usd_decimals

    def stable_usd(self) -> float | None:
        """The stablecoin's reading in the reference USD token, whole tokens (None: no peg, or no reading)."""
        if self._peg is None or self._peg_reading is None:
            return None
        mid = self._peg_reading.value()
        return None if mid is None else mid * 10 ** (self._usd_decimals - self._peg.reference_decimals)

    def _depegged(self) -> bool | None:
        """False when there is no peg to check or the stablecoin is within its tolerance; True beyond; None
        when the reference cannot be read (no price either: the check cannot be made)."""
        if self._peg is None:
            return False
        reading = self.stable_usd()
        if reading is None:
            return None
        return abs(reading - 1.0) * 10_000 > self._peg.tolerance_bps

    def missing(self) -> str:
        depegged = self._depegged()
        if depegged is None:
            assert self._peg_reading is not None
            return f"no SOL price: {self._peg_reading.missing()}"
        if depegged:
            assert self._peg is not None
            return (
                f"no SOL price: usd_mint reads {self.stable_usd():.6f} reference_mint {self._peg.reference_mint}, "
                f"beyond sol_usd_pool.peg.tolerance_bps {self._peg.tolerance_bps} of 1"
            )
        return f"no SOL price: {self._sol.missing()}"


def sol_price(config: SolanaChainConfig, book: PoolBook) -> SolPrice:
    """The chain's SOL price as its config says: the fixed `sol_usd` or the `sol_usd_pool` of `book`."""
    if config.sol_usd_pool is not None:
        return PoolSolPrice(book, config.base_mint, config.sol_usd_pool)
    assert config.sol_usd is not None  # the config validated exactly one
    return FixedSolPrice(config.sol_usd)
