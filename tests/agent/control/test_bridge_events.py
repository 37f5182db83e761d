"""The bridge monitor on Circle CCTP's and Stargate V2's events, from real transactions on two anvil chains.

The contracts are testbed/contracts/LocalCctp.sol and LocalStargate.sol: the bridges' event signatures
and message formats without their attesters and messaging layer (Circle's contracts are not published as
deployable artifacts; Stargate V2's pool needs LayerZero's endpoint and Stargate's TokenMessaging, see
docs/crosschain.md). The test's relayer plays Circle's attesters and LayerZero's executor: it fills each
deposit on the destination a fixed delay after it saw it, so the fill times the monitor measures come from
real blocks on both chains."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_abi.exceptions import DecodingError
from mevcontrol.bridge_monitor import BridgeMonitor, BridgeWatch, BridgeWatcher
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from redis.asyncio import Redis
from web3.contract import Contract

from mevagent.crosschain.registry import load_registry
from mevagent.crosschain.registry import registry as shipped_registry
from mevagent.executor.rpc import HttpJsonRpc
from testbed.evm import Chain, deploy_token

from .bridge_watch import anvils, deploy, registry_file, watch_while, within

E6 = 10**6
DOMAINS = {"alpha": 0, "beta": 3}  # CCTP domains in the test's catalog (Ethereum's and Arbitrum's)
EIDS = {"alpha": 30101, "beta": 30110}  # LayerZero V2 endpoint ids (the same two chains')
RELAY_DELAY_S = 1.0
CCTP_ALPHA = ("cctp", "alpha")
STUCK_S = 2.5  # the test catalog's stuck_s of both bridges (the control plane's stuck_after_s is 3600)


STAND_INS = ("LocalCctp.sol", "LocalStargate.sol")
CHAIN_IDS = {"alpha": 31411, "beta": 31412}


@dataclass
class End:
    name: str
    chain: Chain
    url: str
    usdc: Contract
    transmitter: Contract
    messenger: Contract
    pool: Contract


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
            pool = _deploy(chain, "LocalStargatePool", usdc.address, EIDS[name], 1)
            for contract in (messenger, pool):  # approved to take deposits, funded to pay fills
                chain.transact(usdc.functions.approve(contract.address, 1 << 255))
                chain.transact(usdc.functions.transfer(contract.address, 10**6 * E6))
            made.append(End(name, chain, url, usdc, transmitter, messenger, pool))
        alpha, beta = made
        # The same deployer and nonces on both chains: the same addresses (CCTP's remote messenger is itself).
        assert (alpha.usdc.address, alpha.messenger.address, alpha.pool.address) == (
            beta.usdc.address, beta.messenger.address, beta.pool.address,
        )  # fmt: skip
        yield alpha, beta


def _registry(directory: Path, usdc: str, domains: dict[str, int] = DOMAINS) -> Path:
    tokens = {f"{c}:USDC": {"asset": "usdc", "variant": "issued", "address": usdc, "decimals": 6} for c in DOMAINS}
    mesh = [["alpha:USDC", "beta:USDC"]]
    bridges = {
        "cctp": {"kind": "burn_mint", "use": "trade", "why": "burn, attest, mint",
                 "fee": {"fee_bps": 0, "fixed_usd": "0.5"}, "fill_s": 900, "mesh": mesh,
                 "events": "cctp", "chain_ids": domains, "stuck_s": STUCK_S},
        "stargate": {"kind": "liquidity_pool", "use": "trade", "why": "pools and LayerZero messages",
                     "fee": {"fee_bps": 6, "fixed_usd": "1"}, "fill_s": 60, "mesh": mesh,
                     "events": "stargate_v2", "chain_ids": EIDS, "stuck_s": STUCK_S},
    }  # fmt: skip
    return registry_file(directory, CHAIN_IDS, tokens, bridges)


def _watches(alpha: End, beta: End) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for end in (alpha, beta):
        base = {"chain": end.name, "rpc_url": end.url, "poll_s": 0.1}
        out.append({**base, "bridge": "cctp", "contract": end.messenger.address, "also": [end.transmitter.address]})
        out.append({**base, "bridge": "stargate", "contract": end.pool.address, "token": f"{end.name}:USDC"})
    return out


def _relayer(alpha: End, beta: End, stop: threading.Event, limit: int) -> Callable[[], None]:
    """Carries alpha's first `limit` CCTP messages and Stargate taxi sends to beta, each RELAY_DELAY_S after
    it saw it: the message to beta's receiveMessage, the send to beta's pool's receiveToken."""

    def run() -> None:
        seen: dict[tuple[str, bytes], tuple[float, Any]] = {}
        done: set[tuple[str, bytes]] = set()
        while not stop.is_set():
            for log in alpha.transmitter.events.MessageSent().get_logs(from_block=0):
                message = log["args"]["message"]
                seen.setdefault(("cctp", message[12:20]), (time.monotonic(), message))
            for log in alpha.pool.events.OFTSent().get_logs(from_block=0):
                if int.from_bytes(log["args"]["guid"]):
                    seen.setdefault(("stargate", log["args"]["guid"]), (time.monotonic(), log["args"]))
            for key, (at, what) in sorted(seen.items(), key=lambda kv: kv[1][0]):
                if key in done or time.monotonic() < at + RELAY_DELAY_S or sum(k[0] == key[0] for k in done) >= limit:
                    continue
                if key[0] == "cctp":
                    beta.chain.transact(beta.transmitter.functions.receiveMessage(what))
                else:
                    beta.chain.transact(beta.pool.functions.receiveToken(
                        what["guid"], EIDS["alpha"], what["fromAddress"], what["amountReceivedLD"]))  # fmt: skip
                done.add(key)
            stop.wait(0.05)

    return run


def test_cctp_and_stargate_deposits_fills_and_stuck_transfers(ends: tuple[End, End], tmp_path: Path) -> None:
    alpha, beta = ends
    registry = _registry(tmp_path, alpha.usdc.address)
    watch = _watches(alpha, beta)
    config = {"registry_file": str(registry), "usd": {"usdc": "1"}, "watch": watch, "stuck_after_s": 3600}
    engine = CrossChainEngine(CrossChainConfig.model_validate(config))
    service = CrossChainService(engine, Redis(host="127.0.0.1", port=1))  # prices are not read here
    stop = threading.Event()
    relayer = threading.Thread(target=_relayer(alpha, beta, stop, 3), daemon=True)
    me = alpha.chain.account
    recipient = bytes(12) + bytes.fromhex(me[2:])
    cctp, stargate = "cctp@alpha:USDC->beta:USDC", "stargate@alpha:USDC->beta:USDC"

    def burn() -> None:
        alpha.chain.transact(alpha.messenger.functions.depositForBurn(100 * E6, DOMAINS["beta"], recipient,
                                                                     alpha.usdc.address))  # fmt: skip

    def send() -> None:
        alpha.chain.transact(alpha.pool.functions.send(EIDS["beta"], me, 100 * E6, 6 * 10**4))

    def filled() -> dict[str, int]:
        return {r["route"]: r["fills"] for r in engine.monitor.performance()}

    async def scenario() -> None:
        for _ in range(3):
            await asyncio.to_thread(burn)
            await asyncio.to_thread(send)
        # A bus passenger (zero guid) is not a transfer the monitor can match: never pending.
        await asyncio.to_thread(alpha.chain.transact, alpha.pool.functions.rideBus(EIDS["beta"], E6))
        await within(15, lambda: filled() == {cctp: 3, stargate: 3})
        assert not engine.monitor.pending and not engine.monitor.unhealthy
        await asyncio.to_thread(burn)  # the relayer is done: these two are never filled
        await asyncio.to_thread(send)
        await within(5, lambda: len(engine.monitor.pending) >= 2)
        rows = engine.monitor.pending_rows(time.time())
        assert not any(r["stuck"] for r in rows) and not engine.monitor.unhealthy  # pending, not stuck yet
        await within(10, lambda: engine.monitor.unhealthy == {"cctp", "stargate"})

    watch_while(service, relayer, stop, scenario)
    rows = {r["route"]: r for r in engine.monitor.performance()}
    assert set(rows) == {cctp, stargate}
    for row in rows.values():
        # From the deposit seen on alpha to the fill seen on beta (each polled every 0.1 s); the relayer waits
        # RELAY_DELAY_S after it saw each deposit.
        assert row["fills"] == 3 and RELAY_DELAY_S - 0.2 <= row["fill_s_p50"] <= row["fill_s_max"] <= 4
        assert (row["deposits"], row["pending"], row["failures"]) == (4, 1, 1)
    pending = {p["route"]: p for p in engine.monitor.pending_rows(time.time())}
    assert set(pending) == {cctp, stargate}
    assert pending[cctp]["deposit"] == "0:3" and pending[cctp]["stuck"] and pending[cctp]["age_s"] > STUCK_S
    assert pending[stargate]["deposit"].startswith("0x") and pending[stargate]["stuck"]
    status = {b["bridge"]: b for b in engine.bridges_status()["bridges"]}
    assert status["cctp"]["stuck"] == 1 and status["stargate"]["stuck"] == 1
    assert status["cctp"]["fills_unmatched"] == 0 and status["stargate"]["fills_unmatched"] == 0
    # The fills were real transfers on beta: the messenger minted (paid) each burn's amount.
    minted = beta.messenger.events.MintAndWithdraw().get_logs(from_block=0)
    assert [m["args"]["amount"] for m in minted] == [100 * E6] * 3


def test_cctp_watch_with_a_wrong_domain_stops_instead_of_misfiling(ends: tuple[End, End], tmp_path: Path) -> None:
    """alpha's messages carry domain 0; a catalog saying alpha is domain 2 is refused, not believed."""
    alpha, beta = ends
    registry = load_registry(_registry(tmp_path, alpha.usdc.address, {"alpha": 2, "beta": 3}))
    [watch] = [BridgeWatch.model_validate(w) for w in _watches(alpha, beta) if (w["bridge"], w["chain"]) == CCTP_ALPHA]
    monitor = BridgeMonitor()
    alpha.chain.transact(alpha.messenger.functions.depositForBurn(E6, DOMAINS["beta"], bytes(32), alpha.usdc.address))

    async def poll() -> None:
        async with aiohttp.ClientSession() as session:
            await BridgeWatcher(watch, registry, monitor, lambda _: None).poll(HttpJsonRpc(alpha.url, session))

    with pytest.raises(ValueError, match="without a MessageSent from domain 2"):
        asyncio.run(poll())
    assert not monitor.pending and not monitor.deposits  # nothing of the refused round applied


def test_a_fill_whose_deposit_never_shows_is_dropped_and_counted() -> None:
    """A fill seen first waits `early_for_s` for its deposit (the origin's watcher may be behind), then is
    counted as unmatched (its deposit was on a chain not watched); a deposit seen twice counts once."""
    monitor = BridgeMonitor(early_for_s=60)
    route = "cctp@alpha:USDC->beta:USDC"
    monitor.fill("cctp", "0:7", at=100.0)
    monitor.fill("cctp", "5:1", at=100.0)  # from a domain no watch follows
    monitor.deposit("cctp", "0:7", route, at=99.0)  # the origin's watcher was behind
    monitor.deposit("cctp", "0:8", route, at=101.0)
    monitor.deposit("cctp", "0:8", route, at=101.0)  # the same poll repeated
    assert monitor.unhealthy_bridges(150.0, {}, 3.0) == set() and monitor.unmatched == {}
    assert monitor.unhealthy_bridges(161.0, {}, 3.0) == set() and monitor.unmatched == {"cctp": 1}
    [row] = monitor.performance()
    assert (row["deposits"], row["fills"], row["pending"], row["fill_s_p50"]) == (2, 1, 1, 1.0)
    monitor.deposit("cctp", "5:1", "cctp@gamma:USDC->beta:USDC", at=170.0)  # too late: pending, not filled
    assert [r["deposit"] for r in monitor.pending_rows(171.0)] == ["0:8", "5:1"]


def test_a_log_the_decoder_cannot_read_warns_and_the_watch_goes_on() -> None:
    """A round whose log does not decode (eth_abi's DecodingError, not a ValueError) is warned and polled
    again: the watcher's task does not end, and with it the crosschain engine's gather of every watch."""
    watch = BridgeWatch(bridge="across", chain="ethereum", rpc_url="http://127.0.0.1:9", contract="0x" + "11" * 20,
                        poll_s=0.01)  # fmt: skip
    polls: list[float] = []
    watcher = BridgeWatcher(watch, shipped_registry(), BridgeMonitor(), polls.append)

    async def poll(_rpc: HttpJsonRpc) -> None:
        if len(polls) >= 2:
            watcher.stop()
        raise DecodingError("a log shorter than its event's data")

    watcher.poll = poll  # type: ignore[method-assign]
    asyncio.run(asyncio.wait_for(watcher.run(), 10))
    assert len(polls) >= 3
