"""USD values of token amounts and of gas, for the USD fields of an Opportunity.

Amounts stay exact integers everywhere else; USD exists only for risk limits, profit thresholds and
metrics, so floats are fine here. A token is priced either by a configured reference price (USD
per whole token, with its decimals) or by a configured reference pool that pairs it with a token
that has a reference price: its value then follows that pool's current state in the pool store,
so a volatile token is valued at the price the chain trades it at in the block being searched.
"""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mevagent.state.pools import PoolStore, V2Pool

_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_Q192 = float(1 << 192)


def _address(value: str) -> str:
    lowered = value.lower()
    if not _ADDRESS.fullmatch(lowered):
        raise ValueError(f"not a 0x-prefixed 20-byte hex address: {value!r}")
    return lowered


Address = Annotated[str, AfterValidator(_address)]


class TokenPrice(BaseModel):
    """How one token is valued: `usd` (per whole token, with `decimals`) or `reference_pool`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    decimals: int | None = Field(default=None, ge=0, le=77)
    # A pool of the pool store pairing this token with a token priced by `usd`.
    reference_pool: Address | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.usd is None) == (self.reference_pool is None):
            raise ValueError("give exactly one of usd (with decimals) or reference_pool")
        if self.usd is not None and self.decimals is None:
            raise ValueError("decimals is required with usd: the price is per whole token")
        return self


class PricingConfig(BaseModel):
    """Prices of one chain: gas is paid in `native_token` (WETH, WBNB, WAVAX...), which must be priced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    native_token: Address
    tokens: dict[Address, TokenPrice]

    @model_validator(mode="after")
    def _native_is_priced(self) -> Self:
        if self.native_token not in self.tokens:
            raise ValueError(f"native_token {self.native_token} has no entry in tokens")
        return self


class Pricer:
    """USD per smallest unit of a token, read against the pool store at the time of the call."""

    __slots__ = ("_config", "_store")

    def __init__(self, config: PricingConfig, store: PoolStore) -> None:
        self._config = config
        self._store = store

    @property
    def native_token(self) -> str:
        return self._config.native_token

    def can_price(self, token: str) -> bool:
        return token in self._config.tokens

    def usd_per_unit(self, token: str) -> float | None:
        """USD value of one smallest unit of `token`; None when it cannot be priced right now."""
        entry = self._config.tokens.get(token)
        if entry is None:
            return None
        if entry.usd is not None:
            return entry.usd / 10 ** (entry.decimals or 0)
        return self._from_pool(token, entry.reference_pool or "")

    def _from_pool(self, token: str, address: str) -> float | None:
        pool = self._store.get(address)
        if pool is None or token not in pool.tokens:
            return None
        other = pool.token1 if token == pool.token0 else pool.token0
        other_entry = self._config.tokens.get(other)
        # One level only: a chain of reference pools would compound every pool's skew.
        if other_entry is None or other_entry.usd is None:
            return None
        other_usd = other_entry.usd / 10 ** (other_entry.decimals or 0)
        if isinstance(pool, V2Pool):
            if pool.stable:  # a Camelot stable pair: its reserve ratio is not its price (x³y + y³x curve)
                return None
            held, paired = (pool.reserve0, pool.reserve1) if token == pool.token0 else (pool.reserve1, pool.reserve0)
            if held <= 0 or paired <= 0:
                return None
            return paired / held * other_usd
        # token1 per token0 is sqrtPriceX96² / 2^192.
        one_per_zero = pool.state.sqrt_price_x96 * pool.state.sqrt_price_x96 / _Q192
        if one_per_zero <= 0.0:
            return None
        return (one_per_zero if token == pool.token0 else 1.0 / one_per_zero) * other_usd

    def amount_usd(self, token: str, amount: int) -> float | None:
        unit = self.usd_per_unit(token)
        return None if unit is None else amount * unit

    def wei_usd(self, wei: int) -> float | None:
        """USD value of `wei` of the chain's native currency (gas, builder payments)."""
        return self.amount_usd(self._config.native_token, wei)

    def to_wei(self, token: str, amount: int) -> int | None:
        """`amount` of `token` expressed in wei of the native currency (exact when it is the native token)."""
        if token == self._config.native_token:
            return amount
        unit, native_unit = self.usd_per_unit(token), self.usd_per_unit(self._config.native_token)
        if unit is None or native_unit is None:
            return None
        return int(amount * unit / native_unit)
