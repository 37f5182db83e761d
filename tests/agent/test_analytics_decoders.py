"""Decoders for protocols not deployed on anvil here (Aave, Compound, Balancer, Curve, 0x).

The logs and call data are built with eth_abi from the published event and function signatures, the
canonical encoding a node returns; a mistake in a decoder's field order or types fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from mevagent.analytics import classify_block
from mevagent.analytics.source import BlockInputError

BLOCK_HASH = "0x" + "ab" * 32
TX = "0x" + "cd" * 32
SENDER = "0x" + "10" * 20
L, U, C, D, M, Q = ("0x" + f"{n:02x}" * 20 for n in (0x11, 0x22, 0x33, 0x44, 0x55, 0x66))
POOL, TOKEN_A, TOKEN_B, VAULT = ("0x" + f"{n:02x}" * 20 for n in (0x77, 0x88, 0x99, 0xBA))


def event(address: str, signature: str, indexed: list[tuple[str, Any]], data: list[tuple[str, Any]]) -> dict[str, Any]:
    topics = ["0x" + keccak(text=signature).hex()]
    topics += ["0x" + encode([t], [v]).hex() for t, v in indexed]
    return {
        "address": address,
        "topics": topics,
        "data": "0x" + encode([t for t, _ in data], [v for _, v in data]).hex(),
    }


def transfer(token: str, sender: str, recipient: str, amount: int) -> dict[str, Any]:
    return event(
        token, "Transfer(address,address,uint256)", [("address", sender), ("address", recipient)], [("uint256", amount)]
    )


def block(logs: list[dict[str, Any]] | None = None, traces: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "block": {
            "number": "0x10",
            "hash": BLOCK_HASH,
            "miner": "0x" + "00" * 20,
            "baseFeePerGas": "0x0",
            "transactions": [{"hash": TX, "from": SENDER, "to": L}],
        }
    }
    if logs is not None:
        raw["receipts"] = [{"transactionHash": TX, "status": "0x1", "gasUsed": "0x1", "logs": logs}]
    if traces is not None:
        raw["traces"] = traces
    return raw


def call(
    sender: str, to: str, signature: str, types: list[str], values: list[Any], address: list[int]
) -> dict[str, Any]:
    data = "0x" + keccak(text=signature)[:4].hex() + encode(types, values).hex()
    return {
        "action": {"callType": "call", "from": sender, "to": to, "input": data, "value": "0x0", "gas": "0x1"},
        "result": {"gasUsed": "0x1", "output": "0x"},
        "subtraces": 0,
        "traceAddress": address,
        "transactionHash": TX,
        "transactionPosition": 0,
        "type": "call",
    }


def liquidation(**fields: Any) -> dict[str, Any]:
    return {"tx": TX, **fields}


def test_aave_v2_v3_liquidation_event() -> None:
    log = event(
        Q,
        "LiquidationCall(address,address,address,uint256,uint256,address,bool)",
        [("address", C), ("address", D), ("address", U)],
        [("uint256", 100), ("uint256", 55), ("address", L), ("bool", False)],
    )
    result = classify_block(block([log]))
    assert [x.model_dump(mode="json") for x in result.liquidations] == [
        {
            "tx": TX,
            "liquidator": L,
            "liquidated_user": U,
            "protocol": "aave",
            "debt_token": D,
            "debt_amount": "100",
            "collateral_token": C,
            "collateral_amount": "55",
        }
    ]


def test_compound_v2_and_v3_liquidation_events() -> None:
    compound = event(
        M,
        "LiquidateBorrow(address,address,uint256,address,uint256)",
        [],
        [("address", L), ("address", U), ("uint256", 100), ("address", C), ("uint256", 777)],
    )
    # Comet: collateral absorbed per asset first, then the debt.
    absorb = [
        event(
            Q,
            "AbsorbCollateral(address,address,address,uint256,uint256)",
            [("address", L), ("address", U), ("address", asset)],
            [("uint256", amount), ("uint256", 1)],
        )
        for asset, amount in ((C, 5), (D, 6))
    ]
    debt = event(
        Q,
        "AbsorbDebt(address,address,uint256,uint256)",
        [("address", L), ("address", U)],
        [("uint256", 900), ("uint256", 1)],
    )
    result = classify_block(block([compound, *absorb, debt]))
    rows = [
        (
            x.protocol,
            x.liquidator,
            x.liquidated_user,
            x.debt_token,
            x.debt_amount,
            x.collateral_token,
            x.collateral_amount,
        )
        for x in result.liquidations
    ]
    assert rows == [
        ("compound_v2", L, U, M, 100, C, 777),
        ("compound_v3", L, U, Q, 900, C, 5),
        ("compound_v3", L, U, Q, 0, D, 6),
    ]


def test_liquidations_from_traces() -> None:
    """Aave liquidationCall (amounts from the transfers inside it) and Compound liquidateBorrow + seize."""
    a_token = "0x" + "ac" * 20
    traces = [
        call(SENDER, L, "run()", [], [], []),
        call(
            L,
            Q,
            "liquidationCall(address,address,address,uint256,bool)",
            ["address", "address", "address", "uint256", "bool"],
            [C, D, U, 2**256 - 1, False],
            [0],
        ),
        call(
            Q, D, "transferFrom(address,address,uint256)", ["address", "address", "uint256"], [L, a_token, 100], [0, 0]
        ),
        call(a_token, C, "transfer(address,uint256)", ["address", "uint256"], [L, 55], [0, 1]),
        call(L, M, "liquidateBorrow(address,uint256,address)", ["address", "uint256", "address"], [U, 300, C], [1]),
        call(M, C, "seize(address,address,uint256)", ["address", "address", "uint256"], [L, U, 777], [1, 0]),
    ]
    result = classify_block(block(traces=traces))
    rows = [
        (
            x.protocol,
            x.liquidator,
            x.liquidated_user,
            x.debt_token,
            x.debt_amount,
            x.collateral_token,
            x.collateral_amount,
        )
        for x in result.liquidations
    ]
    assert rows == [("aave", L, U, D, 100, C, 55), ("compound_v2", L, U, M, 300, C, 777)]
    # The same liquidation under a reverted call is not a liquidation.
    traces[1] = {**traces[1], "error": "Reverted"}
    assert [x.protocol for x in classify_block(block(traces=traces)).liquidations] == ["compound_v2"]


def test_curve_balancer_and_0x_swaps() -> None:
    pool_id = bytes.fromhex(POOL[2:]) + bytes(12)
    logs = [
        transfer(TOKEN_A, SENDER, POOL, 10),
        transfer(TOKEN_B, POOL, SENDER, 9),
        event(
            POOL,
            "TokenExchange(address,int128,uint256,int128,uint256)",
            [("address", SENDER)],
            [("int128", 0), ("uint256", 10), ("int128", 1), ("uint256", 9)],
        ),
        event(
            VAULT,
            "Swap(bytes32,address,address,uint256,uint256)",
            [("bytes32", pool_id), ("address", TOKEN_B), ("address", TOKEN_A)],
            [("uint256", 9), ("uint256", 11)],
        ),
        event(
            "0x" + "de" * 20,
            "RfqOrderFilled(bytes32,address,address,address,address,uint128,uint128,bytes32)",
            [],
            [
                ("bytes32", bytes(32)),
                ("address", M),
                ("address", SENDER),
                ("address", TOKEN_B),
                ("address", TOKEN_A),
                ("uint128", 11),
                ("uint128", 12),
                ("bytes32", bytes(32)),
            ],
        ),
    ]
    result = classify_block(block(logs))
    rows = [(s.protocol, s.pool, s.sender, s.token_in, s.amount_in, s.token_out, s.amount_out) for s in result.swaps]
    assert rows == [
        ("curve", POOL, SENDER, TOKEN_A, 10, TOKEN_B, 9),
        ("balancer_v2", POOL, SENDER, TOKEN_B, 9, TOKEN_A, 11),
        ("0x", M, SENDER, TOKEN_A, 11, TOKEN_B, 12),
    ]
    # Curve A -> B then Balancer B -> A in one transaction close a cycle: an arbitrage of 1.
    assert [(a.profit_token, a.profit_amount, a.path) for a in result.arbitrages] == [
        (TOKEN_A, 1, [TOKEN_A, TOKEN_B, TOKEN_A])
    ]


def test_0x_fills_from_traces_equal_their_events() -> None:
    """0x V4 fills called on the Exchange Proxy (function signatures of its published IEthereum features):
    from traces, the same swaps as from their OrderFilled events; a fill under a reverted call is none."""
    proxy, sig = "0x" + "de" * 20, (2, 27, bytes(32), bytes(32))
    limit = "(address,address,uint128,uint128,uint128,address,address,address,address,bytes32,uint64,uint256)"
    rfq = "(address,address,uint128,uint128,address,address,address,bytes32,uint64,uint256)"
    otc = "(address,address,uint128,uint128,address,address,address,uint256)"

    def fill(name: str, order_type: str, order: tuple[Any, ...], amount: int, output: bytes, at: int) -> dict[str, Any]:
        signature = f"{name}({order_type},(uint8,uint8,bytes32,bytes32),uint128)"
        frame = call(L, proxy, signature, [order_type, "(uint8,uint8,bytes32,bytes32)", "uint128"],
                     [order, sig, amount], [at])  # fmt: skip
        return {**frame, "result": {"gasUsed": "0x1", "output": "0x" + output.hex()}}

    def filled(amounts: tuple[int, int]) -> bytes:
        return encode(["uint128", "uint128"], list(amounts))

    zero = "0x" + "00" * 20
    traces = [
        call(SENDER, L, "run()", [], [], []),
        fill("fillRfqOrder", rfq, (TOKEN_B, TOKEN_A, 24, 22, M, SENDER, SENDER, bytes(32), 1, 1), 22, filled((11, 12)),
             0),
        fill("fillOrKillLimitOrder", limit,
             (TOKEN_A, TOKEN_B, 40, 20, 0, D, zero, zero, zero, bytes(32), 1, 1), 20, encode(["uint128"], [40]), 1),
        fill("fillOtcOrder", otc, (TOKEN_B, TOKEN_A, 10, 10, C, SENDER, SENDER, 1), 3, filled((3, 3)), 2),
    ]  # fmt: skip
    traces[0]["subtraces"] = 3
    rows = [(s.protocol, s.pool, s.sender, s.token_in, s.amount_in, s.token_out, s.amount_out)
            for s in classify_block(block(traces=traces)).swaps]  # fmt: skip
    assert rows == [
        ("0x", M, L, TOKEN_A, 11, TOKEN_B, 12),
        ("0x", D, L, TOKEN_B, 20, TOKEN_A, 40),
        ("0x", C, L, TOKEN_A, 3, TOKEN_B, 3),
    ]
    # The RFQ fill's event, from logs: the same swap (its taker is the proxy's caller, L here).
    log = event(
        proxy,
        "RfqOrderFilled(bytes32,address,address,address,address,uint128,uint128,bytes32)",
        [],
        [("bytes32", bytes(32)), ("address", M), ("address", L), ("address", TOKEN_B), ("address", TOKEN_A),
         ("uint128", 11), ("uint128", 12), ("bytes32", bytes(32))],
    )  # fmt: skip
    (from_log,) = classify_block(block([log])).swaps
    assert (from_log.protocol, from_log.pool, from_log.sender, from_log.token_in, from_log.amount_in) == rows[0][:5]
    traces[1] = {**traces[1], "error": "Reverted"}
    assert len(classify_block(block(traces=traces)).swaps) == 2


def test_balancer_v1_swaps_from_traces_equal_their_events() -> None:
    """BPool swapExactAmountIn / swapExactAmountOut calls (the published BPool signatures): from traces, the same
    swaps as from their LOG_SWAP events (the caller trades and receives)."""

    def swap(name: str, args: list[Any], output: tuple[int, int], at: int) -> dict[str, Any]:
        types = ["address", "uint256", "address", "uint256", "uint256"]
        frame = call(L, POOL, f"{name}(address,uint256,address,uint256,uint256)", types, args, [at])
        return {
            **frame,
            "result": {"gasUsed": "0x1", "output": "0x" + encode(["uint256", "uint256"], list(output)).hex()},
        }

    traces = [
        {**call(SENDER, L, "run()", [], [], []), "subtraces": 2},
        swap("swapExactAmountIn", [TOKEN_A, 100, TOKEN_B, 90, 2**256 - 1], (95, 7), 0),
        swap("swapExactAmountOut", [TOKEN_B, 200, TOKEN_A, 101, 2**256 - 1], (96, 7), 1),
    ]
    logs = [
        event(POOL, "LOG_SWAP(address,address,address,uint256,uint256)",
              [("address", L), ("address", tin), ("address", tout)], [("uint256", a), ("uint256", b)])
        for tin, tout, a, b in ((TOKEN_A, TOKEN_B, 100, 95), (TOKEN_B, TOKEN_A, 96, 101))
    ]  # fmt: skip
    from_traces, from_logs = classify_block(block(traces=traces)), classify_block(block(logs))
    rows = [(s.protocol, s.pool, s.sender, s.recipient, s.token_in, s.amount_in, s.token_out, s.amount_out)
            for s in from_traces.swaps]  # fmt: skip
    assert rows == [
        ("balancer_v1", POOL, L, L, TOKEN_A, 100, TOKEN_B, 95),
        ("balancer_v1", POOL, L, L, TOKEN_B, 96, TOKEN_A, 101),
    ]
    assert [s.model_dump() for s in from_traces.swaps] == [s.model_dump() for s in from_logs.swaps]
    # A -> B -> A through the pool, one transaction: an arbitrage of 1 either way.
    assert [(a.profit_amount, a.path) for a in from_traces.arbitrages] == [(1, [TOKEN_A, TOKEN_B, TOKEN_A])]


def test_bad_input_names_the_field() -> None:
    with pytest.raises(BlockInputError, match=r"block.transactions\[0\]: expected full transaction objects"):
        classify_block({"block": {**block()["block"], "transactions": [TX]}})
    with pytest.raises(BlockInputError, match=r"receipts\[0\].transactionHash: not a transaction of this block"):
        classify_block({**block([]), "receipts": [{"transactionHash": "0x" + "00" * 32, "logs": []}]})
    with pytest.raises(BlockInputError, match=r"block: missing"):
        classify_block({"receipts": []})


def test_malformed_logs_and_traces_name_the_field() -> None:
    raw = block([transfer(TOKEN_A, SENDER, POOL, 1)])
    raw["receipts"][0]["logs"][0]["topics"] = "0xdead"
    with pytest.raises(BlockInputError, match=r"receipts\[0\].logs\[0\].topics: expected a list of hex strings"):
        classify_block(raw)
    raw["receipts"][0]["logs"] = ["not a log"]
    with pytest.raises(BlockInputError, match=r"receipts\[0\].logs\[0\]: expected an object"):
        classify_block(raw)
    with pytest.raises(BlockInputError, match=r"traces\[0\]: expected an object"):
        classify_block(block(traces=["0x"]))
    bad_position = call(SENDER, L, "run()", [], [], [])
    bad_position["transactionPosition"] = 5
    with pytest.raises(BlockInputError, match=r"traces\[0\].transactionPosition: 5 is not a transaction"):
        classify_block(block(traces=[bad_position]))
