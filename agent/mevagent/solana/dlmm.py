"""Meteora DLMM: account layouts and exact integer exact-in swap quotes, as Meteora's SDK computes them.

Layouts (program LBUZKhRx…, at the published offsets): `LbPair` (904 bytes), `BinArray` (10,136: 70 bins
of 144 bytes).

Quote (`@meteora-ag/dlmm` `DLMM.swapQuote` / `swapExactInQuoteAtBin`): bins are constant-sum at their
stored Q64.64 `price`; the walk starts at the active bin and moves one bin at a time in the swap's
direction through the bin arrays the pair's bitmap marks, within the arrays read; before the walk the
volatility reference decays by the time since the last update (`filter_period`, `decay_period`,
`reduction_factor`), and at every bin with liquidity the volatility accumulator is
`min(reference + |index_reference - bin| * 10_000, max)`; the fee rate per 1e9 is
`base_factor * bin_step * 10 * 10^base_fee_power_factor` plus `ceil((accumulator * bin_step)^2 *
variable_fee_control / 1e11)`, capped at 1e8, taken on the input (`ceil(in * fee / 1e9)`, or
`ceil(in * 1e9 / (1e9 - fee)) - in` on a bin it empties) or on the output by the pair's collect-fee mode;
amounts in are rounded up and out down; the protocol's share is `floor(fee * protocol_share / 1e4)`.
`swap2` takes the marked arrays in the swap's direction (up to three) as its remaining accounts.
Not modelled (refused): limit orders resting in a bin, arrays beyond the pair's own bitmap (the extension
account). Token-2022 transfer fees (`swap2`): both mints are read; the input mint's fee (at the node's
epoch) comes off the amount, the walk runs on the rest (which must fill), the output mint's fee comes off
what the reserve sends; the minimum is checked against what arrives.
tests/agent/solana/test_dlmm_oracle.py checks it against the SDK pinned in package-lock.json.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from .layouts import AccountData, LayoutError
from .raydium import Pool, QuoteError
from .token2022 import TransferFeeSwap, swap_with_transfer_fees

METEORA_DLMM = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
LB_PAIR_SIZE = 904
BIN_ARRAY_SIZE = 10136
BINS_PER_ARRAY = 70
BIN_SIZE = 144
BITMAP_HALF = 512  # the pair's own bitmap covers array indexes -512..511
ARRAYS_AHEAD = 3
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000
BASIS_POINT_MAX = 10_000
LB_PAIR_DISCRIMINATOR = bytes([33, 11, 49, 98, 181, 101, 177, 13])
BIN_ARRAY_DISCRIMINATOR = bytes([92, 142, 92, 220, 5, 148, 70, 181])


def _key(data: bytes, offset: int) -> Pubkey:
    return Pubkey.from_bytes(data[offset : offset + 32])


@dataclass(frozen=True, slots=True)
class LbPairState:
    base_factor: int
    filter_period: int
    decay_period: int
    reduction_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int
    protocol_share: int
    base_fee_power_factor: int
    function_type: int
    collect_fee_mode: int
    volatility_accumulator: int
    volatility_reference: int
    index_reference: int
    last_update_timestamp: int
    active_id: int
    bin_step: int
    status: int
    token_x_mint: Pubkey
    token_y_mint: Pubkey
    reserve_x: Pubkey
    reserve_y: Pubkey
    reward_mints: tuple[Pubkey, Pubkey]
    oracle: Pubkey
    bin_array_bitmap: int  # 1,024 bits, bit i = array index i - 512

    @property
    def limit_orders(self) -> bool:
        """isSupportLimitOrder: function type 2, or 0 without rewards."""
        if self.function_type == 2:
            return True
        if self.function_type == 0:
            return all(m == Pubkey.default() for m in self.reward_mints)
        return False


def decode_lb_pair(data: bytes) -> LbPairState:
    if len(data) != LB_PAIR_SIZE or data[:8] != LB_PAIR_DISCRIMINATOR:
        raise LayoutError(f"not a DLMM LbPair ({len(data)} bytes, {LB_PAIR_SIZE} expected)")
    base, filt, decay, reduction, vfc, max_va = struct.unpack_from("<HHHHII", data, 8)
    share, power, function, mode = struct.unpack_from("<HBBB", data, 32)
    va, vr, ir = struct.unpack_from("<IIi", data, 40)
    return LbPairState(
        base_factor=base,
        filter_period=filt,
        decay_period=decay,
        reduction_factor=reduction,
        variable_fee_control=vfc,
        max_volatility_accumulator=max_va,
        protocol_share=share,
        base_fee_power_factor=power,
        function_type=function,
        collect_fee_mode=mode,
        volatility_accumulator=va,
        volatility_reference=vr,
        index_reference=ir,
        last_update_timestamp=struct.unpack_from("<q", data, 56)[0],
        active_id=struct.unpack_from("<i", data, 76)[0],
        bin_step=struct.unpack_from("<H", data, 80)[0],
        status=data[82],
        token_x_mint=_key(data, 88),
        token_y_mint=_key(data, 120),
        reserve_x=_key(data, 152),
        reserve_y=_key(data, 184),
        reward_mints=(_key(data, 264), _key(data, 264 + 144)),
        oracle=_key(data, 552),
        bin_array_bitmap=int.from_bytes(data[584:712], "little"),
    )


@dataclass(frozen=True, slots=True)
class Bin:
    amount_x: int
    amount_y: int
    price: int  # Q64.64, token Y per token X
    orders: bool  # limit orders rest in this bin (open or partly processed)


@dataclass(frozen=True, slots=True)
class BinArrayState:
    index: int
    lb_pair: Pubkey
    bins: tuple[Bin, ...]


def decode_bin_array(data: bytes) -> BinArrayState:
    if len(data) != BIN_ARRAY_SIZE or data[:8] != BIN_ARRAY_DISCRIMINATOR:
        raise LayoutError(f"not a DLMM BinArray ({len(data)} bytes, {BIN_ARRAY_SIZE} expected)")
    bins = []
    for o in range(56, 56 + BINS_PER_ARRAY * BIN_SIZE, BIN_SIZE):
        x, y = struct.unpack_from("<QQ", data, o)
        price = int.from_bytes(data[o + 16 : o + 32], "little")
        open_orders, _, processed = struct.unpack_from("<QQQ", data, o + 112)
        bins.append(Bin(x, y, price, bool(open_orders or processed)))
    return BinArrayState(struct.unpack_from("<q", data, 8)[0], _key(data, 24), tuple(bins))


def bin_array_address(lb_pair: Pubkey, index: int, program: Pubkey = METEORA_DLMM) -> Pubkey:
    return Pubkey.find_program_address([b"bin_array", bytes(lb_pair), struct.pack("<q", index)], program)[0]


def array_index(bin_id: int) -> int:
    return bin_id // BINS_PER_ARRAY


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def total_fee_rate(s: LbPairState, volatility_accumulator: int) -> int:
    base = s.base_factor * s.bin_step * 10 * 10**s.base_fee_power_factor
    variable = 0
    if s.variable_fee_control > 0:
        variable = _ceil_div((volatility_accumulator * s.bin_step) ** 2 * s.variable_fee_control, 10**11)
    return min(base + variable, MAX_FEE_RATE)


@dataclass(frozen=True, slots=True)
class BinSwap:
    amount_in: int
    amount_out: int
    fee: int  # the trading fee less the protocol's share
    protocol_fee: int


def swap_at_bin(b: Bin, fee_rate: int, amount: int, swap_for_y: bool, fee_on_input: bool, share: int) -> BinSwap:
    """swapExactInQuoteAtBin without limit orders."""
    trading_fee, excluded_in = 0, amount
    if fee_on_input:
        trading_fee = _ceil_div(amount * fee_rate, FEE_PRECISION)
        excluded_in = amount - trading_fee
    max_out = b.amount_y if swap_for_y else b.amount_x
    max_in = _ceil_div(max_out << 64, b.price) if swap_for_y else _ceil_div(max_out * b.price, 1 << 64)
    if excluded_in >= max_in:
        filled_in, left, out = max_in, excluded_in - max_in, max_out
    else:
        out = (excluded_in * b.price) >> 64 if swap_for_y else (excluded_in << 64) // b.price
        filled_in, left = excluded_in, 0
    included_in = amount
    if left:
        excluded_in -= left
        if fee_on_input:
            included_in = _ceil_div(excluded_in * FEE_PRECISION, FEE_PRECISION - fee_rate)
            trading_fee = included_in - excluded_in
        else:
            included_in = excluded_in
    if not fee_on_input:
        trading_fee = _ceil_div(out * fee_rate, FEE_PRECISION)
        out -= trading_fee
    if filled_in == 0:
        return BinSwap(included_in, out, 0, 0)
    protocol = trading_fee * share // BASIS_POINT_MAX
    return BinSwap(included_in, out, trading_fee - protocol, protocol)


@dataclass(frozen=True, slots=True)
class DlmmSwap:
    amount_in: int
    amount_out: int
    fee: int
    protocol_fee: int
    bins: int  # bins that filled part of the swap


def _next_array(bitmap: int, start: int, swap_for_y: bool) -> int | None:
    """The nearest array index with its bit set at or past `start` in the swap's direction."""
    if not -BITMAP_HALF <= start < BITMAP_HALF:
        return None  # past the pair's own bitmap: the extension account is not read
    offset = start + BITMAP_HALF
    if swap_for_y:
        below = bitmap & ((1 << (offset + 1)) - 1)
        return below.bit_length() - 1 - BITMAP_HALF if below else None
    above = bitmap >> offset
    return (above & -above).bit_length() - 1 + offset - BITMAP_HALF if above else None


def swap_exact_in(
    s: LbPairState, arrays: dict[int, BinArrayState], amount: int, swap_for_y: bool, now: int
) -> DlmmSwap:
    if amount <= 0 or amount >= 2**64:
        raise QuoteError("amount out of range")
    if s.collect_fee_mode not in (0, 1):
        raise QuoteError("unknown collect fee mode")
    fee_on_input = True if s.collect_fee_mode == 0 else not swap_for_y
    limit_orders = s.limit_orders
    reference, index_reference = s.volatility_reference, s.index_reference
    active = s.active_id
    if now - s.last_update_timestamp >= s.filter_period:
        index_reference = active
        reference = (
            s.volatility_accumulator * s.reduction_factor // BASIS_POINT_MAX
            if now - s.last_update_timestamp < s.decay_period
            else 0
        )
    left, out, fees, protocol, filled = amount, 0, 0, 0, 0
    while left:
        index = _next_array(s.bin_array_bitmap, array_index(active), swap_for_y)
        array = arrays.get(index) if index is not None else None
        if array is None:
            raise QuoteError("the bin arrays cannot fill this swap")
        if array.index * BINS_PER_ARRAY <= active < (array.index + 1) * BINS_PER_ARRAY:
            b = array.bins[active - array.index * BINS_PER_ARRAY]
            if limit_orders and b.orders:
                raise QuoteError("limit orders in a bin: not modelled")
            if (b.amount_y if swap_for_y else b.amount_x) > 0:
                accumulator = min(
                    reference + abs(index_reference - active) * BASIS_POINT_MAX, s.max_volatility_accumulator
                )
                step = swap_at_bin(b, total_fee_rate(s, accumulator), left, swap_for_y, fee_on_input, s.protocol_share)
                if step.amount_in:
                    left -= step.amount_in
                    out += step.amount_out
                    fees += step.fee
                    protocol += step.protocol_fee
                    filled += 1
        if left:
            active += -1 if swap_for_y else 1
    if not filled:
        raise QuoteError("insufficient liquidity")
    return DlmmSwap(amount, out, fees, protocol, filled)


def _now() -> int:
    return int(time.time())


@dataclass(slots=True)
class DlmmPool(Pool):
    """A DLMM pair and the bin arrays its bitmap marks nearest the active bin (ARRAYS_AHEAD either way).
    `clock` gives the unix time the volatility reference decays to (the cluster's, on a live host)."""

    state: LbPairState | None = None
    bin_arrays: dict[int, BinArrayState] = field(default_factory=dict)
    window: dict[Pubkey, int] = field(default_factory=dict)
    clock: Callable[[], int] = _now

    def swap_arrays(self, swap_for_y: bool) -> list[int]:
        s = self.state
        assert s is not None
        here = array_index(s.active_id)
        marked = [i - BITMAP_HALF for i in range(1024) if s.bin_array_bitmap >> i & 1]
        if swap_for_y:
            return sorted((i for i in marked if i <= here), reverse=True)[:ARRAYS_AHEAD]
        return sorted(i for i in marked if i >= here)[:ARRAYS_AHEAD]

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, *self.window, *self.fee_mints())

    def swap_array_addresses(self, swap_for_y: bool) -> list[Pubkey]:
        return [bin_array_address(self.address, i, self.program) for i in self.swap_arrays(swap_for_y)]

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        data = account.data
        if key == self.address:
            self.state = decode_lb_pair(data)
            self._set_mints((self.state.token_x_mint, self.state.token_y_mint), (None, None))  # none recorded
            indexes = sorted({*self.swap_arrays(True), *self.swap_arrays(False)})
            self.window = {bin_array_address(self.address, i, self.program): i for i in indexes}
        else:
            array = decode_bin_array(data)
            if array.lb_pair != self.address:
                raise LayoutError("bin array of another pair")
            self.bin_arrays[array.index] = array

    def ready(self) -> bool:
        return self.state is not None and all(i in self.bin_arrays for i in self.window.values()) and self.mints_read()

    def swap(self, amount_in: int, zero_for_one: bool) -> DlmmSwap:
        """The pair's side of an exact-in swap of `amount_in` sent (after the input's transfer fee)."""
        return self.transfer_swap(amount_in, zero_for_one)[1]

    def transfer_swap(self, amount_in: int, zero_for_one: bool) -> tuple[TransferFeeSwap, DlmmSwap]:
        s = self.state
        if s is None:
            raise QuoteError("pair not read yet")
        arrays = {i: self.bin_arrays[i] for i in self.window.values() if i in self.bin_arrays}
        now = self.clock()

        def pool_side(arrived: int) -> tuple[int, DlmmSwap]:
            result = swap_exact_in(s, arrays, arrived, zero_for_one, now)
            return result.amount_out, result

        return swap_with_transfer_fees(amount_in, self.direction(zero_for_one), self.transfer_fee, pool_side)

    def transfer_quote(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        return self.transfer_swap(amount_in, zero_for_one)[0]

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        return self.transfer_swap(amount_in, zero_for_one)[0].received
