"""Raydium AMM v4 and CPMM: exact integer quotes as the programs compute them, and the pools' account sets.

AMM v4 (raydium-amm `Calculator::swap_token_amount_base_in`): fee = ceil(in * swap_fee_num / swap_fee_den),
out = floor(R_out * x / (R_in + x)) with x = in - fee; reserves are vault amounts less the PnL not yet
taken (the no-orderbook path every live pool uses).
CPMM (raydium-cp-swap `CurveCalculator::swap_base_input`): trade fee = ceil(in * rate / 1e6), the creator
fee (when enabled) ceil on the input or the output side, out = floor(x * R_out / (R_in + x)); reserves are
vault amounts less the protocol, fund and creator fees the pool still holds. With Token-2022 transfer fees
(`swap_base_input`): the input mint's fee comes off `amount_in` first (the pool receives amount - fee, the
curve runs on that), the output mint's fee off what the vault sends (the user receives out - fee, the
amount the program checks against the minimum); a mint with the Token-2022 program is read for its
TransferFeeConfig, the fee in force at the node's epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from .layouts import (
    TOKEN_2022,
    TOKEN_PROGRAM,
    AccountData,
    AmmV4State,
    CpmmConfig,
    CpmmPoolState,
    LayoutError,
    decode_amm_v4,
    decode_cpmm_config,
    decode_cpmm_pool,
    token_amount,
)
from .token2022 import NO_FEE, MintInfo, TransferFee, TransferFeeSwap, decode_mint, swap_with_transfer_fees

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

    `mints` is (token 0, token 1); `update(key, account)` takes an account's data and owner (a mint's owner
    is its token program); `quote(amount, zero_for_one)` is exact or raises QuoteError. `version` counts
    applied updates, so a cycle evaluated on stale state can be told apart.
    """

    address: Pubkey
    program: Pubkey
    mints: tuple[Pubkey, Pubkey] = field(default=(Pubkey.default(), Pubkey.default()))
    version: int = 0
    epoch: int | None = None  # the node's epoch: which of a mint's two transfer fees is in force
    # The token program the pool's own data records for each of its mints, once that data is read (None
    # where it records none: the mint account's owner says it). What fee_mints() is derived from.
    recorded_programs: tuple[Pubkey | None, Pubkey | None] | None = None
    mint_info: dict[Pubkey, MintInfo] = field(default_factory=dict)  # mints read (those fee_mints() names)
    # Mints read that cannot be swapped (owned by neither token program, not a mint): why, for QuoteError.
    mint_refused: dict[Pubkey, str] = field(default_factory=dict)

    def accounts(self) -> tuple[Pubkey, ...]:
        raise NotImplementedError

    def _set_mints(self, mints: tuple[Pubkey, Pubkey], programs: tuple[Pubkey | None, Pubkey | None]) -> None:
        """The pool's two mints as its data names them, with the token program it records for each (None:
        not recorded)."""
        self.mints, self.recorded_programs = mints, programs

    def fee_mints(self) -> tuple[Pubkey, ...]:
        """The mints whose accounts the pool reads (for their owner and Token-2022 transfer fees): every mint
        whose token program the pool's data does not record as one without extensions, i.e. recorded as
        Token-2022 or not recorded at all; none before the pool's data is read."""
        if self.recorded_programs is None:
            return ()
        return tuple(m for m, p in zip(self.mints, self.recorded_programs, strict=True) if p in (None, TOKEN_2022))

    def _read_mint(self, key: Pubkey, account: AccountData) -> None:
        """Record the mint `key` (one of fee_mints(); its program is the account's owner). A mint that cannot
        be swapped is recorded as refused, with the reason every quote through it then raises."""
        try:
            self.mint_info[key] = decode_mint(account.data, account.owner)
            self.mint_refused.pop(key, None)
        except LayoutError as exc:
            self.mint_info.pop(key, None)
            self.mint_refused[key] = str(exc)

    def _mint_terms(self, mint: Pubkey) -> tuple[object, ...] | None:
        """What a swap through the pool takes of `mint` now (None: not read yet): why it is refused, or its
        program, decimals, transfer hook and the transfer fee in force at the pool's epoch. Not its supply,
        withheld fees or authorities, nor a newer fee before its epoch (set_epoch re-sizes when it comes)."""
        if mint in self.mint_refused:
            return (self.mint_refused[mint],)
        info = self.mint_info.get(mint)
        if info is None:
            return None
        return info.program, info.decimals, info.transfer_hook, self._fee_in_force(mint)

    def mints_read(self) -> bool:
        return all(m in self.mint_info or m in self.mint_refused for m in self.fee_mints())

    def transfer_fee(self, mint: Pubkey) -> TransferFee:
        """The transfer fee in force on `mint` at the pool's epoch (none for a mint not read: an SPL Token mint)."""
        if mint in self.mint_refused:
            raise QuoteError(f"mint {mint} refused: {self.mint_refused[mint]}")
        info = self.mint_info.get(mint)
        if info is None:
            return NO_FEE
        if info.transfer_hook is not None:
            raise QuoteError(f"mint {mint} has a transfer hook: its extra accounts are not passed")
        config = info.transfer_fee
        if config is None:
            return NO_FEE
        if self.epoch is None:
            if config.older.charge != config.newer.charge:
                raise QuoteError(f"mint {mint}: the epoch is not known and its two transfer fees differ")
            return config.newer
        return config.at(self.epoch)

    def direction(self, zero_for_one: bool) -> tuple[Pubkey, Pubkey]:
        """(mint in, mint out) of a swap from token 0 to token 1 (`zero_for_one`) or back."""
        a, b = self.mints
        return (a, b) if zero_for_one else (b, a)

    def set_epoch(self, epoch: int) -> bool:
        """Move to `epoch`; True (and a new version: cycles through it are re-sized) when a fee in force
        changes with it."""
        before = [self._fee_in_force(m) for m in self.mint_info]
        self.epoch = epoch
        if before == [self._fee_in_force(m) for m in self.mint_info]:
            return False
        self.version += 1
        return True

    def _fee_in_force(self, mint: Pubkey) -> tuple[int, int] | None:
        try:
            return self.transfer_fee(mint).charge
        except QuoteError:  # not known without the epoch (or a hook)
            return None

    def update(self, key: Pubkey, account: AccountData) -> None:
        """Apply one account's data and owner (a mint's owner is its token program); the version moves when the
        pool's quotes may have changed. A mint read here (fee_mints()) moves it only when its terms do
        (_mint_terms): a mint account is written by every mint, burn and fee harvest, which change no quote."""
        if key in self.fee_mints():
            before = self._mint_terms(key)
            self._read_mint(key, account)
            if self._mint_terms(key) != before:
                self.version += 1
            return
        self._update_account(key, account)
        self.version += 1

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        """The pool's own accounts (not its mints): the pool, its config, vaults, tick or bin arrays."""
        raise NotImplementedError

    def absent(self, key: Pubkey) -> bool:
        """The account `key` does not exist; True when that is state the pool uses (an empty tick array)."""
        return False

    def ready(self) -> bool:
        raise NotImplementedError

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        raise NotImplementedError

    def transfer_quote(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        """The quote with its Token-2022 transfer fees apart (what the vaults move, what is withheld)."""
        raise NotImplementedError(f"{type(self).__name__} does not model transfer fees")

    def token_program(self, mint: Pubkey) -> Pubkey:
        """The token program of `mint` (what a swap instruction names for it): the one the pool's data records
        for it, or, for a mint read (fee_mints()), its account's owner."""
        if self.recorded_programs is not None and mint in self.mints:
            recorded = self.recorded_programs[self.mints.index(mint)]
            if recorded is not None and recorded != TOKEN_2022:
                return recorded
        info = self.mint_info.get(mint)
        if info is None:
            reason = self.mint_refused.get(mint, "not read")
            raise QuoteError(f"mint {mint}: no token program ({reason})")
        return info.program


@dataclass(slots=True)
class AmmV4Pool(Pool):
    state: AmmV4State | None = None
    vaults: dict[Pubkey, int] = field(default_factory=dict)

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, self.state.base_vault, self.state.quote_vault)

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        if key == self.address:
            self.state = decode_amm_v4(account.data)
            # AMM v4 holds SPL Token mints only (its swap names the one token program): no mint is read.
            self._set_mints((self.state.base_mint, self.state.quote_mint), (TOKEN_PROGRAM, TOKEN_PROGRAM))
        else:
            self.vaults[key] = token_amount(account.data)

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
        return (self.address, self.state.config, self.state.vault_a, self.state.vault_b, *self.fee_mints())

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        data = account.data
        if key == self.address:
            s = self.state = decode_cpmm_pool(data)
            # raydium-cp-swap records each mint's program (the mint's owner at creation): only the
            # Token-2022 ones are read, an SPL Token mint has no extensions.
            self._set_mints((s.mint_a, s.mint_b), (s.mint_program_a, s.mint_program_b))
        elif self.state is not None and key == self.state.config:
            self.config = decode_cpmm_config(data)
            self.creator_fee_rate = self.config.creator_fee_rate
        else:
            self.vaults[key] = token_amount(data)

    def ready(self) -> bool:
        s = self.state
        return (
            s is not None
            and self.config is not None
            and s.vault_a in self.vaults
            and s.vault_b in self.vaults
            and self.mints_read()
        )

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

    def swap(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        """swap_base_input with the mints' transfer fees: the curve on amount_in less the input mint's fee,
        the user receiving the curve's output less the output mint's fee."""
        s, config = self.state, self.config
        assert s is not None and config is not None
        a, b = self.reserves()
        r_in, r_out = (a, b) if zero_for_one else (b, a)
        rate = self.creator_fee_rate if s.enable_creator_fee else 0
        on_input = self.creator_fee_on_input(zero_for_one)

        def curve(arrived: int) -> tuple[int, CpmmSwap]:
            if arrived <= 0:
                raise QuoteError("the transfer fee takes the whole input")
            out = cpmm_out(arrived, r_in, r_out, config, rate, on_input)
            return out.amount_out, out

        swap = swap_with_transfer_fees(amount_in, self.direction(zero_for_one), self.transfer_fee, curve)[0]
        if swap.received <= 0:
            raise QuoteError("the transfer fee takes the whole output")
        return swap

    def transfer_quote(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        return self.swap(amount_in, zero_for_one)

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        return self.swap(amount_in, zero_for_one).received
