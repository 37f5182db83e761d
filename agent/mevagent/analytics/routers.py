"""Decode a pending transaction sent to a common swap router into the swap it asks for.

Uniswap V2 Router02 (and the forks' routers, which share its ABI), V3 SwapRouter, SwapRouter02
(its V3 calls, its V2 calls and `multicall`), Universal Router `execute` (V2/V3 swap commands), and the 0x
Exchange Proxy's multiplex sells where they are one Uniswap route (see `_multiplex`).
Only what a sandwich-risk score needs is kept: the route, the amount and the victim's limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from mevagent.analytics.abi import address_array, address_word, dynamic_bytes, selector, word, words

_CONTRACT_BALANCE = 1 << 255  # Universal Router: "use the router's balance", unknown before execution


@dataclass(frozen=True, slots=True)
class PendingSwap:
    """One decoded swap: `path` tokens in order, `fees` per hop for V3 (None for V2)."""

    protocol: str  # "v2" | "v3"
    exact_in: bool
    path: tuple[str, ...]
    fees: tuple[int, ...] | None
    # exact_in: amount in and the minimum out; exact out: amount out and the maximum in
    amount: int
    limit: int
    recipient: str


def _v2(exact_in: bool, amount: int, limit: int, payload: str, path_head: int, to_head: int) -> PendingSwap:
    path = tuple(address_array(payload, path_head))
    return PendingSwap("v2", exact_in, path, None, amount, limit, address_word(payload, to_head))


def _v3_path(raw: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """token(20) fee(3) token(20) ... as hex without 0x."""
    tokens, fees = ["0x" + raw[0:40]], []
    position = 40
    while position + 46 <= len(raw):
        fees.append(int(raw[position : position + 6], 16))
        tokens.append("0x" + raw[position + 6 : position + 46])
        position += 46
    return tuple(tokens), tuple(fees)


def _exact_input(payload: str, with_deadline: bool) -> PendingSwap:
    base = word(payload, 0) // 32  # the struct is dynamic: its head points to it
    path, fees = _v3_path(dynamic_bytes(payload, 0, base))
    shift = 1 if with_deadline else 0
    return PendingSwap(
        "v3",
        True,
        path,
        fees,
        word(payload, base + 2 + shift),
        word(payload, base + 3 + shift),
        address_word(payload, base + 1),
    )


def _exact_output(payload: str, with_deadline: bool) -> PendingSwap:
    base = word(payload, 0) // 32
    path, fees = _v3_path(dynamic_bytes(payload, 0, base))  # encoded from the output token backwards
    shift = 1 if with_deadline else 0
    return PendingSwap(
        "v3",
        False,
        path[::-1],
        fees[::-1],
        word(payload, base + 2 + shift),
        word(payload, base + 3 + shift),
        address_word(payload, base + 1),
    )


def _single(payload: str, exact_in: bool, with_deadline: bool) -> PendingSwap:
    shift = 1 if with_deadline else 0
    path = (address_word(payload, 0), address_word(payload, 1))
    return PendingSwap(
        "v3",
        exact_in,
        path,
        (word(payload, 2),),
        word(payload, 4 + shift),
        word(payload, 5 + shift),
        address_word(payload, 3),
    )


def _decode_v2_router(sig: str, payload: str, value: int) -> PendingSwap | None:
    if sig in _V2_EXACT_IN_TOKENS:  # (amountIn, amountOutMin, path, to, deadline)
        return _v2(True, word(payload, 0), word(payload, 1), payload, 2, 3)
    if sig in _V2_EXACT_IN_ETH:  # payable (amountOutMin, path, to, deadline)
        return _v2(True, value, word(payload, 0), payload, 1, 2)
    if sig in _V2_EXACT_OUT_TOKENS:  # (amountOut, amountInMax, path, to, deadline)
        return _v2(False, word(payload, 0), word(payload, 1), payload, 2, 3)
    if sig == _V2_ETH_FOR_EXACT:  # payable (amountOut, path, to, deadline)
        return _v2(False, word(payload, 0), value, payload, 1, 2)
    return None


_V2_EXACT_IN_TOKENS = frozenset(
    selector(f"{name}(uint256,uint256,address[],address,uint256)")
    for name in (
        "swapExactTokensForTokens",
        "swapExactTokensForTokensSupportingFeeOnTransferTokens",
        "swapExactTokensForETH",
        "swapExactTokensForETHSupportingFeeOnTransferTokens",
    )
)
_V2_EXACT_IN_ETH = frozenset(
    selector(f"{name}(uint256,address[],address,uint256)")
    for name in ("swapExactETHForTokens", "swapExactETHForTokensSupportingFeeOnTransferTokens")
)
_V2_EXACT_OUT_TOKENS = frozenset(
    selector(f"{name}(uint256,uint256,address[],address,uint256)")
    for name in ("swapTokensForExactTokens", "swapTokensForExactETH")
)
_V2_ETH_FOR_EXACT = selector("swapETHForExactTokens(uint256,address[],address,uint256)")
# SwapRouter02's V2 calls: no deadline (multicall carries it).
_R02_V2_EXACT_IN = selector("swapExactTokensForTokens(uint256,uint256,address[],address)")
_R02_V2_EXACT_OUT = selector("swapTokensForExactTokens(uint256,uint256,address[],address)")
_V3_SINGLE_IN = selector("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))")
_V3_SINGLE_OUT = selector("exactOutputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))")
_V3_IN = selector("exactInput((bytes,address,uint256,uint256,uint256))")
_V3_OUT = selector("exactOutput((bytes,address,uint256,uint256,uint256))")
_R02_SINGLE_IN = selector("exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))")
_R02_SINGLE_OUT = selector("exactOutputSingle((address,address,uint24,address,uint256,uint256,uint160))")
_R02_IN = selector("exactInput((bytes,address,uint256,uint256))")
_R02_OUT = selector("exactOutput((bytes,address,uint256,uint256))")
_MULTICALL = selector("multicall(bytes[])")
_MULTICALL_DEADLINE = selector("multicall(uint256,bytes[])")
_MULTICALL_BLOCKHASH = selector("multicall(bytes32,bytes[])")
_UR_EXECUTE = selector("execute(bytes,bytes[],uint256)")
_UR_EXECUTE_NO_DEADLINE = selector("execute(bytes,bytes[])")
# 0x Exchange Proxy (IZeroEx) multiplex sells: BatchSellSubcall(uint8 id, uint256 sellAmount, bytes data),
# MultiHopSellSubcall(uint8 id, bytes data); subcall 3 is Uniswap V2 (data: abi.encode(address[] tokens, bool
# isSushi)), 4 Uniswap V3 (data: the packed V3 path). selector -> (argument types, index of the token arguments,
# of the subcalls, of the sell amount (None: the value sent), of the minimum bought, batch or multi-hop)
_BATCH, _HOPS = "(uint8,uint256,bytes)[]", "(uint8,bytes)[]"
_MULTIPLEX: dict[str, tuple[list[str], int, int | None, int, bool]] = {
    selector(f"multiplexBatchSellTokenForToken(address,address,{_BATCH},uint256,uint256)"): (
        ["address", "address", _BATCH, "uint256", "uint256"], 2, 3, 4, True),
    selector(f"multiplexBatchSellEthForToken(address,{_BATCH},uint256)"): (
        ["address", _BATCH, "uint256"], 1, None, 2, True),
    selector(f"multiplexBatchSellTokenForEth(address,{_BATCH},uint256,uint256)"): (
        ["address", _BATCH, "uint256", "uint256"], 1, 2, 3, True),
    selector(f"multiplexMultiHopSellTokenForToken(address[],{_HOPS},uint256,uint256)"): (
        ["address[]", _HOPS, "uint256", "uint256"], 1, 2, 3, False),
    selector(f"multiplexMultiHopSellEthForToken(address[],{_HOPS},uint256)"): (
        ["address[]", _HOPS, "uint256"], 1, None, 2, False),
    selector(f"multiplexMultiHopSellTokenForEth(address[],{_HOPS},uint256,uint256)"): (
        ["address[]", _HOPS, "uint256", "uint256"], 1, 2, 3, False),
}  # fmt: skip
_ZX_UNISWAP_V2, _ZX_UNISWAP_V3 = 3, 4


def _bytes_array(payload: str, head_index: int) -> list[str]:
    start = word(payload, head_index) // 32
    count = word(payload, start)
    return [dynamic_bytes(payload, i, start + 1) for i in range(count)]


def _universal(payload: str) -> list[PendingSwap]:
    commands = dynamic_bytes(payload, 0)
    inputs = _bytes_array(payload, 1)
    swaps = []
    for i in range(0, len(commands), 2):
        command = int(commands[i : i + 2], 16) & 0x3F
        if i // 2 >= len(inputs):
            break
        data = inputs[i // 2]
        # (recipient, amountIn|amountOut, amountOutMin|amountInMax, path, payerIsUser)
        amount, limit, recipient = word(data, 1), word(data, 2), address_word(data, 0)
        if amount == _CONTRACT_BALANCE:
            continue
        if command in (0x00, 0x01):
            path, fees = _v3_path(dynamic_bytes(data, 3))
            if command == 0x01:
                path, fees = path[::-1], fees[::-1]
            swaps.append(PendingSwap("v3", command == 0x00, path, fees, amount, limit, recipient))
        elif command in (0x08, 0x09):
            swaps.append(
                PendingSwap("v2", command == 0x08, tuple(address_array(data, 3)), None, amount, limit, recipient)
            )
    return swaps


def decode_swaps(data: str, value: int = 0) -> list[PendingSwap]:
    """The swaps a router call asks for, in order; [] for anything else (or undecodable input)."""
    if len(data) < 10:
        return []
    sig, payload = data[:10].lower(), words(data)[8:]
    try:
        swaps = _decode(sig, payload, value)
    except (ValueError, IndexError, DecodingError):  # eth_abi's errors are not ValueErrors
        return []
    # Truncated call data reads as zeros past its end: keep only routes that name real tokens.
    return [s for s in swaps if len(s.path) >= 2 and all(len(t) == 42 and int(t, 16) for t in s.path)]


def _decode(sig: str, payload: str, value: int) -> list[PendingSwap]:
    v2 = _decode_v2_router(sig, payload, value)
    if v2 is not None:
        return [v2]
    if sig == _R02_V2_EXACT_IN:
        return [_v2(True, word(payload, 0), word(payload, 1), payload, 2, 3)]
    if sig == _R02_V2_EXACT_OUT:
        return [_v2(False, word(payload, 0), word(payload, 1), payload, 2, 3)]
    if sig == _V3_SINGLE_IN:
        return [_single(payload, True, True)]
    if sig == _V3_SINGLE_OUT:
        return [_single(payload, False, True)]
    if sig == _R02_SINGLE_IN:
        return [_single(payload, True, False)]
    if sig == _R02_SINGLE_OUT:
        return [_single(payload, False, False)]
    if sig == _V3_IN:
        return [_exact_input(payload, True)]
    if sig == _V3_OUT:
        return [_exact_output(payload, True)]
    if sig == _R02_IN:
        return [_exact_input(payload, False)]
    if sig == _R02_OUT:
        return [_exact_output(payload, False)]
    if sig in (_MULTICALL, _MULTICALL_DEADLINE, _MULTICALL_BLOCKHASH):
        head = 0 if sig == _MULTICALL else 1
        return [swap for call in _bytes_array(payload, head) for swap in decode_swaps("0x" + call, value)]
    if sig in (_UR_EXECUTE, _UR_EXECUTE_NO_DEADLINE):
        return _universal(payload)
    if sig in _MULTIPLEX:
        return _multiplex(sig, payload, value)
    return []


def _hop(kind: int, data: bytes) -> tuple[str, tuple[str, ...], tuple[int, ...] | None] | None:
    """One multiplex Uniswap subcall: (protocol, path, V3 fees); None for any other source or a SushiSwap pair."""
    if kind == _ZX_UNISWAP_V2:
        tokens, is_sushi = abi_decode(["address[]", "bool"], data)
        return None if is_sushi else ("v2", tuple(t.lower() for t in tokens), None)
    if kind == _ZX_UNISWAP_V3:
        path, fees = _v3_path(data.hex())
        return "v3", path, fees
    return None


def _multiplex(sig: str, payload: str, value: int) -> list[PendingSwap]:
    """A multiplex sell that is one exact-input Uniswap route: a batch of a single Uniswap subcall selling the
    whole amount, or a multi-hop whose hops are all Uniswap V2 or all Uniswap V3. Its minimum bought is then that
    route's limit exactly. Batches split over several sources (an RFQ order and a pair, say) are not decoded: the
    limit of each part depends on what the others pay. The proxy pays its caller (the transaction's sender), which
    the call data does not name: `recipient` is ""."""
    types, calls_i, amount_i, min_i, batch = _MULTIPLEX[sig]
    try:
        args = abi_decode(types, bytes.fromhex(payload))
    except (DecodingError, ValueError, OverflowError):
        return []
    amount, limit = (value if amount_i is None else args[amount_i]), args[min_i]
    if batch:
        if len(args[calls_i]) != 1:
            return []
        ((kind, sell, data),) = args[calls_i]
        hop = _hop(kind, data)
        if hop is None or sell != amount:
            return []
        protocol, path, fees = hop
        return [PendingSwap(protocol, True, path, fees, amount, limit, "")]
    tokens = tuple(t.lower() for t in args[0])
    hops = [_hop(kind, data) for kind, data in args[calls_i]]
    if not hops or len(hops) != len(tokens) - 1 or any(h is None for h in hops):
        return []
    protocols = {h[0] for h in hops if h is not None}
    if len(protocols) != 1:
        return []
    path: list[str] = [tokens[0]]
    fees: list[int] = []
    for i, (_protocol, hop_path, hop_fees) in enumerate(h for h in hops if h is not None):
        if hop_path[0] != tokens[i] or hop_path[-1] != tokens[i + 1]:
            return []
        path.extend(hop_path[1:])
        fees.extend(hop_fees or ())
    protocol = protocols.pop()
    return [PendingSwap(protocol, True, tuple(path), tuple(fees) if protocol == "v3" else None, amount, limit, "")]
