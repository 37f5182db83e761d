"""Raydium AMM v4 and CPMM: exact integer quotes as the programs compute them, and the pools' account sets.

AMM v4 (raydium-amm `Calculator::swap_token_amount_base_in`): fee = ceil(in * swap_fee_num / swap_fee_den),
out = floor(R_out * x / (R_in + x)) with x = in - fee; reserves are vault amounts less the PnL not yet
taken (the no-orderbook path every live pool uses).
CPMM (raydium-cp-swap `CurveCalculator::swap_base_input`): trade fee = ceil(in * rate / 1e6), the creator
fee (when enabled) ceil on the input or the output side, out = floor(x * R_out / (R_in + x)); reserves are
vault amounts less the protocol, fund and creator fees the pool still holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from .layouts import (
    AmmV4State,
    CpmmConfig,
    CpmmPoolState,
    decode_amm_v4,
    decode_cpmm_config,
    decode_cpmm_pool,
    token_amount,
)

FEE_RATE_DENOMINATOR = 1_000_000


class QuoteError(ValueError):
    """The program would refuse this swap (empty pool, output not below the reserve)."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def amm_v4_out(amount_in: int, reserve_in: int, reserve_out: int, fee_num: int, fee_den: int) -> tuple[int, int]:
    """(amount out, fee) of a base-in swap; raises QuoteError where the program errors."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        raise QuoteError("empty pool or zero input")
    fee = _ceil_div(amount_in * fee_num, fee_den)
    x = amount_in - fee
    if x <= 0:
        raise QuoteError("the fee takes the whole input")
    out = reserve_out * x // (reserve_in + x)
    if out >= reserve_out:
        raise QuoteError("output would drain the pool")
    return out, fee


@dataclass(frozen=True, slots=True)
class CpmmSwap:
    amount_out: int
    trade_fee: int
    protocol_fee: int
    fund_fee: int
    creator_fee: int


def cpmm_out(
    amount_in: int,
    reserve_in: int,
    reserve_out: int,
    config: CpmmConfig,
    creator_fee_rate: int = 0,
    creator_fee_on_input: bool = True,
) -> CpmmSwap:
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        raise QuoteError("empty pool or zero input")
    trade_fee = _ceil_div(amount_in * config.trade_fee_rate, FEE_RATE_DENOMINATOR)
    creator_fee = 0
    x = amount_in - trade_fee
    if creator_fee_on_input:
        creator_fee = _ceil_div(amount_in * creator_fee_rate, FEE_RATE_DENOMINATOR)
        x -= creator_fee
    if x <= 0:
        raise QuoteError("the fees take the whole input")  # the program's checked_sub fails
    protocol_fee = trade_fee * config.protocol_fee_rate // FEE_RATE_DENOMINATOR
    fund_fee = trade_fee * config.fund_fee_rate // FEE_RATE_DENOMINATOR
    out = x * reserve_out // (reserve_in + x)
    if not creator_fee_on_input:
        creator_fee = _ceil_div(out * creator_fee_rate, FEE_RATE_DENOMINATOR)
        out -= creator_fee
    if out >= reserve_out:
        raise QuoteError("output would drain the pool")
    return CpmmSwap(out, trade_fee, protocol_fee, fund_fee, creator_fee)


@dataclass(slots=True)
class Pool:
    """A pool as the strategy sees it (Jupiter's `Amm` shape): the accounts it needs, update, quote.

    `mints` is (token 0, token 1); `quote(amount, zero_for_one)` is exact or raises QuoteError. `version`
    counts applied updates, so a cycle evaluated on stale state can be told apart.
    """

    address: Pubkey
    program: Pubkey
    mints: tuple[Pubkey, Pubkey] = field(default=(Pubkey.default(), Pubkey.default()))
    version: int = 0

    def accounts(self) -> tuple[Pubkey, ...]:
        raise NotImplementedError

    def update(self, key: Pubkey, data: bytes) -> None:
        raise NotImplementedError

    def absent(self, key: Pubkey) -> bool:
        """The account `key` does not exist; True when that is state the pool uses (an empty tick array)."""
        return False

    def ready(self) -> bool:
        raise NotImplementedError

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        raise NotImplementedError


@dataclass(slots=True)
class AmmV4Pool(Pool):
    state: AmmV4State | None = None
    vaults: dict[Pubkey, int] = field(default_factory=dict)

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, self.state.base_vault, self.state.quote_vault)

    def update(self, key: Pubkey, data: bytes) -> None:
        if key == self.address:
            self.state = decode_amm_v4(data)
            self.mints = (self.state.base_mint, self.state.quote_mint)
        else:
            self.vaults[key] = token_amount(data)
        self.version += 1

    def ready(self) -> bool:
        s = self.state
        return s is not None and s.base_vault in self.vaults and s.quote_vault in self.vaults

    def reserves(self) -> tuple[int, int]:
        s = self.state
        assert s is not None
        base = self.vaults[s.base_vault] - s.base_need_take_pnl
        quote = self.vaults[s.quote_vault] - s.quote_need_take_pnl
        return base, quote

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        s = self.state
        assert s is not None
        base, quote = self.reserves()
        r_in, r_out = (base, quote) if zero_for_one else (quote, base)
        return amm_v4_out(amount_in, r_in, r_out, s.swap_fee_numerator, s.swap_fee_denominator)[0]


@dataclass(slots=True)
class CpmmPool(Pool):
    state: CpmmPoolState | None = None
    config: CpmmConfig | None = None
    creator_fee_rate: int = 0
    vaults: dict[Pubkey, int] = field(default_factory=dict)

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, self.state.config, self.state.vault_a, self.state.vault_b)

    def update(self, key: Pubkey, data: bytes) -> None:
        if key == self.address:
            self.state = decode_cpmm_pool(data)
            self.mints = (self.state.mint_a, self.state.mint_b)
        elif self.state is not None and key == self.state.config:
            self.config = decode_cpmm_config(data)
            self.creator_fee_rate = self.config.creator_fee_rate
        else:
            self.vaults[key] = token_amount(data)
        self.version += 1

    def ready(self) -> bool:
        s = self.state
        return s is not None and self.config is not None and s.vault_a in self.vaults and s.vault_b in self.vaults

    def reserves(self) -> tuple[int, int]:
        s = self.state
        assert s is not None
        a = self.vaults[s.vault_a] - s.protocol_fees_a - s.fund_fees_a - s.creator_fees_a
        b = self.vaults[s.vault_b] - s.protocol_fees_b - s.fund_fees_b - s.creator_fees_b
        return a, b

    def creator_fee_on_input(self, zero_for_one: bool) -> bool:
        s = self.state
        assert s is not None
        # raydium-cp-swap CreatorFeeOn: 0 both tokens (taken from the input), 1 only token 0, 2 only token 1.
        return s.creator_fee_on == 0 or (s.creator_fee_on == 1) == zero_for_one

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        s, config = self.state, self.config
        assert s is not None and config is not None
        a, b = self.reserves()
        r_in, r_out = (a, b) if zero_for_one else (b, a)
        rate = self.creator_fee_rate if s.enable_creator_fee else 0
        return cpmm_out(amount_in, r_in, r_out, config, rate, self.creator_fee_on_input(zero_for_one)).amount_out
