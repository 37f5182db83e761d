"""Replace/cancel of a stuck transaction, the pure parts: the fee bump and the gate's check_replacement
(the whole path on anvil: tests/agent/control/test_stuck_anvil.py)."""

from pathlib import Path

from mevagent.config import GWEI
from mevagent.executor.replace import bumped, replacement_fee, replacement_tx
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
