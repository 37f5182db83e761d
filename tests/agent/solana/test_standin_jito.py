"""The simulator's Jito block-engine API: atomic bundles executed for real in LiteSVM."""

from __future__ import annotations

import base64
import hashlib
import time

import orjson
import pytest
import urllib3
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from testbed.solana.standin import RunningStandIn, start_standin

SOL = 1_000_000_000


def engine(standin: RunningStandIn, method: str, *params: object) -> tuple[int, dict]:
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    answer = urllib3.request("POST", standin.block_engine, body=body, headers={"Content-Type": "application/json"})
    return answer.status, orjson.loads(answer.data)


def tx(payer: Keypair, ixs: list[Instruction], blockhash: Hash) -> VersionedTransaction:
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], blockhash), [payer])


def pay(payer: Keypair, to: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))


def encode(txs: list[VersionedTransaction]) -> list[str]:
    return [base64.b64encode(bytes(t)).decode() for t in txs]


def wait_status(standin: RunningStandIn, bid: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, answer = engine(standin, "getInflightBundleStatuses", [bid])
        status = answer["result"]["value"][0]
        if status["status"] != "Pending":
            return status
        time.sleep(0.05)
    raise AssertionError(f"bundle {bid} still pending")


@pytest.fixture
def world(standin: RunningStandIn):
    payer, dest = Keypair(), Keypair().pubkey()
    standin.call("requestAirdrop", str(payer.pubkey()), 10 * SOL)
    tips = [Pubkey.from_string(t) for t in engine(standin, "getTipAccounts")[1]["result"]]
    blockhash = Hash.from_string(standin.call("getLatestBlockhash")["value"]["blockhash"])
    return payer, dest, tips, blockhash


def balance(standin: RunningStandIn, key: Pubkey) -> int:
    return standin.call("getBalance", str(key))["value"]


def test_tipped_bundle_lands_atomically_with_jitos_bundle_id(standin: RunningStandIn, world) -> None:
    payer, dest, tips, blockhash = world
    assert len(tips) == 8
    before_tip = balance(standin, tips[3])
    txs = [tx(payer, [pay(payer, dest, 5_000_000)], blockhash), tx(payer, [pay(payer, tips[3], 10_000)], blockhash)]
    _, answer = engine(standin, "sendBundle", encode(txs), {"encoding": "base64"})
    bid = answer["result"]
    # Jito's derive_bundle_id: sha256 of the comma-joined base58 first signatures.
    assert bid == hashlib.sha256(",".join(str(t.signatures[0]) for t in txs).encode()).hexdigest()
    landed = wait_status(standin, bid)
    assert landed["status"] == "Landed" and landed["landed_slot"] > 0
    final = engine(standin, "getBundleStatuses", [bid])[1]["result"]["value"][0]
    assert final["transactions"] == [str(t.signatures[0]) for t in txs]
    assert final["err"] == {"Ok": None} and final["confirmation_status"] == "confirmed"
    assert balance(standin, dest) == 5_000_000
    assert balance(standin, tips[3]) - before_tip == 10_000
    statuses = standin.call("getSignatureStatuses", [str(t.signatures[0]) for t in txs])["value"]
    assert all(s is not None and s["err"] is None for s in statuses)


def test_failing_transaction_rolls_the_whole_bundle_back(standin: RunningStandIn, world) -> None:
    payer, dest, tips, blockhash = world
    payer_before = balance(standin, payer.pubkey())
    overdraft = tx(payer, [pay(payer, dest, 100 * SOL), pay(payer, tips[0], 10_000)], blockhash)
    txs = [tx(payer, [pay(payer, dest, 7_000_000)], blockhash), overdraft]
    bid = engine(standin, "sendBundle", encode(txs), {"encoding": "base64"})[1]["result"]
    assert wait_status(standin, bid)["status"] == "Failed"
    assert engine(standin, "getBundleStatuses", [bid])[1]["result"]["value"] == [None]
    # Not even the first transaction's transfer or fee stayed behind.
    assert balance(standin, dest) == 0
    assert balance(standin, payer.pubkey()) == payer_before
    assert standin.call("getSignatureStatuses", [str(txs[0].signatures[0])])["value"] == [None]


def test_untipped_bundle_fails_and_changes_nothing(standin: RunningStandIn, world) -> None:
    payer, dest, _, blockhash = world
    bid = engine(standin, "sendBundle", encode([tx(payer, [pay(payer, dest, 1)], blockhash)]), {"encoding": "base64"})
    assert wait_status(standin, bid[1]["result"])["status"] == "Failed"
    assert balance(standin, dest) == 0


def test_six_transactions_and_misplaced_dont_front_are_refused(standin: RunningStandIn, world) -> None:
    payer, dest, tips, blockhash = world
    six = [tx(payer, [pay(payer, dest, 1 + i)], blockhash) for i in range(6)]
    _, answer = engine(standin, "sendBundle", encode(six), {"encoding": "base64"})
    assert answer["error"]["code"] == -32602 and "at most 5" in answer["error"]["message"]
    guard = Pubkey.from_string("jitodontfront111111111111111111111111111111")
    # The guard rides read-only on an instruction of ours (the System program ignores extra accounts).
    tip = pay(payer, tips[1], 10_000)
    guarded = Instruction(tip.program_id, tip.data, [*tip.accounts, AccountMeta(guard, False, False)])
    ours = tx(payer, [guarded], blockhash)
    theirs = tx(payer, [pay(payer, dest, 3)], blockhash)
    answer = engine(standin, "sendBundle", encode([theirs, ours]), {"encoding": "base64"})[1]
    assert "jitodontfront" in answer["error"]["message"]
    # First in its bundle, the same transaction is accepted and lands.
    bid = engine(standin, "sendBundle", encode([ours]), {"encoding": "base64"})[1]["result"]
    assert wait_status(standin, bid)["status"] == "Landed"


def test_block_engine_rate_limits_per_ip() -> None:
    limited = start_standin(jito_rps=1.0)
    try:
        answers = [engine(limited, "getTipAccounts") for _ in range(5)]
        codes = [status for status, _ in answers]
        assert codes[0] == 200 and 429 in codes
        refused = next(a for s, a in answers if s == 429)
        assert refused["error"]["code"] == -32097
        time.sleep(1.1)  # the bucket refills at 1 request per second
        assert engine(limited, "getTipAccounts")[0] == 200
        assert limited.call("getSlot") >= 0  # the node's own RPC is not limited
    finally:
        limited.stop()
