"""The bridge monitor on the OP Stack's canonical bridge, from real transactions on two anvil chains.

alpha plays L1 (Ethereum), beta the L2 (OP Mainnet). The contracts are testbed/contracts/LocalOpMessenger.sol:
the CrossDomainMessenger's and StandardBridge's events, versioned nonce and message hash of npm
@eth-optimism/contracts-bedrock@0.17.3, without the rollup (its portal, output oracle and dispute games need a
whole OP system to deploy). The test's relayer plays the rest: it relays a deposit on beta DEPOSIT_RELAY_S after
it saw it (the sequencer's deposit transaction) and finalizes a withdrawal on alpha CHALLENGE_S after (the
challenge period, scaled down), so the fill times the monitor measures come from real blocks on both chains.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from mevcontrol.bridge_monitor import (
    ERC20_BRIDGE_FINALIZED,
    ERC20_BRIDGE_INITIATED,
    ETH_BRIDGE_INITIATED,
    FAILED_RELAYED_MESSAGE,
    RELAYED_MESSAGE,
    SENT_MESSAGE,
    SENT_MESSAGE_EXTENSION1,
    BridgeMonitor,
    BridgeWatch,
    BridgeWatcher,
    op_message_hash,
)
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from redis.asyncio import Redis
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from mevagent.crosschain.registry import registry as shipped_registry
from testbed.evm import TX_GAS, Chain, deploy_token

from .bridge_watch import anvils, deploy, registry_file, watch_while, within

E6 = 10**6
ETH = 10**18
CHAIN_IDS = {"alpha": 31421, "beta": 31422}
DEPOSIT_RELAY_S = 0.5
CHALLENGE_S = 5.0  # a withdrawal is finalized on alpha this long after the relayer saw it
DEPOSIT_STUCK_S = 3.0  # the test bridge's stuck_s: a deposit's bound
WITHDRAWAL_STUCK_S = 8.0  # the withdrawal routes' own stuck_s
FINALIZED = 2  # the relayer finalizes beta's first two messages (withdrawals); the third never
FLOAT = 1000 * E6  # USDC each end's bridge holds to pay out
WETH = "0x4200000000000000000000000000000000000006"  # the catalog's wrapped ETH on both ends (never called)
DEP_ETH, WD_ETH = "op@alpha:WETH->beta:WETH", "op@beta:WETH->alpha:WETH"
DEP_USDC, WD_USDC = "op@alpha:USDC->beta:USDC.e", "op@beta:USDC.e->alpha:USDC"


STAND_INS = ("LocalOpMessenger.sol",)


@dataclass
class End:
    name: str
    chain: Chain
    url: str
    usdc: Contract
    messenger: Contract
    bridge: Contract
    unrelated_messenger: Contract  # another messenger pair on the same chains, not watched
    unrelated_bridge: Contract


def _deploy(chain: Chain, name: str, *args: object) -> Contract:
    return deploy(chain, STAND_INS, name, *args)


def _send(chain: Chain, fn: Any, value: int = 0) -> TxReceipt:
    """Chain.transact with a value (a payable call)."""
    tx = fn.transact({"from": chain.account, "gas": TX_GAS, "gasPrice": 0, "value": value})
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx, timeout=60, poll_latency=0.01)
    assert receipt["status"] == 1, fn
    return receipt


@pytest.fixture(scope="module")
def ends() -> Iterator[tuple[End, End]]:
    with anvils(CHAIN_IDS.values()) as chains:
        made = []
        for name, (chain, url) in zip(CHAIN_IDS, chains, strict=True):
            usdc = deploy_token(chain)
            messenger = _deploy(chain, "LocalCrossDomainMessenger")
            bridge = _deploy(chain, "LocalStandardBridge", messenger.address)
            unrelated = _deploy(chain, "LocalCrossDomainMessenger")
            unrelated_bridge = _deploy(chain, "LocalStandardBridge", unrelated.address)
            for contract in (bridge, unrelated_bridge):  # approved to take deposits, funded to pay them out
                chain.transact(usdc.functions.approve(contract.address, 1 << 255))
                chain.transact(usdc.functions.transfer(contract.address, FLOAT))
            made.append(End(name, chain, url, usdc, messenger, bridge, unrelated, unrelated_bridge))
        alpha, beta = made
        # The same deployer and nonces on both chains: the same addresses (each bridge's remote bridge is itself).
        assert [c.address for c in (alpha.usdc, alpha.messenger, alpha.bridge, alpha.unrelated_messenger)] == [
            c.address for c in (beta.usdc, beta.messenger, beta.bridge, beta.unrelated_messenger)
        ]
        yield alpha, beta


def _registry(directory: Path, usdc: str) -> Path:
    coin = {"asset": "eth", "decimals": 18}
    tokens = {f"{c}:WETH": {**coin, "variant": "wrapped", "address": WETH} for c in CHAIN_IDS}  # ETH: registry_file
    tokens["alpha:USDC"] = {"asset": "usdc", "variant": "issued", "address": usdc, "decimals": 6}
    tokens["beta:USDC.e"] = {"asset": "usdc", "variant": "bridged", "via": "op", "of": "alpha:USDC", "address": usdc,
                             "decimals": 6}  # fmt: skip
    withdrawal = {"fill_s": CHALLENGE_S, "challenge_period": True, "stuck_s": WITHDRAWAL_STUCK_S}
    bridges = {
        "op": {"kind": "canonical", "use": "rebalance", "why": "an OP Stack messenger pair",
               "fee": {"fee_bps": 0, "fixed_usd": "2"}, "events": "op_stack", "stuck_s": DEPOSIT_STUCK_S,
               "routes": [{"from": "alpha:WETH", "to": "beta:WETH", "fill_s": 2},
                          {"from": "beta:WETH", "to": "alpha:WETH", **withdrawal},
                          {"from": "alpha:USDC", "to": "beta:USDC.e", "fill_s": 2},
                          {"from": "beta:USDC.e", "to": "alpha:USDC", **withdrawal}]},
    }  # fmt: skip
    return registry_file(directory, CHAIN_IDS, tokens, bridges)


def _relayer(alpha: End, beta: End, stop: threading.Event, replay: threading.Event, errors: list[BaseException]):
    """Relays every message sent through either messenger pair to the other chain: alpha's DEPOSIT_RELAY_S after
    it saw it, beta's first FINALIZED CHALLENGE_S after (the others never). A relay that fails is replayed
    (no value, as anybody may) once `replay` is set."""
    ends = {"alpha": alpha, "beta": beta}

    def sent(end: End, messenger: Contract) -> Iterator[tuple[tuple[str, str, int], tuple[Any, ...]]]:
        values = {(e["transactionHash"], e["logIndex"]): e["args"]["value"]
                  for e in messenger.events.SentMessageExtension1().get_logs(from_block=0)}  # fmt: skip
        for log in messenger.events.SentMessage().get_logs(from_block=0):
            a = log["args"]
            value = values.get((log["transactionHash"], log["logIndex"] + 1))
            if value is None:
                continue  # mined between the two reads: next round
            args = (a["messageNonce"], a["sender"], a["target"], value, a["gasLimit"], a["message"])
            yield (end.name, messenger.address, a["messageNonce"]), args

    def run() -> None:
        seen: dict[tuple[str, str, int], tuple[float, tuple[Any, ...]]] = {}
        done: set[tuple[str, str, int]] = set()
        failed: list[tuple[Chain, Contract, tuple[Any, ...]]] = []
        try:
            while not stop.is_set():
                for end in ends.values():
                    for messenger in (end.messenger, end.unrelated_messenger):
                        for key, args in sent(end, messenger):
                            seen.setdefault(key, (time.monotonic(), args))
                for key, (at, args) in sorted(seen.items(), key=lambda kv: kv[1][0]):
                    origin, address, nonce = key
                    withdrawal = origin == "beta"
                    if key in done or (withdrawal and nonce % (1 << 240) >= FINALIZED):
                        continue
                    if time.monotonic() < at + (CHALLENGE_S if withdrawal else DEPOSIT_RELAY_S):
                        continue
                    dst = ends["alpha" if withdrawal else "beta"]
                    messenger = dst.messenger if address == dst.messenger.address else dst.unrelated_messenger
                    receipt = _send(dst.chain, messenger.functions.relayMessage(*args), value=args[3])
                    if messenger.events.FailedRelayedMessage().process_receipt(receipt, errors=DISCARD):
                        failed.append((dst.chain, messenger, args))
                    done.add(key)
                if replay.is_set():
                    for chain, messenger, args in failed:
                        _send(chain, messenger.functions.relayMessage(*args))
                    failed.clear()
                    replay.clear()
                stop.wait(0.05)
        except BaseException as exc:  # seen by the test, not lost with the thread
            errors.append(exc)
            raise

    return run


def test_op_stack_deposits_withdrawals_failed_relays_and_stuck_withdrawals(
    ends: tuple[End, End], tmp_path: Path
) -> None:
    alpha, beta = ends
    watch = [
        {"bridge": "op", "chain": end.name, "rpc_url": end.url, "contract": end.messenger.address,
         "also": [end.bridge.address], "poll_s": 0.1}
        for end in ends
    ]  # fmt: skip
    config = {"registry_file": str(_registry(tmp_path, alpha.usdc.address)), "usd": {"usdc": "1", "eth": "3000"},
              "watch": watch, "stuck_after_s": 3600}  # fmt: skip
    engine = CrossChainEngine(CrossChainConfig.model_validate(config))
    service = CrossChainService(engine, Redis(host="127.0.0.1", port=1))  # prices are not read here
    monitor = engine.monitor
    stop, replay, errors = threading.Event(), threading.Event(), []
    relayer = threading.Thread(target=_relayer(alpha, beta, stop, replay, errors), daemon=True)
    me = alpha.chain.account
    usdc = alpha.usdc.address

    def eth(end: End, bridge: Contract | None = None) -> None:
        _send(end.chain, (bridge or end.bridge).functions.bridgeETHTo(me, 200_000, b""), ETH)

    def token(end: End, amount: int) -> None:
        _send(end.chain, end.bridge.functions.bridgeERC20To(usdc, usdc, me, amount, 200_000, b""))

    def rows() -> dict[str, dict[str, Any]]:
        return {r["route"]: r for r in monitor.performance()}

    def fills(route: str) -> int:
        return rows().get(route, {}).get("fills", 0)

    def pending(route: str) -> list[dict[str, Any]]:
        return [p for p in monitor.pending_rows(time.time()) if p["route"] == route]

    async def until(timeout_s: float, done: Callable[[], bool]) -> None:
        await within(timeout_s, lambda: bool(errors) or done())
        assert not errors, errors  # the relayer failed: say how, not a timeout

    async def scenario() -> None:
        # alpha -> beta: two ETH deposits and a USDC one; another application's message through the same
        # messenger (not a transfer) and an ETH deposit through the unrelated messenger pair (not watched).
        for step in (lambda: eth(alpha), lambda: eth(alpha), lambda: token(alpha, 100 * E6),
                     lambda: _send(alpha.chain, alpha.messenger.functions.sendMessage(me, b"hello", 100_000)),
                     lambda: eth(alpha, alpha.unrelated_bridge)):  # fmt: skip
            await asyncio.to_thread(step)
        # beta -> alpha: an ETH and a USDC withdrawal, finalized after the challenge period; a third never.
        for step in (lambda: eth(beta), lambda: token(beta, 50 * E6), lambda: eth(beta)):
            await asyncio.to_thread(step)
        await until(15, lambda: fills(DEP_ETH) == 2 and fills(DEP_USDC) == 1)
        # Past the deposits' bound, before the challenge period's end: pending, not stuck.
        await until(10, lambda: all(p["age_s"] > DEPOSIT_STUCK_S for p in pending(WD_ETH) + pending(WD_USDC)))
        waiting = pending(WD_ETH) + pending(WD_USDC)
        assert len(waiting) == 3 and not any(p["stuck"] for p in waiting) and not monitor.unhealthy
        await until(15, lambda: fills(WD_ETH) == 1 and fills(WD_USDC) == 1)
        # A deposit larger than beta's bridge holds: its relay fails (a failure, still pending); the bridge
        # funded, the message replayed, the replay is its fill.
        await asyncio.to_thread(token, alpha, 10 * FLOAT)
        await until(10, lambda: rows()[DEP_USDC]["failures"] == 1)
        assert len(pending(DEP_USDC)) == 1 and fills(DEP_USDC) == 1
        await asyncio.to_thread(beta.chain.transact, beta.usdc.functions.transfer(beta.bridge.address, 10 * FLOAT))
        replay.set()
        await until(10, lambda: fills(DEP_USDC) == 2)
        # The third withdrawal, never finalized, is stuck past its own bound: the bridge is unhealthy.
        await until(15, lambda: monitor.unhealthy == {"op"})

    watch_while(service, relayer, stop, scenario)
    assert not errors
    got = rows()
    assert set(got) == {DEP_ETH, DEP_USDC, WD_ETH, WD_USDC}  # nothing of the other application nor the other pair
    counts = {r: (got[r]["deposits"], got[r]["fills"], got[r]["pending"], got[r]["failures"]) for r in got}
    assert counts == {DEP_ETH: (2, 2, 0, 0), DEP_USDC: (2, 2, 0, 1), WD_ETH: (2, 1, 1, 1), WD_USDC: (1, 1, 0, 0)}
    # From the message seen on its chain to its relay seen on the other (each polled every 0.1 s): the relayer
    # waits DEPOSIT_RELAY_S or CHALLENGE_S after it saw the message.
    for route in (DEP_ETH, DEP_USDC):
        assert DEPOSIT_RELAY_S - 0.2 <= got[route]["fill_s_p50"] <= got[route]["fill_s_max"] <= DEPOSIT_STUCK_S
    for route in (WD_ETH, WD_USDC):
        assert CHALLENGE_S - 0.2 <= got[route]["fill_s_p50"] <= got[route]["fill_s_max"] <= WITHDRAWAL_STUCK_S
    [stuck] = monitor.pending_rows(time.time())
    assert stuck["route"] == WD_ETH and stuck["stuck"] and stuck["age_s"] > WITHDRAWAL_STUCK_S
    assert stuck["deposit"].startswith("beta:0x") and len(stuck["deposit"]) == 71  # origin, the message's hash
    status = {b["bridge"]: b for b in engine.bridges_status()["bridges"]}
    assert (status["op"]["pending"], status["op"]["stuck"], status["op"]["fills_unmatched"]) == (1, 1, 0)
    # The fills were real: beta's bridge paid both USDC deposits, alpha's the USDC withdrawal; the relays of
    # the other application's message and of the unrelated pair happened too.
    paid = beta.bridge.events.ERC20BridgeFinalized().get_logs(from_block=0)
    assert [p["args"]["amount"] for p in paid] == [100 * E6, 10 * FLOAT]
    assert len(beta.messenger.events.RelayedMessage().get_logs(from_block=0)) == 5  # 2 ETH, 2 USDC, the app's
    assert len(beta.unrelated_messenger.events.RelayedMessage().get_logs(from_block=0)) == 1


# ---- the decoder and the monitor on logs made here (no chain) --------------------------------------------

MESSENGER, BRIDGE, APP = "0x" + "25" * 20, "0x" + "3b" * 20, "0x" + "77" * 20
L1_USDC, OP_USDC_E = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "0x7F5c764cBc14f9669B88837ca1490cCa17c31607"


def _word(address: str) -> str:
    return "0x" + address[2:].lower().rjust(64, "0")


def _log(address: str, topics: list[str], types: list[str], values: list[Any], index: int, tx: str = "0xaa") -> dict:
    return {"address": address, "topics": topics, "data": "0x" + encode(types, values).hex(), "transactionHash": tx,
            "blockNumber": "0x10", "logIndex": hex(index)}  # fmt: skip


def _sent(sender: str, nonce: int, value: int, message: bytes, index: int, tx: str = "0xaa") -> list[dict]:
    """A messenger's SentMessage and SentMessageExtension1 for a message to the other bridge."""
    return [
        _log(MESSENGER, [SENT_MESSAGE, _word(BRIDGE)], ["address", "bytes", "uint256", "uint256"],
             [sender, message, (1 << 240) | nonce, 200_000], index, tx),
        _log(MESSENGER, [SENT_MESSAGE_EXTENSION1, _word(sender)], ["uint256"], [value], index + 1, tx),
    ]  # fmt: skip


def _watcher(chain: str, monitor: BridgeMonitor) -> BridgeWatcher:
    watch = BridgeWatch(bridge="optimism_canonical", chain=chain, rpc_url="http://127.0.0.1:9", contract=MESSENGER,
                        also=(BRIDGE,))  # fmt: skip
    return BridgeWatcher(watch, shipped_registry(), monitor, lambda _: None)


def test_op_stack_source_pairs_each_transfer_with_its_message_in_log_order() -> None:
    """One transaction with an ETH and a USDC deposit and another application's message: two transfers, each
    keyed by its own message's hash, the ETH one on the catalog's WETH route; logs given out of order."""
    monitor = BridgeMonitor()
    eth_message, usdc_message = b"\x01" * 4, b"\x02" * 4
    logs = [
        _log(BRIDGE, [ETH_BRIDGE_INITIATED, _word(APP), _word(APP)], ["uint256", "bytes"], [ETH, b""], 0),
        *_sent(BRIDGE, 7, ETH, eth_message, 1),
        _log(BRIDGE, [ERC20_BRIDGE_INITIATED, _word(L1_USDC), _word(OP_USDC_E), _word(APP)],
             ["address", "uint256", "bytes"], [APP, 5 * E6, b""], 3),
        *_sent(BRIDGE, 8, 0, usdc_message, 4),
        *_sent(APP, 9, 0, b"hello", 6),  # not the bridge's: not a transfer
    ]  # fmt: skip
    _watcher("ethereum", monitor)._op_stack(logs[::-1], at=100.0)
    keys = {
        f"ethereum:{op_message_hash((1 << 240) | 7, BRIDGE, BRIDGE, ETH, 200_000, eth_message)}":
            "optimism_canonical@ethereum:WETH->optimism:WETH",
        f"ethereum:{op_message_hash((1 << 240) | 8, BRIDGE, BRIDGE, 0, 200_000, usdc_message)}":
            "optimism_canonical@ethereum:USDC->optimism:USDC.e",
    }  # fmt: skip
    assert {key: route for (_, key), (route, _) in monitor.pending.items()} == keys
    # A withdrawal's bound is its route's own (8 days), a deposit's the bridge's (an hour).
    engine = CrossChainEngine(CrossChainConfig.model_validate({"usd": {"usdc": "1", "eth": "3000"}}))
    assert engine.monitor.bounds["optimism_canonical@optimism:WETH->ethereum:WETH"] == 691_200
    assert engine.monitor.bounds["optimism_canonical@ethereum:WETH->optimism:WETH"] == 3600


def test_op_stack_round_with_a_bridge_message_and_no_transfer_is_refused_whole() -> None:
    monitor = BridgeMonitor()
    logs = [
        _log(BRIDGE, [ETH_BRIDGE_INITIATED, _word(APP), _word(APP)], ["uint256", "bytes"], [ETH, b""], 0),
        *_sent(BRIDGE, 1, ETH, b"\x01", 1),
        *_sent(BRIDGE, 2, 0, b"\x02", 0, tx="0xbb"),  # the bridge's message, no ...BridgeInitiated before it
    ]
    refused = r"SentMessage from the bridge 0x(3b){20} without a \.\.\.BridgeInitiated in 0xbb"
    with pytest.raises(ValueError, match=refused):
        _watcher("ethereum", monitor)._op_stack(logs, at=100.0)
    with pytest.raises(ValueError, match="without its SentMessageExtension1"):
        _watcher("ethereum", monitor)._op_stack(logs[:2], at=100.0)
    assert not monitor.pending and not monitor.deposits  # nothing of a refused round applied


def test_op_stack_destination_fills_failures_and_other_applications_relays() -> None:
    """On OP Mainnet: a relay after the bridge's ...BridgeFinalized is a fill, one without is another
    application's message (not even an unmatched fill), a failed relay a failure of the pending transfer."""
    monitor = BridgeMonitor()
    route = "optimism_canonical@ethereum:USDC->optimism:USDC.e"
    filled, failed, other = ("0x" + c * 64 for c in "abc")
    for key in (filled, failed):
        monitor.deposit("optimism_canonical", f"ethereum:{key}", route, at=90.0)
    finalized = _log(BRIDGE, [ERC20_BRIDGE_FINALIZED, _word(OP_USDC_E), _word(L1_USDC), _word(APP)],
                     ["address", "uint256", "bytes"], [APP, 5 * E6, b""], 0)  # fmt: skip
    logs = [
        finalized,
        _log(MESSENGER, [RELAYED_MESSAGE, filled], [], [], 1),
        _log(MESSENGER, [RELAYED_MESSAGE, other], [], [], 2),  # no finalization of its own before it
        _log(MESSENGER, [FAILED_RELAYED_MESSAGE, failed], [], [], 3),
    ]
    _watcher("optimism", monitor)._op_stack(logs, at=100.0)
    [row] = monitor.performance()
    assert (row["deposits"], row["fills"], row["pending"], row["failures"], row["fill_s_max"]) == (2, 1, 1, 1, 10.0)
    assert monitor.unhealthy_bridges(100.0 + 700, {}, 3.0) == set() and not monitor.unmatched
    assert monitor.failures[route] == 1  # failed, then pending past early_for_s but within its hour: once


def test_a_failed_relay_counts_once_and_its_replay_is_the_fill() -> None:
    monitor = BridgeMonitor(bounds={"r": 10.0})
    monitor.failed("op", "a:1", at=1.0)  # the destination's watcher was ahead: counted when the deposit shows
    monitor.deposit("op", "a:1", "r", at=0.5)
    monitor.failed("op", "a:1", at=2.0)  # a second failed attempt: the same failure
    assert monitor.failures["r"] == 1 and monitor.unhealthy_bridges(5.0, {}, 3.0) == set()
    assert monitor.unhealthy_bridges(11.0, {}, 3.0) == {"op"} and monitor.failures["r"] == 1  # stuck: still once
    assert monitor.fill("op", "a:1", at=12.0) == 11.5  # the replay
    assert monitor.unhealthy_bridges(13.0, {}, 3.0) == set() and not monitor.pending
    monitor.failed("op", "b:2", at=20.0)  # never deposited (another application's message): forgotten
    assert monitor.unhealthy_bridges(20.0 + 601, {}, 3.0) == set() and not monitor.unmatched
    assert dict(monitor.failures) == {"r": 1}
