"""Raydium CLMM: account layouts and exact integer exact-in swap quotes, as the Raydium SDK computes them.

Layouts (program CAMMCzo5…, at the published offsets): `PoolState` (1,544 bytes), `TickArrayState`
(10,240: 60 ticks of 168 bytes), `AmmConfig` (117).

Quote (raydium-sdk-v2 `swapInternal`, the port of the program's swap loop): Q64.64 sqrt prices from
Raydium's own tick math; per step the fee on the input (`floor(a * (1e6 - f) / 1e6)` usable, the fee of a
step that reaches its target `ceil(in * f / (1e6 - f))`, else what remains less what the step took) or,
by the pool's `fee_on` mode, on the output (`ceil(out * f / 1e6)`); input rounded up, output down;
initialized ticks crossed with their signed `liquidity_net`; the tick arrays walked are the initialized
ones (the pool's tick-array bitmap) in the swap's direction from the current tick, up to three, in order;
a swap they cannot fill is refused (`swap_v2` takes those arrays, in order, as its remaining accounts).
Pools with a dynamic fee and ticks carrying limit orders are not
modelled: such a pool refuses to quote, as do arrays beyond the pool's own bitmap (the extension account).
Token-2022 transfer fees (`swap_v2`, `exact_internal_v2`): both mints are read; the input mint's fee (at the
node's epoch) comes off the amount, the swap runs on the rest and must fill it (no price limit: the
program requires the whole amount sent), the output mint's fee comes off what the vault sends; the minimum
is checked against what arrives.
tests/agent/solana/test_clmm_oracle.py checks it against the SDK pinned in package-lock.json.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from .layouts import AccountData, LayoutError
from .raydium import Pool, QuoteError
from .token2022 import TransferFeeSwap, swap_with_transfer_fees

RAYDIUM_CLMM = Pubkey.from_string("CAMMCzo5YL8w4VFF8KVHrK22GGUsp5VTaW7grrKgrWqK")
POOL_SIZE = 1544
CONFIG_SIZE = 117
TICK_ARRAY_LEN = 10240
TICKS_PER_ARRAY = 60
TICK_LEN = 168
BITMAP_HALF = 512  # the pool's own bitmap covers array indexes -512..511
ARRAYS_AHEAD = 3  # initialized tick arrays tracked (and walked) on either side

MIN_TICK = -443_636
MAX_TICK = 443_636
MIN_SQRT_PRICE = 4_295_048_016
MAX_SQRT_PRICE = 79_226_673_521_066_979_257_578_248_091
FEE_RATE_DENOMINATOR = 1_000_000
U64_MAX = 2**64 - 1
Q64 = 1 << 64

_FACTORS = (
    0xFFFCB933BD6FB800,
    0xFFF97272373D4000,
    0xFFF2E50F5F657000,
    0xFFE5CACA7E10F000,
    0xFFCB9843D60F7000,
    0xFF973B41FA98E800,
    0xFF2EA16466C9B000,
    0xFE5DEE046A9A3800,
    0xFCBE86C7900BB000,
    0xF987A7253AC65800,
    0xF3392B0822BB6000,
    0xE7159475A2CAF000,
    0xD097F3BDFD2F2000,
    0xA9F746462D9F8000,
    0x70D869A156F31C00,
    0x31BE135F97ED3200,
    0x9AA508B5B85A500,
    0x5D6AF8DEDC582C,
    0x2216E584F5FA,
)


def sqrt_price_at_tick(tick: int) -> int:
    if not MIN_TICK <= tick <= MAX_TICK:
        raise QuoteError(f"tick {tick} out of range")
    a, ratio = abs(tick), Q64
    for bit, factor in enumerate(_FACTORS):
        if a & (1 << bit):
            ratio = ratio * factor >> 64
    return (Q64 * Q64) // ratio if tick > 0 else ratio


def tick_at_sqrt_price(sqrt_price: int) -> int:
    if not MIN_SQRT_PRICE <= sqrt_price <= MAX_SQRT_PRICE:
        raise QuoteError("sqrt price out of range")
    msb = sqrt_price.bit_length() - 1
    log2_integer_x32 = (msb - 64) << 32
    r = sqrt_price >> (msb - 63) if msb >= 64 else sqrt_price << (63 - msb)
    bit, fraction = 1 << 63, 0
    for _ in range(16):
        r *= r
        more = r >> 127
        r >>= 63 + more
        fraction += bit * more
        bit >>= 1
    log_x64 = (log2_integer_x32 + (fraction >> 32)) * 59543866431248
    low = (log_x64 - 184467440737095516) >> 64
    high = (log_x64 + 15793534762490258745) >> 64
    if low == high:
        return low
    return high if sqrt_price_at_tick(high) <= sqrt_price else low


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _u64(value: int) -> int:
    if value > U64_MAX:
        raise OverflowError("max token overflow")
    return value


def delta_a(p1: int, p2: int, liquidity: int, round_up: bool) -> int:
    lo, hi = (p1, p2) if p1 < p2 else (p2, p1)
    if lo <= 0:
        raise QuoteError("zero sqrt price")
    numerator = (liquidity << 64) * (hi - lo)
    if round_up:
        return _u64(-(-_ceil_div(numerator, hi) // lo))
    return _u64(numerator // hi // lo)


def delta_b(p1: int, p2: int, liquidity: int, round_up: bool) -> int:
    lo, hi = (p1, p2) if p1 < p2 else (p2, p1)
    product = liquidity * (hi - lo)
    return _u64(-(-product >> 64) if round_up else product >> 64)


def next_sqrt_price_from_input(sqrt_price: int, liquidity: int, amount: int, zero_for_one: bool) -> int:
    if liquidity <= 0:
        raise QuoteError("no liquidity")
    if amount == 0:
        return sqrt_price
    if zero_for_one:
        shifted = liquidity << 64
        return -(-(shifted * sqrt_price) // (shifted + amount * sqrt_price))
    return sqrt_price + (amount << 64) // liquidity


@dataclass(frozen=True, slots=True)
class Step:
    next_sqrt_price: int
    amount_in: int
    amount_out: int
    fee: int


def compute_swap_step(
    current: int, target: int, liquidity: int, remaining: int, fee_rate: int, zero_for_one: bool, fee_on_input: bool
) -> Step:
    """SwapMath.computeSwap, exact input."""
    usable = remaining * (FEE_RATE_DENOMINATOR - fee_rate) // FEE_RATE_DENOMINATOR if fee_on_input else remaining
    try:
        ranged: int | None = (
            delta_a(target, current, liquidity, True) if zero_for_one else delta_b(current, target, liquidity, True)
        )
    except OverflowError:
        ranged = None
    amount_in = ranged if ranged is not None else 0
    if ranged is not None and usable >= amount_in:
        nxt = target
    else:
        nxt = next_sqrt_price_from_input(current, liquidity, usable, zero_for_one)
    if (zero_for_one and nxt < target) or (not zero_for_one and nxt > target):
        raise QuoteError("step passed its target")
    reached = nxt == target
    try:
        if zero_for_one:
            if not reached:
                amount_in = delta_a(nxt, current, liquidity, True)
            amount_out = delta_b(nxt, current, liquidity, False)
        else:
            if not reached:
                amount_in = delta_b(current, nxt, liquidity, True)
            amount_out = delta_a(current, nxt, liquidity, False)
    except OverflowError as e:
        raise QuoteError(str(e)) from None
    if fee_on_input:
        fee = -(-amount_in * fee_rate // (FEE_RATE_DENOMINATOR - fee_rate)) if reached else remaining - amount_in
    else:
        fee = -(-amount_out * fee_rate // FEE_RATE_DENOMINATOR)
        amount_out -= fee
        if not reached:
            amount_in = remaining
    return Step(nxt, amount_in, amount_out, fee)


# --- accounts ---


@dataclass(frozen=True, slots=True)
class ClmmPoolState:
    config: Pubkey
    mint_a: Pubkey
    mint_b: Pubkey
    vault_a: Pubkey
    vault_b: Pubkey
    observation: Pubkey
    tick_spacing: int
    liquidity: int
    sqrt_price: int
    tick_current: int
    status: int
    fee_on: int  # 0: fee on the input token, 1: on token 0 (A), 2: on token 1 (B)
    tick_array_bitmap: int  # 1,024 bits, bit i = array index i - 512
    dynamic_fee: bool

    def fee_on_input(self, zero_for_one: bool) -> bool:
        return self.fee_on not in (1, 2) or (self.fee_on == 1) == zero_for_one


def _key(data: bytes, offset: int) -> Pubkey:
    return Pubkey.from_bytes(data[offset : offset + 32])


def _u128(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 16], "little")


def decode_pool(data: bytes) -> ClmmPoolState:
    if len(data) != POOL_SIZE:
        raise LayoutError(f"Raydium CLMM pool state is {POOL_SIZE} bytes, got {len(data)}")
    return ClmmPoolState(
        config=_key(data, 9),
        mint_a=_key(data, 73),
        mint_b=_key(data, 105),
        vault_a=_key(data, 137),
        vault_b=_key(data, 169),
        observation=_key(data, 201),
        tick_spacing=struct.unpack_from("<H", data, 235)[0],
        liquidity=_u128(data, 237),
        sqrt_price=_u128(data, 253),
        tick_current=struct.unpack_from("<i", data, 269)[0],
        status=data[389],
        fee_on=data[390],
        tick_array_bitmap=int.from_bytes(data[904:1032], "little"),
        dynamic_fee=any(data[1096:1130]),  # DynamicFeeInfo's fields; all zero when the pool has none
    )


def decode_config(data: bytes) -> tuple[int, int, int]:
    """(trade fee rate, protocol fee rate, fund fee rate) of an AmmConfig, per 1e6."""
    if len(data) != CONFIG_SIZE:
        raise LayoutError(f"Raydium CLMM config is {CONFIG_SIZE} bytes, got {len(data)}")
    protocol, trade = struct.unpack_from("<II", data, 43)
    return trade, protocol, struct.unpack_from("<I", data, 53)[0]


@dataclass(frozen=True, slots=True)
class ClmmTickArray:
    pool: Pubkey
    start: int
    ticks: tuple[tuple[int, int] | None, ...]  # (tick index, liquidity_net) if initialized, else None
    limit_orders: bool  # some tick carries limit orders (not modelled)


def decode_tick_array(data: bytes) -> ClmmTickArray:
    if len(data) != TICK_ARRAY_LEN:
        raise LayoutError(f"Raydium CLMM tick array is {TICK_ARRAY_LEN} bytes, got {len(data)}")
    ticks: list[tuple[int, int] | None] = []
    orders = False
    for o in range(44, 44 + TICKS_PER_ARRAY * TICK_LEN, TICK_LEN):
        gross = _u128(data, o + 20)
        if any(data[o + 124 : o + 140]):  # orders_amount, part_filled_orders_remaining
            orders = True
        tick = struct.unpack_from("<i", data, o)[0]
        ticks.append((tick, int.from_bytes(data[o + 4 : o + 20], "little", signed=True)) if gross else None)
    return ClmmTickArray(_key(data, 8), struct.unpack_from("<i", data, 40)[0], tuple(ticks), orders)


def tick_array_address(pool: Pubkey, start: int, program: Pubkey = RAYDIUM_CLMM) -> Pubkey:
    return Pubkey.find_program_address([b"tick_array", bytes(pool), struct.pack(">i", start)], program)[0]


def array_start(tick: int, spacing: int) -> int:
    span = TICKS_PER_ARRAY * spacing
    return tick // span * span


def initialized_starts(state: ClmmPoolState) -> list[int]:
    span = TICKS_PER_ARRAY * state.tick_spacing
    bits, out = state.tick_array_bitmap, []
    while bits:
        low = bits & -bits
        out.append((low.bit_length() - 1 - BITMAP_HALF) * span)
        bits ^= low
    return out


@dataclass(frozen=True, slots=True)
class ClmmSwap:
    amount_in: int
    amount_out: int
    fee: int
    ticks_crossed: int
    arrays: tuple[int, ...]  # start indexes walked, in order


def swap_exact_in(
    state: ClmmPoolState,
    arrays: list[ClmmTickArray],
    trade_fee_rate: int,
    amount: int,
    zero_for_one: bool,
) -> ClmmSwap:
    """swapInternal, exact input, no price limit, over `arrays` in the order given."""
    if amount <= 0 or amount > U64_MAX:
        raise QuoteError("amount out of range")
    if not arrays:
        raise QuoteError("no tick arrays")
    limit = MIN_SQRT_PRICE + 1 if zero_for_one else MAX_SQRT_PRICE - 1
    spacing = state.tick_spacing
    fee_on_input = state.fee_on_input(zero_for_one)
    index = 0
    array = arrays[0]
    contains = array.start == array_start(state.tick_current, spacing)
    remaining, calculated, fees, crossed = amount, 0, 0, 0
    price, tick, liquidity = state.sqrt_price, state.tick_current, state.liquidity
    while remaining and price != limit:
        nxt = None
        if array.start == array_start(tick, spacing):
            here = (tick - array.start) // spacing
            slots = range(here, -1, -1) if zero_for_one else range(here + 1, TICKS_PER_ARRAY)
            nxt = next((array.ticks[i] for i in slots if array.ticks[i] is not None), None)
        if nxt is None:
            if contains:
                index += 1
                if index >= len(arrays):
                    raise QuoteError("the tick arrays cannot fill this swap")
                array = arrays[index]
            contains = True
            order = reversed(array.ticks) if zero_for_one else iter(array.ticks)
            nxt = next((t for t in order if t is not None), None)
            if nxt is None:
                raise QuoteError("the tick arrays cannot fill this swap")
        tick_next = min(max(nxt[0], MIN_TICK), MAX_TICK)
        price_next = sqrt_price_at_tick(tick_next)
        target = (
            limit if (zero_for_one and price_next < limit) or (not zero_for_one and price_next > limit) else price_next
        )
        if (zero_for_one and (tick < tick_next or price < price_next)) or (not zero_for_one and tick_next <= tick):
            raise QuoteError("tick order")
        if price != target:
            step = compute_swap_step(price, target, liquidity, remaining, trade_fee_rate, zero_for_one, fee_on_input)
            remaining -= step.amount_in + step.fee if fee_on_input else step.amount_in
            if remaining < 0:
                raise QuoteError("amount remaining underflow")
            calculated += step.amount_out
            fees += step.fee
            new_price = step.next_sqrt_price
        else:
            new_price = target
        if new_price == price_next:
            net = -nxt[1] if zero_for_one else nxt[1]
            if liquidity + net < 0:
                raise QuoteError("liquidity underflow")
            liquidity_after = liquidity + net
            crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        else:
            liquidity_after = liquidity
            if new_price != price:
                tick = tick_at_sqrt_price(new_price)
        price, liquidity = new_price, liquidity_after
    if remaining:
        raise QuoteError("price limit reached")
    return ClmmSwap(amount, calculated, fees, crossed, tuple(a.start for a in arrays[: index + 1]))


@dataclass(slots=True)
class ClmmPool(Pool):
    """A CLMM pool, its AmmConfig and the initialized tick arrays nearest its current tick (ARRAYS_AHEAD
    either way, from the pool's bitmap)."""

    state: ClmmPoolState | None = None
    trade_fee_rate: int | None = None
    tick_arrays: dict[int, ClmmTickArray] = field(default_factory=dict)
    window: dict[Pubkey, int] = field(default_factory=dict)

    def swap_arrays(self, zero_for_one: bool) -> list[int]:
        s = self.state
        assert s is not None
        here = array_start(s.tick_current, s.tick_spacing)
        starts = initialized_starts(s)
        if zero_for_one:
            return sorted((x for x in starts if x <= here), reverse=True)[:ARRAYS_AHEAD]
        return sorted(x for x in starts if x >= here)[:ARRAYS_AHEAD]

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, self.state.config, *self.window, *self.fee_mints())

    def swap_array_addresses(self, zero_for_one: bool) -> list[Pubkey]:
        return [tick_array_address(self.address, x, self.program) for x in self.swap_arrays(zero_for_one)]

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        data = account.data
        if key == self.address:
            self.state = decode_pool(data)
            self._set_mints((self.state.mint_a, self.state.mint_b), (None, None))  # the pool records no program
            starts = {*self.swap_arrays(True), *self.swap_arrays(False)}
            self.window = {tick_array_address(self.address, x, self.program): x for x in sorted(starts)}
        elif self.state is not None and key == self.state.config:
            self.trade_fee_rate = decode_config(data)[0]
        else:
            array = decode_tick_array(data)
            if array.pool != self.address:
                raise LayoutError("tick array of another pool")
            self.tick_arrays[array.start] = array

    def ready(self) -> bool:
        return (
            self.state is not None
            and self.trade_fee_rate is not None
            and all(x in self.tick_arrays for x in self.window.values())
            and self.mints_read()
        )

    def swap(self, amount_in: int, zero_for_one: bool) -> ClmmSwap:
        """The pool's side of an exact-in swap of `amount_in` sent (after the input's transfer fee)."""
        return self.transfer_swap(amount_in, zero_for_one)[1]

    def transfer_swap(self, amount_in: int, zero_for_one: bool) -> tuple[TransferFeeSwap, ClmmSwap]:
        s = self.state
        if s is None or self.trade_fee_rate is None:
            raise QuoteError("pool not read yet")
        if s.dynamic_fee:
            raise QuoteError("dynamic-fee pool: not modelled")
        arrays = []
        for start in self.swap_arrays(zero_for_one):
            array = self.tick_arrays.get(start)
            if array is None:
                raise QuoteError("tick array not read yet")
            if array.limit_orders:
                raise QuoteError("limit orders on a tick: not modelled")
            arrays.append(array)
        rate = self.trade_fee_rate

        def pool_side(arrived: int) -> tuple[int, ClmmSwap]:
            result = swap_exact_in(s, arrays, rate, arrived, zero_for_one)
            if result.amount_out == 0:
                raise QuoteError("nothing out")  # swap_v2: TooSmallInputOrOutputAmount
            return result.amount_out, result

        return swap_with_transfer_fees(amount_in, self.direction(zero_for_one), self.transfer_fee, pool_side)

    def transfer_quote(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        return self.transfer_swap(amount_in, zero_for_one)[0]

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        return self.transfer_swap(amount_in, zero_for_one)[0].received
