"""The bridge monitor on Circle CCTP V2, from real transactions on two anvil chains, beside CCTP V1.

The contracts are testbed/contracts/LocalCctpV2.sol (CCTP V2's events and message formats, without attesters)
and LocalCctp.sol (V1's), both on alpha (domain 0) and beta (domain 3). The test's relayer plays Circle's
attester: for each V2 message seen on alpha it assigns the nonce, the finality threshold executed (1000 for a
fast transfer, 2000 for a standard one), the fee (a fast transfer's, within its maxFee) and the expiration
block, as the attestation service does, and calls beta's receiveMessage FAST_S or STANDARD_S after it saw the
message; V1 messages are carried as they are. So the monitor matches transfers whose source never knew their
nonce, from real blocks on both chains.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak
from mevcontrol.bridge_monitor import (
    DEPOSIT_FOR_BURN_V2,
    MESSAGE_SENT,
    BridgeMonitor,
    BridgeWatch,
    BridgeWatcher,
    cctp_v2_content,
)
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from redis.asyncio import Redis
from web3.contract import Contract

from mevagent.crosschain.registry import load_registry
from testbed.evm import Chain, deploy_token

from .bridge_watch import anvils, deploy, registry_file, watch_while, within

E6 = 10**6
DOMAINS = {"alpha": 0, "beta": 3}
CHAIN_IDS = {"alpha": 31441, "beta": 31442}
FAST_S, STANDARD_S = 0.5, 3.0  # the relayer's delay after it saw a message: fast (and V1), standard
STUCK_S = 6.0  # the test catalog's stuck_s for CCTP
FAST, STANDARD = 1000, 2000  # minFinalityThreshold / finalityThresholdExecuted
FAST_FEE = 5000  # what the attester charges a fast transfer (USDC units: 1 bps of 50 USDC; maxFee MAX_FEE)
MAX_FEE = 10_000
NEVER = 7 * E6  # a transfer of this amount is never attested
ROUTE = "cctp@alpha:USDC->beta:USDC"


STAND_INS = ("LocalCctp.sol", "LocalCctpV2.sol")


@dataclass
class End:
    name: str
    chain: Chain
    url: str
    usdc: Contract
    transmitter: Contract  # V1
    messenger: Contract
    transmitter_v2: Contract
    messenger_v2: Contract
    app: Contract  # another application's receiver of V2 messages


def _deploy(chain: Chain, name: str, *args: object) -> Contract:
    return deploy(chain, STAND_INS, name, *args)


@pytest.fixture(scope="module")
def ends() -> Iterator[tuple[End, End]]:
    with anvils(CHAIN_IDS.values()) as chains:
        made = []
        for name, (chain, url) in zip(CHAIN_IDS, chains, strict=True):
            usdc = deploy_token(chain)
            transmitter = _deploy(chain, "LocalMessageTransmitter", DOMAINS[name])
            messenger = _deploy(chain, "LocalTokenMessenger", transmitter.address)
            transmitter_v2 = _deploy(chain, "LocalMessageTransmitterV2", DOMAINS[name])
            messenger_v2 = _deploy(chain, "LocalTokenMessengerV2", transmitter_v2.address)
            app = _deploy(chain, "LocalV2App")
            for contract in (messenger, messenger_v2):  # approved to take deposits, funded to pay fills
                chain.transact(usdc.functions.approve(contract.address, 1 << 255))
                chain.transact(usdc.functions.transfer(contract.address, 10**6 * E6))
            made.append(End(name, chain, url, usdc, transmitter, messenger, transmitter_v2, messenger_v2, app))
        alpha, beta = made
        # The same deployer and nonces on both chains: the same addresses (each remote messenger is itself).
        assert [c.address for c in (alpha.usdc, alpha.messenger, alpha.messenger_v2, alpha.app)] == [
            c.address for c in (beta.usdc, beta.messenger, beta.messenger_v2, beta.app)
        ]
        yield alpha, beta


def _registry(directory: Path, usdc: str, domains: dict[str, int] = DOMAINS) -> Path:
    tokens = {f"{c}:USDC": {"asset": "usdc", "variant": "issued", "address": usdc, "decimals": 6} for c in DOMAINS}
    bridges = {
        "cctp": {"kind": "burn_mint", "use": "trade", "why": "burn, attest, mint",
                 "fee": {"fee_bps": 0, "fixed_usd": "0.5"}, "fill_s": STANDARD_S,
                 "mesh": [["alpha:USDC", "beta:USDC"]], "events": "cctp", "chain_ids": domains,
                 "stuck_s": STUCK_S},
    }  # fmt: skip
    return registry_file(directory, CHAIN_IDS, tokens, bridges)


def _watches(alpha: End, beta: End) -> list[dict[str, object]]:
    """Per chain a watch of V1's contracts and one of V2's, both of the bridge `cctp`."""
    return [
        {"bridge": "cctp", "chain": end.name, "rpc_url": end.url, "poll_s": 0.1, "contract": messenger.address,
         "also": [transmitter.address]}
        for end in (alpha, beta)
        for messenger, transmitter in ((end.messenger, end.transmitter), (end.messenger_v2, end.transmitter_v2))
    ]  # fmt: skip


def attest(message: bytes, nonce: bytes, messenger: str, expiration_block: int) -> bytes:
    """What Circle's attester signs for a V2 message as the source emitted it: its nonce, the finality threshold
    executed (the least the message asked for: fast or standard) and, for a burn message (one to the
    TokenMessengerV2), the fee executed (a fast transfer's: FAST_FEE, within its maxFee) and expiration block."""
    executed = FAST if int.from_bytes(message[140:144]) <= FAST else STANDARD
    body = message[148:]
    if message[76:108] == bytes(12) + bytes.fromhex(messenger[2:]):
        fee = min(FAST_FEE, int.from_bytes(body[132:164])) if executed == FAST else 0
        body = body[:164] + fee.to_bytes(32) + (expiration_block if executed == FAST else 0).to_bytes(32) + body[228:]
    return message[:12] + nonce + message[44:144] + executed.to_bytes(4) + body


def _relayer(alpha: End, beta: End, stop: threading.Event, errors: list[BaseException]):
    """Attests alpha's V2 messages and relays them to beta (fast ones FAST_S after it saw them, standard ones
    STANDARD_S; a burn of NEVER never), and relays alpha's V1 messages FAST_S after."""

    def run() -> None:
        seen: dict[tuple[str, bytes, int], tuple[float, bytes]] = {}
        done: set[tuple[str, bytes, int]] = set()
        try:
            while not stop.is_set():
                for version, transmitter in (("v1", alpha.transmitter), ("v2", alpha.transmitter_v2)):
                    for log in transmitter.events.MessageSent().get_logs(from_block=0):
                        key = (version, bytes(log["transactionHash"]), log["logIndex"])
                        seen.setdefault(key, (time.monotonic(), log["args"]["message"]))
                for key, (at, message) in sorted(seen.items(), key=lambda kv: kv[1][0]):
                    version = key[0]
                    fast = version == "v1" or int.from_bytes(message[140:144]) <= FAST
                    if key in done or time.monotonic() < at + (FAST_S if fast else STANDARD_S):
                        continue
                    if version == "v1":
                        beta.chain.transact(beta.transmitter.functions.receiveMessage(message))
                    elif int.from_bytes(message[148 + 68 : 148 + 100]) != NEVER:
                        nonce = keccak(key[1] + key[2].to_bytes(4))
                        attested = attest(
                            message, nonce, alpha.messenger_v2.address, beta.chain.w3.eth.block_number + 100
                        )
                        beta.chain.transact(beta.transmitter_v2.functions.receiveMessage(attested, b""))
                    done.add(key)
                stop.wait(0.05)
        except BaseException as exc:  # seen by the test, not lost with the thread
            errors.append(exc)
            raise

    return run


def test_cctp_v2_fast_and_standard_transfers_beside_v1(ends: tuple[End, End], tmp_path: Path) -> None:
    alpha, beta = ends
    config = {"registry_file": str(_registry(tmp_path, alpha.usdc.address)), "usd": {"usdc": "1"},
              "watch": _watches(alpha, beta), "stuck_after_s": 3600}  # fmt: skip
    engine = CrossChainEngine(CrossChainConfig.model_validate(config))
    service = CrossChainService(engine, Redis(host="127.0.0.1", port=1))  # prices are not read here
    monitor = engine.monitor
    stop, errors = threading.Event(), []
    relayer = threading.Thread(target=_relayer(alpha, beta, stop, errors), daemon=True)
    me = alpha.chain.account
    recipient = bytes(12) + bytes.fromhex(me[2:])
    usdc = alpha.usdc.address

    def burn(amount: int, threshold: int, max_fee: int = 0, hook: bytes = b"") -> None:
        v2 = alpha.messenger_v2.functions
        args = (amount, DOMAINS["beta"], recipient, usdc, bytes(32), max_fee, threshold)
        alpha.chain.transact(v2.depositForBurnWithHook(*args, hook) if hook else v2.depositForBurn(*args))

    def row() -> dict[str, Any]:
        return next((r for r in monitor.performance() if r["route"] == ROUTE), {"fills": 0, "deposits": 0})

    async def until(timeout_s: float, done: Any) -> None:
        await within(timeout_s, lambda: bool(errors) or done())
        assert not errors, errors  # the relayer failed: say how, not a timeout

    async def scenario() -> None:
        steps = [
            lambda: burn(100 * E6, STANDARD),  # standard, no fee
            lambda: burn(100 * E6, FAST, MAX_FEE),  # fast
            lambda: burn(50 * E6, FAST, MAX_FEE),  # two transfers alike in every field: matched FIFO
            lambda: burn(50 * E6, FAST, MAX_FEE),
            lambda: burn(20 * E6, STANDARD, 0, b"hook"),  # with hook data
            lambda: alpha.chain.transact(alpha.messenger.functions.depositForBurn(30 * E6, DOMAINS["beta"], recipient,
                                                                                  usdc)),  # V1
            # Another application's message through the same transmitter: not a transfer on either end.
            lambda: alpha.chain.transact(alpha.transmitter_v2.functions.sendMessage(
                DOMAINS["beta"], bytes(12) + bytes.fromhex(alpha.app.address[2:]), bytes(32), FAST, b"hello")),
        ]  # fmt: skip
        for step in steps:
            await asyncio.to_thread(step)
        await until(15, lambda: row()["fills"] == 6)
        assert not monitor.pending and not monitor.unhealthy
        await asyncio.to_thread(burn, NEVER, FAST, MAX_FEE)  # never attested: stuck after STUCK_S
        await until(5, lambda: len(monitor.pending) == 1)
        assert not monitor.pending_rows(time.time())[0]["stuck"] and not monitor.unhealthy
        await until(10, lambda: monitor.unhealthy == {"cctp"})

    watch_while(service, relayer, stop, scenario)
    assert not errors
    [got] = monitor.performance()
    assert (got["route"], got["deposits"], got["fills"], got["pending"], got["failures"]) == (ROUTE, 7, 6, 1, 1)
    # From the deposit seen on alpha to the fill seen on beta (each polled every 0.1 s): three fast V2
    # transfers and the V1 one relayed FAST_S after the relayer saw them, two standard ones STANDARD_S after.
    times = sorted(monitor.fills[ROUTE])
    assert all(FAST_S - 0.2 <= t < STANDARD_S - 0.2 for t in times[:4]), times
    assert all(STANDARD_S - 0.2 <= t <= STUCK_S for t in times[4:]), times
    # The fee taken: FAST_FEE on each fast V2 transfer, none on the standard ones (V1 says no fee).
    [fees] = monitor.fee_rows()
    assert (fees["route"], fees["fills"], fees["fee_total"]) == (ROUTE, 5, 3 * FAST_FEE)
    assert fees["fee_bps_max"] == pytest.approx(10_000 * FAST_FEE / (50 * E6))
    [stuck] = monitor.pending_rows(time.time())
    assert stuck["stuck"] and stuck["deposit"].startswith("0:0x") and stuck["age_s"] > STUCK_S
    status = {b["bridge"]: b for b in engine.bridges_status()["bridges"]}
    assert (status["cctp"]["pending"], status["cctp"]["stuck"], status["cctp"]["fills_unmatched"]) == (1, 1, 0)
    # The fills were real: beta's V2 messenger minted each amount less its fee, V1's the V1 burn; the other
    # application's message was received too (no mint: not a fill, not an unmatched one).
    minted = [(m["args"]["amount"], m["args"]["feeCollected"])
              for m in beta.messenger_v2.events.MintAndWithdraw().get_logs(from_block=0)]  # fmt: skip
    assert sorted(minted) == sorted([(100 * E6, 0), (100 * E6 - FAST_FEE, FAST_FEE), (50 * E6 - FAST_FEE, FAST_FEE),
                                     (50 * E6 - FAST_FEE, FAST_FEE), (20 * E6, 0)])  # fmt: skip
    assert [m["args"]["amount"] for m in beta.messenger.events.MintAndWithdraw().get_logs(from_block=0)] == [30 * E6]
    assert len(beta.transmitter_v2.events.MessageReceived().get_logs(from_block=0)) == 6


def test_cctp_v2_watch_with_a_wrong_domain_stops_instead_of_misfiling(ends: tuple[End, End], tmp_path: Path) -> None:
    """alpha's V2 messages carry domain 0; a catalog saying alpha is domain 2 is refused, not believed."""
    alpha, beta = ends
    registry = load_registry(_registry(tmp_path, alpha.usdc.address, {"alpha": 2, "beta": 3}))
    [watch] = [BridgeWatch.model_validate(w) for w in _watches(alpha, beta)
               if w["chain"] == "alpha" and w["contract"] == alpha.messenger_v2.address]  # fmt: skip
    monitor = BridgeMonitor()
    receipt = alpha.chain.transact(alpha.messenger_v2.functions.depositForBurn(
        E6, DOMAINS["beta"], bytes(12) + bytes(range(20)), alpha.usdc.address, bytes(32), 0, STANDARD))  # fmt: skip
    # The receipt's logs as eth_getLogs gives them, the token's Transfer left out.
    logs = [{**dict(log), "topics": ["0x" + bytes(t).hex() for t in log["topics"]],
             "data": "0x" + bytes(log["data"]).hex(), "transactionHash": "0x" + bytes(log["transactionHash"]).hex(),
             "blockNumber": hex(log["blockNumber"]), "logIndex": hex(log["logIndex"])} for log in receipt["logs"]
            if log["address"] in (alpha.messenger_v2.address, alpha.transmitter_v2.address)]  # fmt: skip
    assert [entry["topics"][0] for entry in logs] == [MESSAGE_SENT, DEPOSIT_FOR_BURN_V2]
    with pytest.raises(ValueError, match=r"DepositForBurn \(V2\) without its MessageSent from domain 2"):
        BridgeWatcher(watch, registry, monitor, lambda _: None)._cctp(logs, at=1.0)
    assert not monitor.pending and not monitor.deposits  # nothing of the refused round applied
    right = load_registry(_registry(tmp_path, alpha.usdc.address))
    BridgeWatcher(watch, right, monitor, lambda _: None)._cctp(logs, at=1.0)
    deposit_id = f"0:{logs[1]['transactionHash']}:{int(logs[1]['logIndex'], 16)}"  # domain, tx, log index
    assert [r["deposit"] for r in monitor.pending_rows(2.0)] == [deposit_id]


# ---- the matching rule on the monitor alone ----------------------------------------------------------------


def test_a_fill_ends_the_oldest_alike_deposit_it_can_fill() -> None:
    """A fast fill (threshold 1000) cannot end a standard deposit (minFinalityThreshold 2000) of the same
    content: it ends the fast one behind it; a fill at 2000 ends the oldest of either."""
    monitor = BridgeMonitor()
    monitor.deposit_alike("cctp", "c", "0:a", "r", at=1.0, rank=STANDARD)
    monitor.deposit_alike("cctp", "c", "0:b", "r", at=2.0, rank=FAST)
    monitor.deposit_alike("cctp", "c", "0:b", "r", at=2.5, rank=FAST)  # seen again: nothing new
    assert monitor.fill_alike("cctp", "c", at=3.0, rank=FAST, amount=10, fee=1) == 1.0  # 0:b
    assert [r["deposit"] for r in monitor.pending_rows(3.0)] == ["0:a"]
    assert monitor.fill_alike("cctp", "other", at=3.0, rank=STANDARD, amount=10, fee=0) is None  # not its content
    assert monitor.fill_alike("cctp", "c", at=4.0, rank=STANDARD, amount=10, fee=0) == 3.0  # 0:a
    [row] = monitor.performance()
    assert (row["deposits"], row["fills"], row["pending"]) == (2, 2, 0)
    assert monitor.fee_rows() == [{"route": "r", "fills": 2, "fee_total": 1, "fee_bps_max": 1000.0}]
    # The fill of content "other" never meets its deposit: dropped after early_for_s, counted unmatched.
    assert monitor.unhealthy_bridges(3.0 + 601, {}, 3.0) == set() and monitor.unmatched == {"cctp": 1}
    assert not monitor._alike and not monitor._early_alike  # nothing kept per transfer once it is over


def test_a_fill_seen_before_its_deposit_waits_for_it() -> None:
    monitor = BridgeMonitor()
    monitor.fill_alike("cctp", "c", at=5.0, rank=FAST, amount=10, fee=2)
    monitor.deposit_alike("cctp", "c", "0:a", "r", at=4.0, rank=STANDARD)  # a fast fill is not a standard one's
    monitor.deposit_alike("cctp", "c", "0:b", "r", at=4.5, rank=FAST)
    assert [r["deposit"] for r in monitor.pending_rows(6.0)] == ["0:a"]
    assert list(monitor.fills["r"]) == [0.5] and monitor.fee_rows()[0]["fee_total"] == 2
    assert list(monitor._alike) == [("cctp", "c")] and not monitor._early_alike  # only 0:a's name is kept


def test_the_content_leaves_out_what_the_attester_fills() -> None:
    """The source's burn message (zero fee executed and expiration) and the attested one (filled) name the
    same transfer; another amount, maxFee or hook, or another domain, does not."""
    sender = bytes(12) + b"\x11" * 20

    def body(amount: int, max_fee: int, fee: int, expiration: int, hook: bytes) -> bytes:
        fixed = encode(["uint256"] * 4, [amount, max_fee, fee, expiration])
        return (1).to_bytes(4) + b"\x22" * 32 + b"\x33" * 32 + fixed[:32] + b"\x44" * 32 + fixed[32:] + hook

    src, dst = (0).to_bytes(4), (3).to_bytes(4)
    sent = cctp_v2_content(src, dst, sender, body(5, 9, 0, 0, b"h"))
    assert cctp_v2_content(src, dst, sender, body(5, 9, 4, 1234, b"h")) == sent
    others = [body(6, 9, 0, 0, b"h"), body(5, 8, 0, 0, b"h"), body(5, 9, 0, 0, b"")]
    assert all(cctp_v2_content(src, dst, sender, b) != sent for b in others)
    assert cctp_v2_content((6).to_bytes(4), dst, sender, body(5, 9, 0, 0, b"h")) != sent
