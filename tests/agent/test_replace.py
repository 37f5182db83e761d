"""Replace/cancel of a stuck transaction, the pure parts: the fee bump and the gate's check_replacement
(the whole path on anvil: tests/agent/control/test_stuck_anvil.py)."""

import asyncio
from pathlib import Path
from typing import Any

from mevagent.config import GWEI
from mevagent.executor.replace import Settled, bumped, follow, replacement_fee, replacement_tx
from mevagent.risk import RiskGate

from .test_risk_gate import Clock, make_gate

SENDER = "0x" + "11" * 20
TARGET = "0x" + "22" * 20


def original(**fields: str) -> dict[str, str]:
    return {"from": SENDER, "to": TARGET, "nonce": "0x7", "gas": "0x30d40", "value": "0x5", "input": "0xabcd",
            "maxFeePerGas": hex(10 * GWEI), "maxPriorityFeePerGas": hex(GWEI), **fields}  # fmt: skip


def test_a_bump_is_at_least_ten_percent_and_one_wei_and_held_to_the_cap_only_above_the_minimum() -> None:
    assert bumped(0, 12.5) == 1 and bumped(100, 10) == 110 and bumped(101, 10) == 112  # rounded up
    assert replacement_fee(10 * GWEI, 50, 12 * GWEI) == 12 * GWEI  # the cap holds a larger bump back
    assert replacement_fee(10 * GWEI, 50, 10 * GWEI) == 11 * GWEI  # never below the nodes' minimum


def test_replace_keeps_the_call_and_cancel_sends_nothing_to_itself_at_the_same_nonce() -> None:
    tx = replacement_tx(original(), "replace", 20, 100 * GWEI, 1)
    assert (tx["nonce"], tx["value"], tx["data"], tx["gas"]) == (7, 5, bytes.fromhex("abcd"), 200_000)
    assert (
        tx["to"].lower() == TARGET and tx["maxFeePerGas"] == 12 * GWEI and tx["maxPriorityFeePerGas"] == GWEI * 6 // 5
    )
    cancel = replacement_tx(original(), "cancel", 12.5, 100 * GWEI, 1)
    assert cancel["to"].lower() == SENDER and cancel["value"] == 0 and cancel["data"] == b""
    assert cancel["nonce"] == 7 and cancel["gas"] == 21_000
    legacy = replacement_tx(original(maxFeePerGas=None, gasPrice=hex(GWEI)), "cancel", 10, 100 * GWEI, 1)  # type: ignore[arg-type]
    assert legacy["gasPrice"] == GWEI * 11 // 10 and "type" not in legacy


def test_the_gate_refuses_a_replace_under_an_emergency_stop_but_allows_a_cancel(tmp_path: Path) -> None:
    gate: RiskGate = make_gate(tmp_path, Clock())
    assert gate.check_replacement("ethereum", "replace", 50 * GWEI).allowed
    gate.emergency_stop("test")
    assert gate.check_replacement("ethereum", "replace", 50 * GWEI).reason.startswith("emergency_stop:")
    assert gate.check_replacement("ethereum", "cancel", 50 * GWEI).allowed
    assert gate.check_replacement("ethereum", "cancel", 101 * GWEI).reason.startswith("max_gas_price:")
    assert gate.check_replacement("solana", "cancel", 1).reason.startswith("chain:")


class _Node:
    """A node whose answers the test scripts: receipts by hash, the sender's used nonces, a failure."""

    def __init__(self, receipts: dict[str, dict[str, str]], used: list[int], fail_first: bool = False) -> None:
        self.receipts, self.used, self.fail_first = receipts, used, fail_first
        self.calls = 0

    async def call(self, method: str, params: Any = ()) -> Any:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise ConnectionError("node away")
        if method == "eth_getTransactionReceipt":
            return self.receipts.get(params[0])
        assert method == "eth_getTransactionCount" and params == [SENDER, "latest"]
        return hex(self.used.pop(0) if len(self.used) > 1 else self.used[0])


class _Executor:
    def __init__(self, node: _Node) -> None:
        self.rpc, self.address = node, SENDER


def test_a_replacement_is_followed_to_its_receipt_or_to_the_transaction_that_took_its_nonce() -> None:
    new = "0x" + "ab" * 32
    landed = _Node({new: {"status": "0x1", "blockNumber": "0x2a"}}, [7], fail_first=True)  # a node error: asked again
    assert asyncio.run(follow(_Executor(landed), new, 7, poll_s=0.001)) == Settled("landed", 42)
    reverted = _Node({new: {"status": "0x0", "blockNumber": "0x2b"}}, [7])
    assert asyncio.run(follow(_Executor(reverted), new, 7, poll_s=0.001)) == Settled("reverted", 43)
    # Pending for two polls, then the nonce is used and the replacement has no receipt: the original won.
    superseded = _Node({}, [7, 7, 8])
    assert asyncio.run(follow(_Executor(superseded), new, 7, poll_s=0.001)) == Settled("superseded")
    waiting = _Node({}, [7])
    assert asyncio.run(follow(_Executor(waiting), new, 7, poll_s=0.001, timeout_s=0.01)) is None
