"""The bridge monitor on Stargate V2 bus rides, from real transactions on two anvil chains.

testbed/contracts/LocalStargate.sol: two pools (USDC, asset 1; USDT, asset 2) and a TokenMessaging per chain,
with the events of npm @stargatefinance/stg-evm-v2@2.0.6 (a passenger's BusRode then its pool's zero-guid
OFTSent; BusDriven with the bus's tickets and guid; OFTReceived per passenger under that guid on the
destination). Without LayerZero: the test's relayer plays its executor, handing each driven bus to beta's
TokenMessaging BUS_RELAY_S after it saw the BusDriven (and each taxi send to beta's pool TAXI_S after).
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
from mevcontrol.bridge_monitor import BUS_RODE, OFT_SENT, BridgeMonitor, BridgeWatch, BridgeWatcher
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from redis.asyncio import Redis
from web3.contract import Contract

from mevagent.crosschain.registry import load_registry
from testbed.evm import Chain, deploy_token

from .bridge_watch import anvils, deploy, registry_file, watch_while, within

E6 = 10**6
EIDS = {"alpha": 30101, "beta": 30110}
CHAIN_IDS = {"alpha": 31451, "beta": 31452}
TAXI_S, DRIVE_AFTER_S, BUS_RELAY_S = 0.5, 1.0, 0.5
STUCK_S = 3.0
USDC, USDT = "stargate@alpha:USDC->beta:USDC", "stargate@alpha:USDT->beta:USDT"


STAND_INS = ("LocalStargate.sol",)


@dataclass
class End:
    name: str
    chain: Chain
    url: str
    usdc: Contract
    usdt: Contract
    pools: dict[str, Contract]  # USDC, USDT
    messaging: Contract


def _deploy(chain: Chain, name: str, *args: object) -> Contract:
    return deploy(chain, STAND_INS, name, *args)


@pytest.fixture(scope="module")
def ends() -> Iterator[tuple[End, End]]:
    with anvils(CHAIN_IDS.values()) as chains:
        made = []
        for name, (chain, url) in zip(CHAIN_IDS, chains, strict=True):
            usdc, usdt = deploy_token(chain), deploy_token(chain)
            messaging = _deploy(chain, "LocalTokenMessaging", EIDS[name])
            pools = {}
            for asset, (symbol, token) in enumerate((("USDC", usdc), ("USDT", usdt)), start=1):
                pool = _deploy(chain, "LocalStargatePool", token.address, EIDS[name], asset)
                chain.transact(pool.functions.setMessaging(messaging.address))
                chain.transact(messaging.functions.setPool(asset, pool.address))
                chain.transact(token.functions.approve(pool.address, 1 << 255))  # takes deposits, pays fills
                chain.transact(token.functions.transfer(pool.address, 10**6 * E6))
                pools[symbol] = pool
            made.append(End(name, chain, url, usdc, usdt, pools, messaging))
        alpha, beta = made
        assert [alpha.usdc.address, alpha.usdt.address, alpha.messaging.address] == [
            beta.usdc.address, beta.usdt.address, beta.messaging.address
        ]  # fmt: skip
        yield alpha, beta


def _registry(directory: Path, usdc: str, usdt: str) -> Path:
    tokens = {f"{c}:USDC": {"asset": "usdc", "variant": "issued", "address": usdc, "decimals": 6} for c in EIDS}
    tokens |= {f"{c}:USDT": {"asset": "usdt", "variant": "issued", "address": usdt, "decimals": 6} for c in EIDS}
    bridges = {
        "stargate": {"kind": "liquidity_pool", "use": "trade", "why": "pools and LayerZero messages",
                     "fee": {"fee_bps": 6, "fixed_usd": "1"}, "fill_s": 60, "events": "stargate_v2",
                     "mesh": [["alpha:USDC", "beta:USDC"], ["alpha:USDT", "beta:USDT"]], "chain_ids": EIDS,
                     "stuck_s": STUCK_S},
    }  # fmt: skip
    return registry_file(directory, CHAIN_IDS, tokens, bridges)


def _watches(alpha: End, beta: End) -> list[dict[str, object]]:
    return [
        {"bridge": "stargate", "chain": end.name, "rpc_url": end.url, "poll_s": 0.1, "contract": pool.address,
         "also": [end.messaging.address], "token": f"{end.name}:{symbol}"}
        for end in (alpha, beta)
        for symbol, pool in end.pools.items()
    ]  # fmt: skip


def _relayer(alpha: End, beta: End, stop: threading.Event, errors: list[BaseException]):
    """LayerZero's executor: each bus driven on alpha delivered to beta's TokenMessaging BUS_RELAY_S after the
    relayer saw its BusDriven (its passengers' bytes from their BusRode, in ticket order), each taxi send
    to beta's pool TAXI_S after."""

    def run() -> None:
        seen: dict[bytes, tuple[float, Any]] = {}
        done: set[bytes] = set()
        try:
            while not stop.is_set():
                rides = {(r["args"]["dstEid"], r["args"]["ticketId"]): r["args"]["passenger"]
                         for r in alpha.messaging.events.BusRode().get_logs(from_block=0)}  # fmt: skip
                for log in alpha.messaging.events.BusDriven().get_logs(from_block=0):
                    seen.setdefault(log["args"]["guid"], (time.monotonic(), ("bus", log["args"])))
                for symbol, pool in alpha.pools.items():
                    for log in pool.events.OFTSent().get_logs(from_block=0):
                        if int.from_bytes(log["args"]["guid"]):
                            seen.setdefault(log["args"]["guid"], (time.monotonic(), (symbol, log["args"])))
                for guid, (at, (what, args)) in sorted(seen.items(), key=lambda kv: kv[1][0]):
                    if guid in done or time.monotonic() < at + (BUS_RELAY_S if what == "bus" else TAXI_S):
                        continue
                    if what == "bus":
                        tickets = range(args["startTicketId"], args["startTicketId"] + args["numPassengers"])
                        passengers = b"".join(rides[(args["dstEid"], t)] for t in tickets)
                        beta.chain.transact(beta.messaging.functions.receiveBus(EIDS["alpha"], guid, passengers))
                    else:
                        beta.chain.transact(beta.pools[what].functions.receiveToken(
                            guid, EIDS["alpha"], args["fromAddress"], args["amountReceivedLD"]))  # fmt: skip
                    done.add(guid)
                stop.wait(0.05)
        except BaseException as exc:  # seen by the test, not lost with the thread
            errors.append(exc)
            raise

    return run


def test_bus_passengers_are_matched_through_their_bus_guid(ends: tuple[End, End], tmp_path: Path) -> None:
    alpha, beta = ends
    config = {"registry_file": str(_registry(tmp_path, alpha.usdc.address, alpha.usdt.address)),
              "usd": {"usdc": "1", "usdt": "1"}, "watch": _watches(alpha, beta), "stuck_after_s": 3600}  # fmt: skip
    engine = CrossChainEngine(CrossChainConfig.model_validate(config))
    service = CrossChainService(engine, Redis(host="127.0.0.1", port=1))  # prices are not read here
    monitor = engine.monitor
    stop, errors = threading.Event(), []
    relayer = threading.Thread(target=_relayer(alpha, beta, stop, errors), daemon=True)
    beta_eid = EIDS["beta"]

    def ride(symbol: str, amount: int) -> None:
        alpha.chain.transact(alpha.pools[symbol].functions.rideBus(beta_eid, amount))

    def rows() -> dict[str, dict[str, Any]]:
        return {r["route"]: r for r in monitor.performance()}

    async def until(timeout_s: float, done: Any) -> None:
        await within(timeout_s, lambda: bool(errors) or done())
        assert not errors, errors  # the relayer failed: say how, not a timeout

    async def scenario() -> None:
        # Three passengers on one bus, two assets (tickets 0-2), and a taxi send.
        for symbol, amount in (("USDC", 10 * E6), ("USDT", 20 * E6), ("USDC", 30 * E6)):
            await asyncio.to_thread(ride, symbol, amount)
        await asyncio.to_thread(alpha.chain.transact, alpha.pools["USDC"].functions.send(beta_eid, alpha.chain.account,
                                                                                           40 * E6, 0))  # fmt: skip
        await until(5, lambda: len(monitor.pending) == 4)  # the riders pending under their tickets
        assert {p["deposit"] for p in monitor.pending_rows(time.time()) if ":bus:" in p["deposit"]} == {
            "30101:bus:30110:0:usdc", "30101:bus:30110:1:usdt", "30101:bus:30110:2:usdc"
        }  # fmt: skip
        await asyncio.sleep(DRIVE_AFTER_S)
        await asyncio.to_thread(alpha.chain.transact, alpha.messaging.functions.driveBus(beta_eid))
        await until(10, lambda: rows().get(USDC, {}).get("fills") == 3 and rows().get(USDT, {}).get("fills") == 1)
        assert not monitor.pending and not monitor.unhealthy
        await asyncio.to_thread(ride, "USDC", 50 * E6)  # its bus never driven: stuck after STUCK_S
        await until(5, lambda: len(monitor.pending) == 1)
        assert not monitor.pending_rows(time.time())[0]["stuck"]
        await until(10, lambda: monitor.unhealthy == {"stargate"})

    watch_while(service, relayer, stop, scenario)
    assert not errors
    got = rows()
    counts = {r: (got[r]["deposits"], got[r]["fills"], got[r]["pending"], got[r]["failures"]) for r in got}
    assert counts == {USDC: (4, 3, 1, 1), USDT: (1, 1, 0, 0)}
    # The taxi filled TAXI_S after the relayer saw it; the riders after the bus was driven (DRIVE_AFTER_S after
    # the last ride) and delivered (BUS_RELAY_S after).
    usdc_times = sorted(monitor.fills[USDC])
    assert TAXI_S - 0.2 <= usdc_times[0] < DRIVE_AFTER_S, usdc_times
    assert all(DRIVE_AFTER_S + BUS_RELAY_S - 0.2 <= t <= STUCK_S for t in usdc_times[1:] + list(monitor.fills[USDT]))
    [stuck] = monitor.pending_rows(time.time())
    assert stuck["deposit"] == "30101:bus:30110:3:usdc" and stuck["stuck"] and stuck["route"] == USDC
    status = {b["bridge"]: b for b in engine.bridges_status()["bridges"]}
    assert (status["stargate"]["stuck"], status["stargate"]["fills_unmatched"]) == (1, 0)
    # The fills were real: beta's pools paid each passenger under the bus's one guid, and the taxi.
    paid = {s: [(p["args"]["guid"], p["args"]["amountReceivedLD"]) for p in pool.events.OFTReceived().get_logs(
        from_block=0)] for s, pool in beta.pools.items()}  # fmt: skip
    [bus] = {g for g, amount in paid["USDC"] + paid["USDT"] if amount != 40 * E6}
    [taxi] = {g for g, amount in paid["USDC"] if amount == 40 * E6}
    assert taxi != bus and sorted(paid["USDC"]) == sorted([(bus, 10 * E6), (bus, 30 * E6), (taxi, 40 * E6)])
    assert paid["USDT"] == [(bus, 20 * E6)]


# ---- the rules on logs made here and on the monitor alone ------------------------------------------------


def _log(address: str, topics: list[str], types: list[str], values: list[Any], index: int, tx: str = "0xaa") -> dict:
    return {"address": address, "topics": topics, "data": "0x" + encode(types, values).hex(), "transactionHash": tx,
            "blockNumber": "0x10", "logIndex": hex(index)}  # fmt: skip


def test_a_passenger_without_its_ride_is_refused_when_the_messaging_is_watched(tmp_path: Path) -> None:
    pool, messaging = "0x" + "11" * 20, "0x" + "22" * 20
    registry = load_registry(_registry(tmp_path, "0x" + "33" * 20, "0x" + "44" * 20))
    watch = BridgeWatch(bridge="stargate", chain="alpha", rpc_url="http://127.0.0.1:9", contract=pool,
                        also=(messaging,), token="alpha:USDC")  # fmt: skip
    monitor = BridgeMonitor()
    sent = _log(pool, [OFT_SENT, "0x" + "00" * 32, "0x" + "00" * 32], ["uint32", "uint256", "uint256"],
                [EIDS["beta"], E6, E6], 1)  # fmt: skip
    with pytest.raises(ValueError, match="OFTSent without its BusRode in 0xaa"):
        BridgeWatcher(watch, registry, monitor, lambda _: None)._stargate([sent], at=1.0)
    rode = _log(messaging, [BUS_RODE], ["uint32", "uint72", "uint80", "bytes"], [EIDS["beta"], 7, 0, b"\x00" * 43], 0)
    BridgeWatcher(watch, registry, monitor, lambda _: None)._stargate([sent, rode], at=1.0)
    assert [p["deposit"] for p in monitor.pending_rows(1.0)] == ["30101:bus:30110:7:usdc"]
    # Without the TokenMessaging watched, a passenger is not followed (as before bus rides were decoded).
    bare = BridgeWatch(
        bridge="stargate", chain="alpha", rpc_url="http://127.0.0.1:9", contract=pool, token="alpha:USDC"
    )
    other = BridgeMonitor()
    BridgeWatcher(bare, registry, other, lambda _: None)._stargate([sent], at=1.0)
    assert not other.pending and not other.deposits


def test_a_bus_fill_seen_before_the_bus_is_driven_waits_for_it() -> None:
    """The destination's watcher was ahead: its OFTReceived of the guid waits until BusDriven boards the
    passengers (seat by seat, ticket order), and the passengers of another asset are not boarded by it."""
    monitor = BridgeMonitor()
    monitor.deposit("stargate", "1:bus:2:0:usdc", "r", at=1.0)
    monitor.deposit("stargate", "1:bus:2:1:usdt", "t", at=1.5)
    monitor.deposit("stargate", "1:bus:2:2:usdc", "r", at=2.0)
    monitor.fill_alike("stargate", "0xg:usdc", at=5.0, rank=0, amount=E6)
    monitor.board("stargate", "0xg:usdc", ["1:bus:2:0:usdc", "1:bus:2:1:usdc", "1:bus:2:2:usdc"])
    assert list(monitor.fills["r"]) == [4.0] and [p["deposit"] for p in monitor.pending_rows(6.0)] == [
        "1:bus:2:1:usdt", "1:bus:2:2:usdc"
    ]  # fmt: skip
    monitor.board("stargate", "0xg:usdc", ["1:bus:2:2:usdc"])  # the same BusDriven seen again: nothing new
    assert monitor.fill_alike("stargate", "0xg:usdc", at=6.0, rank=0, amount=E6) == 4.0
    assert monitor.fill_alike("stargate", "0xg:usdc", at=6.0, rank=0, amount=E6) is None  # no third usdc seat
    assert monitor.fee_rows() == []  # Stargate's fills state no fee
    # The usdt rider, never boarded, is stuck after the hour; the third usdc fill is dropped, counted unmatched.
    assert monitor.unhealthy_bridges(6.0 + 3601, {}, 3.0) == {"stargate"} and monitor.unmatched == {"stargate": 1}
    assert not monitor._alike and not monitor._early_alike  # the bus is over: nothing kept under its guid
