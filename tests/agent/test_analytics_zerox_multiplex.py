"""0x Exchange Proxy multiplex trades from traces, with call data built from the published IZeroEx ABI
(`@0x/contract-artifacts`, pinned in package.json): no 0x deployment here, so each transaction's Parity frames
are laid out as the proxy's features make them (MultiplexFeature: a delegate call into the feature, each
Uniswap V2 subcall a transfer into the pair and the pair's own `swap`; each RFQ/OTC subcall the proxy calling
itself, `_fillRfqOrder(order, signature, amount, taker, useSelfBalance, recipient)`, and the two transfers of
the settlement). A sandwich whose victim trades through `multiplexBatchSellTokenForToken` (an RFQ order and the
attacked pair) or `multiplexMultiHopSellTokenForToken` (the attacked pair, then another) is the same sandwich,
with the same profit, as when the victim swaps directly through Uniswap's Router02; the RFQ fill made inside the
multiplex is the swap its `RfqOrderFilled` event gives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from mevagent.analytics import classify_block
from mevagent.analytics.decode_traces import ZEROX_FILLS
from mevagent.analytics.models import Sandwich
from mevagent.analytics.routers import PendingSwap, decode_swaps
from testbed.evm import NODE_MODULES

ARTIFACT = NODE_MODULES / "@0x" / "contract-artifacts" / "lib" / "artifacts" / "IZeroEx.json"
if not ARTIFACT.is_file():
    pytest.skip("@0x/contract-artifacts is missing: run `npm ci` (deploy/bootstrap.sh)", allow_module_level=True)
ZEROX_ABI = json.loads(ARTIFACT.read_text())["compilerOutput"]["abi"]
ZEROX = Web3().eth.contract(abi=ZEROX_ABI)
A, B, C = ("0x" + f"{n:02x}" * 20 for n in (0x11, 0x22, 0x33))  # token0 < token1 in every pair
PAIR_AB, PAIR_BC = "0x" + "ab" * 20, "0x" + "bc" * 20
PROXY, MULTIPLEX, NATIVE_ORDERS = "0x" + "de" * 20, "0x" + "d1" * 20, "0x" + "d2" * 20  # proxy and two features
# transformERC20: its feature, the flash wallet the proxy runs transformers in, two transformers, a bridge adapter
TRANSFORM_FEATURE, FLASH_WALLET = "0x" + "d3" * 20, "0x" + "f1" * 20
FILL_QUOTE, PAY_TAKER, BRIDGE_ADAPTER = "0x" + "f2" * 20, "0x" + "f3" * 20, "0x" + "f4" * 20
ROUTER, SEARCHER, BOT, VICTIM, MAKER = ("0x" + f"{n:02x}" * 20 for n in (0x72, 0x5E, 0xB0, 0x71, 0x3A))
HASHES = ["0x" + f"{n:064x}" for n in (1, 2, 3)]
RFQ_ORDER = "(address,address,uint128,uint128,address,address,address,bytes32,uint64,uint256)"
SIGNATURE = "(uint8,uint8,bytes32,bytes32)"
SIG = (2, 27, b"\x01" * 32, b"\x02" * 32)
UNISWAP_V2, RFQ = 3, 1  # IMultiplexFeature.MultiplexSubcall
V3_PARAMS = "(bytes,address,uint256,uint256,uint256)"  # SwapRouter's ExactInputParams


def checksum(address: str) -> str:
    return Web3.to_checksum_address(address)


def calldata(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + keccak(text=signature)[:4].hex() + encode(types, values).hex()


@dataclass
class Call:
    sender: str
    to: str
    input: str
    output: str = "0x"
    kind: str = "call"
    children: list[Call] = field(default_factory=list)


def flat(index: int, root: Call) -> list[dict[str, Any]]:
    """Parity flat traces (trace_block) of one transaction's call tree, depth first."""
    out: list[dict[str, Any]] = []

    def walk(call: Call, address: list[int]) -> None:
        out.append(
            {
                "action": {"callType": call.kind, "from": call.sender, "to": call.to, "input": call.input,
                           "value": "0x0", "gas": "0x1"},
                "result": {"gasUsed": "0x1", "output": call.output},
                "subtraces": len(call.children), "traceAddress": address, "transactionHash": HASHES[index],
                "transactionPosition": index, "type": "call",
            }
        )  # fmt: skip
        for i, child in enumerate(call.children):
            walk(child, [*address, i])

    walk(root, [])
    return out


def transfer(caller: str, token: str, to: str, amount: int) -> Call:
    data = calldata("transfer(address,uint256)", ["address", "uint256"], [to, amount])
    return Call(caller, token, data, "0x" + encode(["bool"], [True]).hex())


def transfer_from(caller: str, token: str, owner: str, to: str, amount: int) -> Call:
    data = calldata("transferFrom(address,address,uint256)", ["address", "address", "uint256"], [owner, to, amount])
    return Call(caller, token, data, "0x" + encode(["bool"], [True]).hex())


class Pair:
    """A Uniswap V2 pair's reserves and what its `swap` frames look like (0.3 % fee, as the pair computes)."""

    def __init__(self, address: str, token0: str, token1: str, reserve0: int, reserve1: int) -> None:
        self.address, self.tokens, self.reserves = address, (token0, token1), [reserve0, reserve1]

    def swap(self, caller: str, token_in: str, amount_in: int, to: str) -> tuple[Call, int]:
        i = self.tokens.index(token_in)
        r_in, r_out = self.reserves[i], self.reserves[1 - i]
        out = amount_in * 997 * r_out // (r_in * 1000 + amount_in * 997)
        self.reserves[i] += amount_in
        self.reserves[1 - i] -= out
        outs = [0, 0]
        outs[1 - i] = out
        data = calldata(
            "swap(uint256,uint256,address,bytes)", ["uint256", "uint256", "address", "bytes"], [*outs, to, b""]
        )
        return Call(caller, self.address, data, children=[transfer(self.address, self.tokens[1 - i], to, out)]), out

    def reserves_call(self, caller: str) -> Call:
        output = "0x" + encode(["uint112", "uint112", "uint32"], [*self.reserves, 1]).hex()
        return Call(caller, self.address, "0x0902f1ac", output, kind="staticcall")


@dataclass
class Expected:
    frontrun_in: int
    backrun_out: int


FRONT, VICTIM_AMOUNT, RFQ_AMOUNT, RFQ_MAKER_AMOUNT = 60 * 10**18, 100 * 10**18, 7 * 10**18, 6 * 10**18


def rfq_order() -> tuple[Any, ...]:
    return (checksum(B), checksum(A), RFQ_MAKER_AMOUNT, RFQ_AMOUNT, checksum(MAKER), checksum(VICTIM),
            checksum(VICTIM), b"\x00" * 32, 2**40, 7)  # fmt: skip


def multiplex_batch(pair: Pair, pair_bc: Pair) -> Call:
    """The victim's multiplexBatchSellTokenForToken(A, B, [RFQ order, Uniswap V2 A->B], ...) as the proxy runs it."""
    uniswap = encode(["address[]", "bool"], [[checksum(A), checksum(B)], False])
    rfq = encode([RFQ_ORDER, SIGNATURE], [rfq_order(), SIG])  # the multiplex's RFQ subcall data: (order, signature)
    data = ZEROX.encode_abi(
        "multiplexBatchSellTokenForToken",
        args=[checksum(A), checksum(B), [(RFQ, RFQ_AMOUNT, rfq), (UNISWAP_V2, VICTIM_AMOUNT, uniswap)],
              RFQ_AMOUNT + VICTIM_AMOUNT, 1],
    )  # fmt: skip
    fill = ZEROX.encode_abi("_fillRfqOrder", args=[rfq_order(), SIG, RFQ_AMOUNT, checksum(VICTIM), False,
                                                    checksum(VICTIM)])  # fmt: skip
    filled = "0x" + encode(["uint128", "uint128"], [RFQ_AMOUNT, RFQ_MAKER_AMOUNT]).hex()
    settle = [
        transfer_from(PROXY, A, VICTIM, MAKER, RFQ_AMOUNT),
        transfer_from(PROXY, B, MAKER, VICTIM, RFQ_MAKER_AMOUNT),
    ]
    self_call = Call(
        PROXY, PROXY, fill, filled, children=[Call(PROXY, NATIVE_ORDERS, fill, filled, "delegatecall", settle)]
    )
    reserves = pair.reserves_call(PROXY)
    swap, out = pair.swap(PROXY, A, VICTIM_AMOUNT, VICTIM)
    # Uniswap V2 subcalls run in a delegate call of the feature to itself (a failed one rolls back alone); its
    # input is not read.
    uniswap_leg = Call(PROXY, MULTIPLEX, "0x00000001", kind="delegatecall",
                       children=[transfer_from(PROXY, A, VICTIM, PAIR_AB, VICTIM_AMOUNT), reserves, swap])  # fmt: skip
    bought = "0x" + encode(["uint256"], [RFQ_MAKER_AMOUNT + out]).hex()
    feature = Call(PROXY, MULTIPLEX, data, bought, "delegatecall", [self_call, uniswap_leg])
    return Call(VICTIM, PROXY, data, bought, children=[feature])


def open_rfq_order() -> tuple[Any, ...]:
    """The RFQ order a FillQuoteTransformer fills: any taker (the flash wallet calls), the victim as tx.origin."""
    return (checksum(B), checksum(A), RFQ_MAKER_AMOUNT, RFQ_AMOUNT, checksum(MAKER), "0x" + "00" * 20,
            checksum(VICTIM), b"\x00" * 32, 2**40, 8)  # fmt: skip


def transform_erc20(pair: Pair, pair_bc: Pair) -> Call:
    """The victim's transformERC20(A, B, ...) as the proxy runs it: the feature moves the A into the flash wallet,
    which runs the FillQuoteTransformer (an RFQ order filled by calling the proxy's fillRfqOrder, and a Uniswap V2
    bridge order through the bridge adapter, which calls Router02 with the flash wallet as recipient), then the
    PayTakerTransformer, which pays the victim. The transformers' own call data is not read."""
    total = RFQ_AMOUNT + VICTIM_AMOUNT
    data = ZEROX.encode_abi("transformERC20", args=[checksum(A), checksum(B), total, 1, [(1, b"\x01"), (2, b"\x02")]])
    fill = ZEROX.encode_abi("fillRfqOrder", args=[open_rfq_order(), SIG, RFQ_AMOUNT])
    filled = "0x" + encode(["uint128", "uint128"], [RFQ_AMOUNT, RFQ_MAKER_AMOUNT]).hex()
    settle = [
        transfer_from(PROXY, A, FLASH_WALLET, MAKER, RFQ_AMOUNT),
        transfer_from(PROXY, B, MAKER, FLASH_WALLET, RFQ_MAKER_AMOUNT),
    ]
    rfq = Call(FLASH_WALLET, PROXY, fill, filled, children=[Call(PROXY, NATIVE_ORDERS, fill, filled, "delegatecall",
                                                                 settle)])  # fmt: skip
    types = ["uint256", "uint256", "address[]", "address", "uint256"]
    router_data = calldata(
        f"swapExactTokensForTokens({','.join(types)})", types, [VICTIM_AMOUNT, 1, [A, B], FLASH_WALLET, 2**40]
    )
    swap, out = pair.swap(ROUTER, A, VICTIM_AMOUNT, FLASH_WALLET)
    via_router = Call(FLASH_WALLET, ROUTER, router_data,
                      children=[transfer_from(ROUTER, A, FLASH_WALLET, PAIR_AB, VICTIM_AMOUNT), swap])  # fmt: skip
    bridge = Call(FLASH_WALLET, BRIDGE_ADAPTER, "0x00000002", kind="delegatecall", children=[via_router])
    fill_quote = Call(PROXY, FLASH_WALLET, "0x00000003",
                      children=[Call(FLASH_WALLET, FILL_QUOTE, "0x00000004", kind="delegatecall",
                                     children=[rfq, bridge])])  # fmt: skip
    pay = Call(PROXY, FLASH_WALLET, "0x00000003",
               children=[Call(FLASH_WALLET, PAY_TAKER, "0x00000005", kind="delegatecall",
                              children=[transfer(FLASH_WALLET, B, VICTIM, RFQ_MAKER_AMOUNT + out)])])  # fmt: skip
    bought = "0x" + encode(["uint256"], [RFQ_MAKER_AMOUNT + out]).hex()
    feature = Call(PROXY, TRANSFORM_FEATURE, data, bought, "delegatecall",
                   [transfer_from(PROXY, A, VICTIM, FLASH_WALLET, total), fill_quote, pay])  # fmt: skip
    return Call(VICTIM, PROXY, data, bought, children=[feature])


def multiplex_multihop(pair: Pair, pair_bc: Pair) -> Call:
    """The victim's multiplexMultiHopSellTokenForToken([A, B, C], [Uniswap V2 A->B, Uniswap V2 B->C], ...)."""
    calls = [
        (UNISWAP_V2, encode(["address[]", "bool"], [[checksum(x), checksum(y)], False])) for x, y in ((A, B), (B, C))
    ]
    data = ZEROX.encode_abi(
        "multiplexMultiHopSellTokenForToken", args=[[checksum(A), checksum(B), checksum(C)], calls, VICTIM_AMOUNT, 1]
    )
    first, middle = pair.swap(PROXY, A, VICTIM_AMOUNT, PAIR_BC)  # the pair pays the next hop's pair
    second, out = pair_bc.swap(PROXY, B, middle, VICTIM)
    children = [transfer_from(PROXY, A, VICTIM, PAIR_AB, VICTIM_AMOUNT), pair.reserves_call(PROXY), first,
                pair_bc.reserves_call(PROXY), second]  # fmt: skip
    bought = "0x" + encode(["uint256"], [out]).hex()
    return Call(VICTIM, PROXY, data, bought, children=[Call(PROXY, MULTIPLEX, data, bought, "delegatecall", children)])


def router_direct(pair: Pair, pair_bc: Pair, path: list[str]) -> Call:
    """The same trade straight through Uniswap's Router02 (swapExactTokensForTokens)."""
    types = ["uint256", "uint256", "address[]", "address", "uint256"]
    data = calldata(f"swapExactTokensForTokens({','.join(types)})", types, [VICTIM_AMOUNT, 1, path, VICTIM, 2**40])
    children = [transfer_from(ROUTER, A, VICTIM, PAIR_AB, VICTIM_AMOUNT)]
    if path == [A, B]:
        children.append(pair.swap(ROUTER, A, VICTIM_AMOUNT, VICTIM)[0])
    else:
        swap, middle = pair.swap(ROUTER, A, VICTIM_AMOUNT, PAIR_BC)
        children += [swap, pair_bc.swap(ROUTER, B, middle, VICTIM)[0]]
    return Call(VICTIM, ROUTER, data, children=children)


def sandwich_block(victim: Any) -> tuple[dict[str, Any], Expected]:
    """The searcher's bot buys B with A on the pair, the victim's trade, the bot sells the B back."""
    pair = Pair(PAIR_AB, A, B, 1000 * 10**18, 1000 * 10**18)
    pair_bc = Pair(PAIR_BC, B, C, 500 * 10**18, 2000 * 10**18)
    run = calldata("run()", [], [])
    swap, bought = pair.swap(BOT, A, FRONT, BOT)
    front = Call(SEARCHER, BOT, run, children=[transfer(BOT, A, PAIR_AB, FRONT), swap])
    middle = victim(pair, pair_bc)
    swap, sold = pair.swap(BOT, B, bought, BOT)
    back = Call(SEARCHER, BOT, run, children=[transfer(BOT, B, PAIR_AB, bought), swap])
    senders = [(SEARCHER, BOT), (VICTIM, middle.to), (SEARCHER, BOT)]
    raw = {
        "block": {
            "number": "0x10", "hash": "0x" + "ee" * 32, "miner": "0x" + "00" * 20, "baseFeePerGas": "0x0",
            "transactions": [{"hash": h, "from": f, "to": t} for h, (f, t) in zip(HASHES, senders, strict=True)],
        },
        "traces": [*flat(0, front), *flat(1, middle), *flat(2, back)],
    }  # fmt: skip
    return raw, Expected(FRONT, sold)


def test_a_victim_trading_through_the_multiplex_is_sandwiched_with_the_numbers_of_a_direct_swap() -> None:
    variants = {
        "router A->B": lambda p, q: router_direct(p, q, [A, B]),
        "multiplexBatchSellTokenForToken (RFQ + pair)": multiplex_batch,
        "transformERC20 (RFQ + bridge to the pair)": transform_erc20,
        "router A->B->C": lambda p, q: router_direct(p, q, [A, B, C]),
        "multiplexMultiHopSellTokenForToken": multiplex_multihop,
    }
    found = {}
    for name, victim in variants.items():
        raw, expected = sandwich_block(victim)
        result = classify_block(raw)
        assert result.unresolved_swaps == 0, name
        found[name] = result.sandwiches
        assert result.sandwiches == [
            Sandwich(frontrun_tx=HASHES[0], backrun_tx=HASHES[2], victim_txs=[HASHES[1]], sandwicher=BOT,
                     profit_token=A, profit_amount=expected.backrun_out - expected.frontrun_in)
        ], name  # fmt: skip
        assert expected.backrun_out > expected.frontrun_in  # the victim's trade paid the bot
        victim_swaps = [s for s in result.swaps if s.tx == HASHES[1] and s.pool == PAIR_AB]
        recipient = PAIR_BC if "B->C" in name or "MultiHop" in name else FLASH_WALLET if "transform" in name else VICTIM
        assert [(s.token_in, s.amount_in, s.recipient) for s in victim_swaps] == [(A, VICTIM_AMOUNT, recipient)], name
    assert found["router A->B"] == found["multiplexBatchSellTokenForToken (RFQ + pair)"]
    assert found["router A->B"] == found["transformERC20 (RFQ + bridge to the pair)"]
    assert found["router A->B->C"] == found["multiplexMultiHopSellTokenForToken"]


def assert_rfq_fill_is_the_event_swap(victim: Any, taker: str) -> dict[str, Any]:
    """The victim's RFQ fill read from traces is the swap its RfqOrderFilled event gives, `taker` its sender and
    recipient; the block's classification from traces."""
    raw, _ = sandwich_block(victim)
    result = classify_block(raw)
    (from_traces,) = [s for s in result.swaps if s.protocol == "0x"]
    # The RfqOrderFilled event the proxy emits for it: (orderHash, maker, taker, makerToken, takerToken,
    # takerTokenFilledAmount, makerTokenFilledAmount, pool), all in data.
    values = [b"\x00" * 32, MAKER, taker, B, A, RFQ_AMOUNT, RFQ_MAKER_AMOUNT, b"\x00" * 32]
    types = ["bytes32", "address", "address", "address", "address", "uint128", "uint128", "bytes32"]
    log = {
        "address": PROXY,
        "topics": ["0x" + keccak(text=f"RfqOrderFilled({','.join(types)})").hex()],
        "data": "0x" + encode(types, values).hex(),
    }
    logs_only = {
        "block": {**raw["block"], "transactions": [raw["block"]["transactions"][1]]},
        "receipts": [{"transactionHash": HASHES[1], "status": "0x1", "gasUsed": "0x1", "logs": [log]}],
    }
    (from_log,) = classify_block(logs_only).swaps
    fields = ("pool", "protocol", "sender", "recipient", "token_in", "amount_in", "token_out", "amount_out")
    assert [getattr(from_traces, f) for f in fields] == [getattr(from_log, f) for f in fields] == [
        MAKER, "0x", taker, taker, A, RFQ_AMOUNT, B, RFQ_MAKER_AMOUNT
    ]  # fmt: skip
    return {"swaps": result.swaps, "arbitrages": result.arbitrages}


def test_an_rfq_fill_inside_the_multiplex_is_the_swap_its_event_gives() -> None:
    assert_rfq_fill_is_the_event_swap(multiplex_batch, VICTIM)


def test_an_rfq_fill_by_the_fill_quote_transformer_is_the_swap_its_event_gives() -> None:
    """Inside transformERC20 the flash wallet fills the order by calling the proxy: the taker (sender and
    recipient of the swap) is the flash wallet, as the proxy's RfqOrderFilled event says; nothing else in
    the transformers' frames is read as a swap or an arbitrage."""
    result = assert_rfq_fill_is_the_event_swap(transform_erc20, FLASH_WALLET)
    assert [s.pool for s in result["swaps"] if s.tx == HASHES[1]] == [MAKER, PAIR_AB]
    assert not [a for a in result["arbitrages"] if a.tx == HASHES[1]]


def test_every_fill_function_of_the_published_abi_is_decoded() -> None:
    """The selectors the trace decoder knows are those of IZeroEx's fill functions (the public ones and the ones
    the batch and multiplex features call on the proxy itself), computed from the published ABI."""

    def signature(item: dict[str, Any]) -> str:
        def kind(i: dict[str, Any]) -> str:
            if i["type"].startswith("tuple"):
                return "(" + ",".join(kind(c) for c in i["components"]) + ")" + i["type"][5:]
            return str(i["type"])

        return f"{item['name']}({','.join(kind(i) for i in item['inputs'])})"

    names = {"fillLimitOrder", "fillOrKillLimitOrder", "fillRfqOrder", "fillOrKillRfqOrder", "fillOtcOrder",
             "_fillLimitOrder", "_fillRfqOrder", "_fillOtcOrder"}  # fmt: skip
    published = {
        signature(f): "0x" + keccak(text=signature(f))[:4].hex()
        for f in ZEROX_ABI
        if f.get("type") == "function" and f["name"] in names
    }
    assert len(published) == len(names)
    assert {s: sel in ZEROX_FILLS for s, sel in published.items()} == dict.fromkeys(published, True)


def test_pending_multiplex_sells_of_one_uniswap_route_decode_as_that_route() -> None:
    """The sandwich detector's decoding of pending calls to the proxy: a multiplex sell that is one Uniswap route
    is the swap Router02 / SwapRouter would make of it (the score reads no recipient); split or other sources: none."""
    a, b, c = (checksum(t) for t in (A, B, C))
    amount, least = 10**18, 99
    v2, v3 = UNISWAP_V2, 4

    def zx(name: str, *args: Any) -> str:
        return str(ZEROX.encode_abi(name, args=list(args)))

    def uniswap(*tokens: str, sushi: bool = False) -> bytes:
        return encode(["address[]", "bool"], [list(tokens), sushi])

    def packed(*parts: str | int) -> bytes:  # a V3 path: token, fee, token...
        return b"".join(bytes.fromhex(x[2:]) if isinstance(x, str) else x.to_bytes(3, "big") for x in parts)

    def router(*path: str) -> str:  # Router02's swapExactTokensForTokens of the same trade
        types = ["uint256", "uint256", "address[]", "address", "uint256"]
        return calldata(f"swapExactTokensForTokens({','.join(types)})", types, [amount, least, list(path), VICTIM, 1])

    def without_recipient(data: str) -> list[PendingSwap]:
        return [replace(s, recipient="") for s in decode_swaps(data)]

    batch = zx("multiplexBatchSellTokenForToken", a, b, [(v2, amount, uniswap(a, b))], amount, least)
    expected = [PendingSwap("v2", True, (A, B), None, amount, least, "")]
    assert decode_swaps(batch) == without_recipient(router(a, b)) == expected
    hops = zx(
        "multiplexMultiHopSellTokenForToken", [a, b, c], [(v2, uniswap(a, b)), (v2, uniswap(b, c))], amount, least
    )
    assert decode_swaps(hops) == without_recipient(router(a, b, c)) and len(decode_swaps(hops)) == 1
    # Uniswap V3 hops: the packed paths joined, as SwapRouter's exactInput of the whole path.
    v3_hops = zx("multiplexMultiHopSellTokenForToken", [a, b, c], [(v3, packed(A, 500, B)), (v3, packed(B, 3000, C))],
                 amount, least)  # fmt: skip
    exact_input = calldata(f"exactInput({V3_PARAMS})", [V3_PARAMS], [(packed(A, 500, B, 3000, C), VICTIM, 1, amount,
                                                                      least)])  # fmt: skip
    expected = [PendingSwap("v3", True, (A, B, C), (500, 3000), amount, least, "")]
    assert decode_swaps(v3_hops) == without_recipient(exact_input) == expected
    # Selling ETH: the amount is the value sent, the path starts at the wrapped token the subcall names.
    eth = zx("multiplexBatchSellEthForToken", b, [(v2, amount, uniswap(a, b))], least)
    assert decode_swaps(eth, amount) == [PendingSwap("v2", True, (A, B), None, amount, least, "")]
    # Not one route: split with an RFQ order, a SushiSwap pair, a partial sell, V2 then V3, truncated.
    rfq = encode([RFQ_ORDER, SIGNATURE], [rfq_order(), SIG])
    split = zx("multiplexBatchSellTokenForToken", a, b, [(RFQ, 1, rfq), (v2, amount - 1, uniswap(a, b))], amount, least)
    sushi = zx("multiplexBatchSellTokenForToken", a, b, [(v2, amount, uniswap(a, b, sushi=True))], amount, least)
    partial = zx("multiplexBatchSellTokenForToken", a, b, [(v2, amount - 1, uniswap(a, b))], amount, least)
    mixed = zx("multiplexMultiHopSellTokenForToken", [a, b, c], [(v2, uniswap(a, b)), (v3, packed(B, 3000, C))],
               amount, least)  # fmt: skip
    assert [decode_swaps(x) for x in (split, sushi, partial, mixed, batch[:100])] == [[]] * 5
    # A Uniswap subcall whose own data is not its ABI (anyone can send such a pending call): no swap, no raise.
    garbage = zx("multiplexBatchSellTokenForToken", a, b, [(v2, amount, b"\x01" * 7)], amount, least)
    assert decode_swaps(garbage) == []
