"""Orca Whirlpool: account layouts and exact integer exact-in swap quotes, as Orca's quote code computes them.

Layouts (Anchor accounts of program whirLbMi…, at the published offsets): `Whirlpool` (653 bytes),
`TickArray` (fixed, 9,988 bytes: 88 ticks of 113 bytes) and `DynamicTickArray` (148 to 10,004 bytes: a
one-byte tag per tick, 112 data bytes only for initialized ticks).

Quote (orca-so/whirlpools `rust-sdk/core` `swap_quote_by_input_token` -> `compute_swap`, the port of the
program's swap loop): Q64.64 sqrt prices; per step the fee comes off the remaining input
(floor(a * (1e6 - f) / 1e6)), the input side of a step is rounded up and the output side down, the fee of a
step that reaches its target is ceil(in * 1e6 / (1e6 - f)) - in, else what remains of the input less what
the step took; initialized ticks are crossed with their signed `liquidity_net`; the walk runs over the tick
arrays given (here the array of the current tick and two on either side, as Orca's SDK fetches them) and a
swap the arrays cannot fill is refused. The protocol's share of each step's fee is floor(fee * rate / 1e4)
(the program's `calculate_fees`). Pools with an adaptive fee (their oracle account) are not modelled: such a
pool refuses to quote. Token-2022 transfer fees (`swap_v2`, `swap_with_transfer_fee_extension`): both mints
are read; the input mint's fee (at the node's epoch) comes off the amount first and the swap runs on the
rest, the output mint's fee off what the vault sends; the minimum output is checked against what arrives.
tests/agent/solana/test_whirlpool_oracle.py checks all of it against `@orca-so/whirlpools-core` (WASM) and
the layouts against `@orca-so/whirlpools-client`'s codecs.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from .layouts import AccountData, LayoutError
from .raydium import Pool, QuoteError
from .token2022 import TransferFeeSwap, swap_with_transfer_fees

WHIRLPOOL_PROGRAM = Pubkey.from_string("whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc")

WHIRLPOOL_SIZE = 653
TICK_ARRAY_SIZE = 88  # ticks per array
TICK_SIZE = 113  # initialized u8, liquidity_net i128, liquidity_gross u128, 2 fee growths, 3 reward growths
FIXED_TICK_ARRAY_LEN = 8 + 4 + TICK_ARRAY_SIZE * TICK_SIZE + 32
DYNAMIC_TICK_DATA = 112
DYNAMIC_TICK_ARRAY_MIN = 8 + 4 + 32 + 16 + TICK_ARRAY_SIZE

MIN_TICK_INDEX = -443_636
MAX_TICK_INDEX = 443_636
MIN_SQRT_PRICE = 4_295_048_016
MAX_SQRT_PRICE = 79_226_673_515_401_279_992_447_579_055
FEE_RATE_DENOMINATOR = 1_000_000
PROTOCOL_FEE_RATE_DENOMINATOR = 10_000
U64_MAX = 2**64 - 1
U256 = 2**256
ARRAYS_EACH_SIDE = 2  # tick arrays tracked and quoted over on either side of the current one


def _discriminator(name: str) -> bytes:
    return hashlib.sha256(f"account:{name}".encode()).digest()[:8]


WHIRLPOOL_DISCRIMINATOR = _discriminator("Whirlpool")
FIXED_TICK_ARRAY_DISCRIMINATOR = _discriminator("TickArray")
DYNAMIC_TICK_ARRAY_DISCRIMINATOR = _discriminator("DynamicTickArray")


@dataclass(frozen=True, slots=True)
class WhirlpoolState:
    whirlpools_config: Pubkey
    tick_spacing: int
    fee_tier_index: int  # equals tick_spacing unless the pool was initialized with an adaptive fee
    fee_rate: int  # per 1e6
    protocol_fee_rate: int  # per 1e4 of the fee
    liquidity: int
    sqrt_price: int  # Q64.64
    tick_current_index: int
    protocol_fee_owed_a: int
    protocol_fee_owed_b: int
    token_mint_a: Pubkey
    token_vault_a: Pubkey
    fee_growth_global_a: int
    token_mint_b: Pubkey
    token_vault_b: Pubkey
    fee_growth_global_b: int
    reward_last_updated_timestamp: int

    @property
    def adaptive_fee(self) -> bool:
        return self.fee_tier_index != self.tick_spacing


def _u128(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 16], "little")


def _i128(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 16], "little", signed=True)


def _key(data: bytes, offset: int) -> Pubkey:
    return Pubkey.from_bytes(data[offset : offset + 32])


def decode_whirlpool(data: bytes) -> WhirlpoolState:
    if len(data) != WHIRLPOOL_SIZE or data[:8] != WHIRLPOOL_DISCRIMINATOR:
        raise LayoutError(f"not a Whirlpool account ({len(data)} bytes, {WHIRLPOOL_SIZE} expected)")
    tick_spacing, fee_tier_index, fee_rate, protocol_fee_rate = struct.unpack_from("<HHHH", data, 41)
    return WhirlpoolState(
        whirlpools_config=_key(data, 8),
        tick_spacing=tick_spacing,
        fee_tier_index=fee_tier_index,
        fee_rate=fee_rate,
        protocol_fee_rate=protocol_fee_rate,
        liquidity=_u128(data, 49),
        sqrt_price=_u128(data, 65),
        tick_current_index=struct.unpack_from("<i", data, 81)[0],
        protocol_fee_owed_a=struct.unpack_from("<Q", data, 85)[0],
        protocol_fee_owed_b=struct.unpack_from("<Q", data, 93)[0],
        token_mint_a=_key(data, 101),
        token_vault_a=_key(data, 133),
        fee_growth_global_a=_u128(data, 165),
        token_mint_b=_key(data, 181),
        token_vault_b=_key(data, 213),
        fee_growth_global_b=_u128(data, 245),
        reward_last_updated_timestamp=struct.unpack_from("<Q", data, 261)[0],
    )


@dataclass(frozen=True, slots=True)
class TickArrayState:
    start_tick_index: int
    whirlpool: Pubkey
    liquidity_net: tuple[int | None, ...]  # per tick: its signed liquidity_net if initialized, else None


def decode_tick_array(data: bytes) -> TickArrayState:
    """A fixed `TickArray` or a `DynamicTickArray` (the program accepts either in a swap)."""
    head = data[:8]
    if head == FIXED_TICK_ARRAY_DISCRIMINATOR and len(data) == FIXED_TICK_ARRAY_LEN:
        ticks = tuple(
            _i128(data, o + 1) if data[o] else None for o in range(12, 12 + TICK_ARRAY_SIZE * TICK_SIZE, TICK_SIZE)
        )
        return TickArrayState(struct.unpack_from("<i", data, 8)[0], _key(data, 12 + TICK_ARRAY_SIZE * TICK_SIZE), ticks)
    if head == DYNAMIC_TICK_ARRAY_DISCRIMINATOR and len(data) >= DYNAMIC_TICK_ARRAY_MIN:
        out: list[int | None] = []
        offset = 60
        for _ in range(TICK_ARRAY_SIZE):
            tag = data[offset]
            if tag == 0:
                out.append(None)
                offset += 1
            elif tag == 1 and offset + 1 + DYNAMIC_TICK_DATA <= len(data):
                out.append(_i128(data, offset + 1))
                offset += 1 + DYNAMIC_TICK_DATA
            else:
                raise LayoutError(f"dynamic tick array: bad tick tag {tag} at {offset}")
        return TickArrayState(struct.unpack_from("<i", data, 8)[0], _key(data, 12), tuple(out))
    raise LayoutError(f"not a Whirlpool tick array ({len(data)} bytes)")


def tick_array_address(whirlpool: Pubkey, start_tick_index: int) -> Pubkey:
    seeds = [b"tick_array", bytes(whirlpool), str(start_tick_index).encode()]
    return Pubkey.find_program_address(seeds, WHIRLPOOL_PROGRAM)[0]


def tick_array_start(tick_index: int, tick_spacing: int) -> int:
    span = TICK_ARRAY_SIZE * tick_spacing
    return tick_index // span * span


# --- tick math (rust-sdk/core/src/math/tick.rs) ---

_POS = (
    79236085330515764027303304731,
    79244008939048815603706035061,
    79259858533276714757314932305,
    79291567232598584799939703904,
    79355022692464371645785046466,
    79482085999252804386437311141,
    79736823300114093921829183326,
    80248749790819932309965073892,
    81282483887344747381513967011,
    83390072131320151908154831281,
    87770609709833776024991924138,
    97234110755111693312479820773,
    119332217159966728226237229890,
    179736315981702064433883588727,
    407748233172238350107850275304,
    2098478828474011932436660412517,
    55581415166113811149459800483533,
    38992368544603139932233054999993551,
)
_NEG = (
    18444899583751176498,
    18443055278223354162,
    18439367220385604838,
    18431993317065449817,
    18417254355718160513,
    18387811781193591352,
    18329067761203520168,
    18212142134806087854,
    17980523815641551639,
    17526086738831147013,
    16651378430235024244,
    15030750278693429944,
    12247334978882834399,
    8131365268884726200,
    3584323654723342297,
    696457651847595233,
    26294789957452057,
    37481735321082,
)


def tick_index_to_sqrt_price(tick: int) -> int:
    if tick >= 0:
        ratio = 79232123823359799118286999567 if tick & 1 else 79228162514264337593543950336
        for bit, factor in enumerate(_POS, start=1):
            if tick & (1 << bit):
                ratio = (ratio * factor) >> 96
        return ratio >> 32
    a = -tick
    ratio = 18445821805675392311 if a & 1 else 18446744073709551616
    for bit, factor in enumerate(_NEG, start=1):
        if a & (1 << bit):
            ratio = (ratio * factor) >> 64
    return ratio


_LOG_B_2_X32 = 59543866431248
_ERR_LOWER_X64 = 184467440737095516
_ERR_UPPER_X64 = 15793534762490258745


def sqrt_price_to_tick_index(sqrt_price: int) -> int:
    msb = sqrt_price.bit_length() - 1
    log2p_integer_x32 = (msb - 64) << 32
    r = sqrt_price >> (msb - 63) if msb >= 64 else sqrt_price << (63 - msb)
    bit, fraction_x64 = 0x8000_0000_0000_0000, 0
    for _ in range(14):
        r *= r
        more = r >> 127
        r >>= 63 + more
        fraction_x64 += bit * more
        bit >>= 1
    logbp_x64 = (log2p_integer_x32 + (fraction_x64 >> 32)) * _LOG_B_2_X32
    low = (logbp_x64 - _ERR_LOWER_X64) >> 64
    high = (logbp_x64 + _ERR_UPPER_X64) >> 64
    if low == high:
        return low
    return high if tick_index_to_sqrt_price(high) <= sqrt_price else low


# --- token math (rust-sdk/core/src/math/token.rs), exact-in only ---


def _u64(value: int) -> int:
    if value > U64_MAX:
        raise QuoteError("amount exceeds u64")
    return value


def amount_delta_a(p1: int, p2: int, liquidity: int, round_up: bool) -> int:
    lo, hi = (p1, p2) if p1 < p2 else (p2, p1)
    numerator = (liquidity * (hi - lo)) << 64
    if numerator >= U256:
        raise QuoteError("arithmetic overflow")
    q, r = divmod(numerator, lo * hi)
    return _u64(q + 1 if round_up and r else q)


def amount_delta_b(p1: int, p2: int, liquidity: int, round_up: bool) -> int:
    lo, hi = (p1, p2) if p1 < p2 else (p2, p1)
    product = liquidity * (hi - lo)
    q = product >> 64
    return _u64(q + 1 if round_up and product & U64_MAX else q)


def next_sqrt_price_from_a_in(sqrt_price: int, liquidity: int, amount: int) -> int:
    if amount == 0:
        return sqrt_price
    numerator = (liquidity * sqrt_price) << 64
    if numerator >= U256:
        raise QuoteError("arithmetic overflow")
    q, r = divmod(numerator, (liquidity << 64) + sqrt_price * amount)
    result = q + 1 if r else q
    if not MIN_SQRT_PRICE <= result <= MAX_SQRT_PRICE:
        raise QuoteError("sqrt price out of bounds")
    return result


def next_sqrt_price_from_b_in(sqrt_price: int, liquidity: int, amount: int) -> int:
    if amount == 0:
        return sqrt_price
    result = sqrt_price + (amount << 64) // liquidity
    if not MIN_SQRT_PRICE <= result <= MAX_SQRT_PRICE:
        raise QuoteError("sqrt price out of bounds")
    return result


def apply_swap_fee(amount: int, fee_rate: int) -> int:
    return amount * (FEE_RATE_DENOMINATOR - fee_rate) // FEE_RATE_DENOMINATOR


def reverse_apply_swap_fee(amount: int, fee_rate: int) -> int:
    return _u64(-(-amount * FEE_RATE_DENOMINATOR // (FEE_RATE_DENOMINATOR - fee_rate)))


@dataclass(frozen=True, slots=True)
class WhirlpoolSwap:
    amount_in: int  # taken from the input, fee included (below the amount asked when the arrays ran out)
    amount_out: int
    trade_fee: int
    protocol_fee: int
    sqrt_price: int  # after the swap
    tick_current_index: int
    ticks_crossed: int


def _step(remaining: int, fee_rate: int, liquidity: int, current: int, target: int, a_to_b: bool):
    """compute_swap_step, exact input: (amount_in, amount_out, next_sqrt_price, fee)."""
    fixed: int | None
    try:
        fixed = (amount_delta_a if a_to_b else amount_delta_b)(current, target, liquidity, True)
    except QuoteError as e:
        if str(e) != "amount exceeds u64":
            raise
        fixed = None
    calculated = apply_swap_fee(remaining, fee_rate)
    if fixed is not None and fixed <= calculated:
        nxt = target
    elif a_to_b:
        nxt = next_sqrt_price_from_a_in(current, liquidity, calculated)
    else:
        nxt = next_sqrt_price_from_b_in(current, liquidity, calculated)
    is_max = nxt == target
    out = (amount_delta_b if a_to_b else amount_delta_a)(current, nxt, liquidity, False)
    if not is_max or fixed is None:
        fixed = (amount_delta_a if a_to_b else amount_delta_b)(current, nxt, liquidity, True)
    fee = remaining - fixed if not is_max else reverse_apply_swap_fee(fixed, fee_rate) - fixed
    return fixed, out, nxt, fee


class TickSequence:
    """TickArraySequence: contiguous tick arrays sorted by start index (missing ones as empty arrays)."""

    __slots__ = ("arrays", "end_index", "first", "spacing", "start_index")

    def __init__(self, arrays: dict[int, tuple[int | None, ...]], spacing: int) -> None:
        if not arrays:
            raise QuoteError("no tick arrays")
        starts = sorted(arrays)
        span = TICK_ARRAY_SIZE * spacing
        if any(b - a != span for a, b in itertools.pairwise(starts)):
            raise QuoteError("tick arrays not evenly spaced")
        self.arrays, self.spacing, self.first = arrays, spacing, starts[0]
        self.start_index = max(starts[0], MIN_TICK_INDEX)
        self.end_index = min(starts[-1] + span - 1, MAX_TICK_INDEX)

    def _net(self, tick: int) -> int | None:
        span = TICK_ARRAY_SIZE * self.spacing
        start = self.first + (tick - self.first) // span * span
        return self.arrays[start][(tick - start) // self.spacing]

    def next_initialized(self, tick: int) -> tuple[int | None, int]:
        if tick >= self.end_index:
            raise QuoteError("swap leaves the tick arrays")
        s = self.spacing
        nxt = tick
        while True:
            nxt = (nxt // s + 1) * s
            if nxt > self.end_index:
                return None, self.end_index
            net = self._net(nxt)
            if net is not None:
                return net, nxt

    def prev_initialized(self, tick: int) -> tuple[int | None, int]:
        if tick < self.start_index:
            raise QuoteError("swap leaves the tick arrays")
        s = self.spacing
        prev = tick // s * s
        while True:
            if prev < self.start_index:
                return None, self.start_index
            net = self._net(prev)
            if net is not None:
                return net, prev
            prev -= s


def swap_exact_in(state: WhirlpoolState, sequence: TickSequence, amount: int, a_to_b: bool) -> WhirlpoolSwap:
    """compute_swap with the input specified and no price limit: a swap that walks off the tick arrays is
    refused, as the program refuses it."""
    if (a_to_b and state.sqrt_price <= MIN_SQRT_PRICE) or (not a_to_b and state.sqrt_price >= MAX_SQRT_PRICE):
        raise QuoteError("invalid sqrt price limit direction")
    limit = MIN_SQRT_PRICE if a_to_b else MAX_SQRT_PRICE
    if amount <= 0:
        raise QuoteError("zero tradable amount")
    _u64(amount)
    remaining, calculated, trade_fee, protocol_fee, crossed = amount, 0, 0, 0, 0
    price, tick, liquidity = state.sqrt_price, state.tick_current_index, state.liquidity
    fee_rate, protocol_rate = state.fee_rate, state.protocol_fee_rate
    while remaining > 0 and limit != price:
        net, next_tick = sequence.prev_initialized(tick) if a_to_b else sequence.next_initialized(tick)
        next_price = tick_index_to_sqrt_price(next_tick)
        target = max(next_price, limit) if a_to_b else min(next_price, limit)
        amount_in, amount_out, new_price, fee = _step(remaining, fee_rate, liquidity, price, target, a_to_b)
        trade_fee += fee
        protocol_fee += fee * protocol_rate // PROTOCOL_FEE_RATE_DENOMINATOR
        remaining -= amount_in + fee
        if remaining < 0:
            raise QuoteError("amount remaining overflow")
        calculated = _u64(calculated + amount_out)
        if new_price == next_price:
            if net is not None:
                liquidity = liquidity - net if a_to_b else liquidity + net
                crossed += 1
            tick = next_tick - 1 if a_to_b else next_tick
        elif new_price != price:
            tick = sqrt_price_to_tick_index(new_price)
        price = new_price
    return WhirlpoolSwap(amount - remaining, calculated, trade_fee, protocol_fee, price, tick, crossed)


# --- the pool in the strategy's shape ---

_ABSENT: tuple[int | None, ...] = (None,) * TICK_ARRAY_SIZE


@dataclass(slots=True)
class WhirlpoolPool(Pool):
    """A Whirlpool and the tick arrays around its current tick: the array holding it and ARRAYS_EACH_SIDE
    either side (what Orca's SDK fetches for a quote). An array account that does not exist counts as
    empty (the program's sparse swap accepts it as such), one not read yet makes the pool not ready."""

    state: WhirlpoolState | None = None
    tick_arrays: dict[Pubkey, tuple[int, tuple[int | None, ...]]] = field(default_factory=dict)
    window: dict[Pubkey, int] = field(default_factory=dict)  # tracked tick array address -> start index

    def _window(self) -> dict[Pubkey, int]:
        s = self.state
        assert s is not None
        span = TICK_ARRAY_SIZE * s.tick_spacing
        here = tick_array_start(s.tick_current_index, s.tick_spacing)
        starts = [here + k * span for k in range(-ARRAYS_EACH_SIDE, ARRAYS_EACH_SIDE + 1)]
        starts = [x for x in starts if x + span > MIN_TICK_INDEX and x <= MAX_TICK_INDEX]
        return {tick_array_address(self.address, x): x for x in starts}

    def accounts(self) -> tuple[Pubkey, ...]:
        if self.state is None:
            return (self.address,)
        return (self.address, *self.window, *self.fee_mints())

    def _update_account(self, key: Pubkey, account: AccountData) -> None:
        data = account.data
        if key == self.address:
            state = decode_whirlpool(data)
            moved = self.state is None or state.tick_spacing != self.state.tick_spacing
            moved = moved or tick_array_start(state.tick_current_index, state.tick_spacing) != tick_array_start(
                self.state.tick_current_index, self.state.tick_spacing
            )
            self.state = state
            self._set_mints((state.token_mint_a, state.token_mint_b), (None, None))  # no program recorded
            if moved:
                self.window = self._window()
        else:
            array = decode_tick_array(data)
            if array.whirlpool != self.address:
                raise LayoutError("tick array of another whirlpool")
            self.tick_arrays[key] = (array.start_tick_index, array.liquidity_net)

    def absent(self, key: Pubkey) -> bool:
        if key in self.window:
            self.tick_arrays[key] = (self.window[key], _ABSENT)
            self.version += 1
            return True
        return False

    def ready(self) -> bool:
        return self.state is not None and all(k in self.tick_arrays for k in self.window) and self.mints_read()

    def sequence(self) -> TickSequence:
        s = self.state
        assert s is not None
        arrays = {}
        for key, start in self.window.items():
            loaded = self.tick_arrays.get(key)
            if loaded is None:
                raise QuoteError("tick array not read yet")
            arrays[start] = loaded[1]
        return TickSequence(arrays, s.tick_spacing)

    def swap_tick_arrays(self, a_to_b: bool) -> tuple[Pubkey, Pubkey, Pubkey]:
        """The three arrays a swap walks: the current one and the next two in its direction (the last
        repeated at the end of the tick range), what `swap_v2` takes without supplemental arrays."""
        s = self.state
        assert s is not None
        here = tick_array_start(s.tick_current_index, s.tick_spacing)
        ordered = sorted(((start, key) for key, start in self.window.items()), reverse=a_to_b)
        ahead = [key for start, key in ordered if (start <= here if a_to_b else start >= here)][:3]
        while len(ahead) < 3:
            ahead.append(ahead[-1])
        return ahead[0], ahead[1], ahead[2]

    def swap(self, amount_in: int, zero_for_one: bool) -> WhirlpoolSwap:
        """The pool's side of an exact-in swap of `amount_in` sent (after the input's transfer fee)."""
        return self.transfer_swap(amount_in, zero_for_one)[1]

    def transfer_swap(self, amount_in: int, zero_for_one: bool) -> tuple[TransferFeeSwap, WhirlpoolSwap]:
        """The swap with its transfer fees: `amount_in` sent, the pool's swap on what arrives of it."""
        s = self.state
        if s is None:
            raise QuoteError("whirlpool not read yet")
        if s.adaptive_fee:
            raise QuoteError("adaptive-fee whirlpool: its oracle is not modelled")

        def pool_side(arrived: int) -> tuple[int, WhirlpoolSwap]:
            result = swap_exact_in(s, self.sequence(), arrived, zero_for_one)
            if result.amount_in != arrived:
                raise QuoteError("the tick arrays cannot fill this swap")
            return result.amount_out, result

        return swap_with_transfer_fees(amount_in, self.direction(zero_for_one), self.transfer_fee, pool_side)

    def transfer_quote(self, amount_in: int, zero_for_one: bool) -> TransferFeeSwap:
        return self.transfer_swap(amount_in, zero_for_one)[0]

    def quote(self, amount_in: int, zero_for_one: bool) -> int:
        return self.transfer_swap(amount_in, zero_for_one)[0].received
