"""The cross-chain engine on two anvil chains (chain ids 31401 and 31402) with the same Uniswap V2
deployments: a price gap made on one chain reaches the engine through the bus (the agent's
PairPriceReporter → BusPublisher → Redis `mev:prices` → CrossChainService), is sized with the agent's exact
AMM math, and both legs carried out on the real pairs pay exactly what it predicted, to the base unit.
The served answers on the :8906 routes come from the real `mevcontrol` process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import requests
import yaml
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine, CrossChainService
from redis.asyncio import Redis
from web3.contract import Contract

from mevagent.amm.arbitrage import V2Hop, cycle_amounts, size_v2_cycle
from mevagent.bus.events import Event, PairPrice
from mevagent.bus.publisher import BusPublisher
from mevagent.bus.spool import Spool
from mevagent.crosschain.inventory import InventoryReporter
from mevagent.rpc import connect
from testbed.control import Operator, control_config, start_control
from testbed.crosschain import Side, registry_for, reporters
from testbed.evm import CONTRACTS
from testbed.services import Postgres, RedisServer, free_port

from .bridge_watch import watch_while, within

E18 = 10**18
GWEI = 10**9


def _config(registry: Path, **changes: object) -> CrossChainConfig:
    data: dict[str, object] = {
        "registry_file": str(registry),
        "max_bridge_time": 600,
        "usd": {"eth": "3000", "tusd": "1"},
        "gas_price_wei": {"alpha": GWEI, "beta": 2 * GWEI},
        "builder_payment_bps": {"beta": 1000},
        **changes,
    }
    return CrossChainConfig.model_validate(data)


def _expected_costs(opp_amount_in: int, gross: int, bridge_bps: int, bridge_fixed: Decimal) -> tuple[int, int, int]:
    """The costs as docs/crosschain.md states them, computed here on their own (quote base units, up)."""
    unit_usd = Fraction(1, E18)  # 1 USD per TUSD, 18 decimals
    gas_usd = Fraction(150_000 * (GWEI + 2 * GWEI), E18) * 3000
    notional = Fraction(opp_amount_in, E18)
    bridge_usd = 2 * (Fraction(bridge_fixed) + notional * bridge_bps / 10_000)

    def up(x: Fraction) -> int:
        return -((-x.numerator) // x.denominator)

    return up(gas_usd / unit_usd), up(bridge_usd / unit_usd), up(Fraction(gross * 1000, 10_000))


def test_gap_found_through_the_bus_and_both_legs_pay_the_prediction(
    sides: tuple[Side, Side], redis_server: RedisServer, tmp_path: Path
) -> None:
    alpha, beta = sides
    alpha.set_price(100 * E18, 300_000 * E18)  # 3,000 per WETH
    beta.set_price(100 * E18, 306_000 * E18)  # 3,060: buy on alpha, sell on beta
    engine = CrossChainEngine(_config(registry_for(tmp_path, alpha)))

    async def run() -> float:
        redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
        publisher = BusPublisher(redis, Spool(tmp_path / "spool"))
        service = CrossChainService(engine, Redis(host="127.0.0.1", port=redis_server.port,
                                                  password=redis_server.password), block_ms=20)  # fmt: skip
        tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(service.run())]
        try:
            started = time.perf_counter()
            for reporter, side in reporters(alpha, beta, publisher.publish):
                assert reporter.observe([side.pair.address.lower()], side.chain.w3.eth.block_number) == 1
                assert reporter.observe([side.pair.address.lower()], side.chain.w3.eth.block_number) == 0  # unmoved
            async with asyncio.timeout(10):
                while not engine.opportunities:
                    await asyncio.sleep(0.005)
            return time.perf_counter() - started
        finally:
            publisher.stop()
            service.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await redis.aclose()
            await service.redis.aclose()

    elapsed = asyncio.run(run())
    assert elapsed < 5
    [opp] = engine.current()
    assert (opp.buy_chain, opp.sell_chain) == ("alpha", "beta")
    assert (opp.base, opp.sell_base, opp.quote, opp.sell_quote) == (
        "alpha:WETH",
        "beta:WETH",
        "alpha:TUSD",
        "beta:TUSD",
    )
    assert (opp.base_route, opp.quote_route) == ("fastlane", "fastlane")  # slowmint is over max_bridge_time
    assert opp.gross == opp.amount_out - opp.amount_in > 0

    # Both legs on the real pairs: the predicted outputs pass the K check, one base unit more does not.
    balances = [(s.usd.functions.balanceOf(s.chain.account).call(), s.weth.functions.balanceOf(s.chain.account).call())
                for s in (alpha, beta)]  # fmt: skip
    assert not alpha.swap(alpha.usd, opp.amount_in, alpha.weth, opp.base_amount + 1)
    assert alpha.swap(alpha.usd, opp.amount_in, alpha.weth, opp.base_amount)
    assert not beta.swap(beta.weth, opp.base_amount, beta.usd, opp.amount_out + 1)
    assert beta.swap(beta.weth, opp.base_amount, beta.usd, opp.amount_out)
    after = [(s.usd.functions.balanceOf(s.chain.account).call(), s.weth.functions.balanceOf(s.chain.account).call())
             for s in (alpha, beta)]  # fmt: skip
    # Inventory legs: alpha paid quote and got base, beta the other way; the base moved nets to zero.
    assert after[0][0] - balances[0][0] == -opp.amount_in and after[0][1] - balances[0][1] == opp.base_amount
    assert after[1][1] - balances[1][1] == -opp.base_amount and after[1][0] - balances[1][0] == opp.amount_out
    realized = (after[0][0] - balances[0][0]) + (after[1][0] - balances[1][0])
    assert realized == opp.gross

    gas, bridge, builder = _expected_costs(opp.amount_in, opp.gross, 3, Decimal("0.25"))
    assert (opp.gas_cost, opp.bridge_cost, opp.builder_payment) == (gas, bridge, builder)
    assert opp.net == opp.gross - gas - bridge - builder > 0
    # The bridges' fee on the amount puts the net optimum below the gross one (the agent's size_v2_cycle):
    # the chosen size nets more than the gross argmax and than sizes 0.1 % either side.
    hops = [V2Hop(300_000 * E18, 100 * E18, 30), V2Hop(100 * E18, 306_000 * E18, 30)]
    gross_argmax = size_v2_cycle(hops).amount_in  # type: ignore[union-attr]
    assert opp.amount_in < gross_argmax

    def net_at(x: int) -> int:
        gross = cycle_amounts(hops, x)[-1] - x  # type: ignore[index]
        g, b, k = _expected_costs(x, gross, 3, Decimal("0.25"))
        return gross - g - b - k

    assert opp.net == net_at(opp.amount_in)
    step = opp.amount_in >> 10
    assert opp.net >= max(net_at(gross_argmax), net_at(opp.amount_in - step), net_at(opp.amount_in + step))


def test_bridge_time_limit_preference_and_health_choose_the_route(sides: tuple[Side, Side], tmp_path: Path) -> None:
    alpha, beta = sides
    alpha.set_price(100 * E18, 300_000 * E18)
    beta.set_price(100 * E18, 306_000 * E18)
    registry = registry_for(tmp_path, alpha)
    events: list[Event] = []
    for reporter, side in reporters(alpha, beta, events.append):
        reporter.observe([side.pair.address.lower()], 1)
    prices = [e for e in events if isinstance(e, PairPrice)]
    assert len(prices) == 2 and prices[0].sell[0].amount_in == E18

    def best(engine: CrossChainEngine) -> list[str]:
        for event in prices:
            engine.absorb(event)
        return [f"{o.base_route}/{o.quote_route}" for o in engine.current()]

    assert best(CrossChainEngine(_config(registry, max_bridge_time=10))) == []  # no route fills in 10 s
    assert best(CrossChainEngine(_config(registry, max_bridge_time=1000))) == ["slowmint/slowmint"]  # cheaper
    unhealthy = CrossChainEngine(_config(registry, max_bridge_time=1000))
    unhealthy.set_healthy("slowmint", False)
    assert best(unhealthy) == ["fastlane/fastlane"]
    # A gap whose pools stopped reporting is not served once their prices are stale.
    for quote in unhealthy.quotes.values():
        quote.seen -= unhealthy.config.stale_after_s + 1
    assert unhealthy.current() == [] and unhealthy.opportunities == {}
    # No gap once the prices meet (the pools' fees eat a 0.2 % difference).
    beta.set_price(100 * E18, 300_600 * E18)
    events.clear()
    engine = CrossChainEngine(_config(registry))
    for reporter, side in reporters(alpha, beta, events.append):
        reporter.observe([side.pair.address.lower()], 2)
    for event in events:
        engine.absorb(event)  # type: ignore[arg-type]
    assert engine.current() == [] and engine.stats.evaluated == 0


def test_mevcontrol_serves_the_8906_routes(
    sides: tuple[Side, Side], redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    alpha, beta = sides
    alpha.set_price(100 * E18, 300_000 * E18)
    beta.set_price(100 * E18, 306_000 * E18)
    viewer = Operator("victor", "viewer")
    bridges_port = free_port()
    # The inventory account holds 1,900 TUSD on alpha (900 over its target) and 300 on beta (700 short).
    treasury = "0x" + "7e" * 20
    for side, amount in ((alpha, 1_900 * E18), (beta, 300 * E18)):
        side.chain.transact(side.usd.functions.transfer(side.chain.w3.to_checksum_address(treasury), amount))
    rebalance = {"targets": {"alpha:TUSD": "1000", "beta:TUSD": "1000"}, "min_move_usd": "1"}
    # And an exchange's ETH book (the recorded Binance ETH/USDC feed, replayed through ccxt in the process; its
    # USDC taken as the test's TUSD): about 3,000, so beta's pool at 3,060 is a CEX-DEX gap, alpha's at 3,000 none.
    recording = Path(__file__).parent / "data" / "cex_binance_eth_usdc.json"
    cex = {"exchange": "binance", "recording": str(recording), "poll_s": 0.2,
           "markets": [{"symbol": "ETH/USDC", "base": "eth", "quote": "tusd"}]}  # fmt: skip
    crosschain = _config(registry_for(tmp_path, alpha), rebalance=rebalance, cex=cex).model_dump(mode="json")
    path = control_config(tmp_path, redis_server, postgres, [viewer], crosschain=crosschain)
    data = yaml.safe_load(path.read_text())
    data["listen"]["bridges_port"] = bridges_port
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, tmp_path / "control.log")
    try:

        async def publish() -> None:
            redis = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
            publisher = BusPublisher(redis, Spool(tmp_path / "spool"))
            task = asyncio.create_task(publisher.run())
            for reporter, side in reporters(alpha, beta, publisher.publish):
                reporter.observe([side.pair.address.lower()], 7)
            for side in (alpha, beta):  # the treasury's balances, read from each chain by balanceOf
                async with await connect(side.chain.w3.provider.endpoint_uri) as rpc:
                    tokens = [side.usd.address, side.weth.address]
                    inventory = InventoryReporter(side.name, side.name, rpc, treasury, lambda t=tokens: t,
                                                  publisher.publish, refresh_blocks=600)  # fmt: skip
                    block = side.chain.w3.eth.block_number
                    assert await inventory.observe(block) and not await inventory.observe(block + 1)  # unchanged
            assert await publisher.flushed(5)
            publisher.stop()
            await task
            await redis.aclose()

        asyncio.run(publish())
        url = f"http://127.0.0.1:{bridges_port}"
        deadline = time.monotonic() + 30
        answer: dict = {}
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{url}/opportunities", headers=viewer.auth, timeout=2)
                answer = response.json()
                if {o["kind"] for o in answer.get("opportunities", ())} == {"dex_dex", "cex_dex"}:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "control.log").read_text()[-2000:]
            time.sleep(0.1)
        [opp] = [o for o in answer["opportunities"] if o["kind"] == "dex_dex"]
        [cex_opp] = [o for o in answer["opportunities"] if o["kind"] == "cex_dex"]
        assert (cex_opp["exchange"], cex_opp["chain"], cex_opp["direction"]) == ("binance", "beta", "cex_to_dex")
        assert (
            int(cex_opp["net"])
            == int(cex_opp["gross"])
            - int(cex_opp["gas_cost"])
            - int(cex_opp["builder_payment"])
            - int(cex_opp["restore_cost"])
            and not cex_opp["restore_priced"]
        )
        assert answer["cex"]["polled"] >= 1 and answer["cex"]["refused"] == 0 and answer["graph"]["books_absorbed"] >= 1
        assert (opp["buy_chain"], opp["sell_chain"], opp["base_route"]) == ("alpha", "beta", "fastlane")
        assert int(opp["net"]) == int(opp["gross"]) - int(opp["gas_cost"]) - int(opp["bridge_cost"]) - int(
            opp["builder_payment"]
        )
        assert answer["graph"]["pools"] == 2 and answer["graph"]["chains"] == ["alpha", "beta"]
        assert requests.get(f"{url}/opportunities", timeout=2).status_code == 401
        status = requests.get(f"{url}/bridges/status", headers=viewer.auth, timeout=2).json()
        assert {b["bridge"]: b["within_max_bridge_time"] for b in status["bridges"]} == {"fastlane": 4, "slowmint": 0}
        performance = requests.get(f"{url}/api/bridges/performance", headers=viewer.auth, timeout=2)
        assert performance.status_code == 200 and performance.json() == {"routes": []}
        # The rebalancing plan from the inventory events: beta filled to its target from alpha's surplus, by the
        # cheaper bridge (slowmint: 0.01 USD; fastlane: 0.25 USD + 3 bps), exact in base units.
        plan = requests.get(f"{url}/rebalance/plan", headers=viewer.auth, timeout=2).json()
        assert plan["accounts_reporting"] == 2
        assert plan["moves"] == [
            {"asset": "tusd", "from": "alpha:TUSD", "to": "beta:TUSD", "amount": str(700 * E18), "amount_usd": "700.00",
             "bridge": "slowmint", "fee_usd": "0.01", "fill_s": 900.0, "challenge_period": False}
        ]  # fmt: skip
        assert {h["token"]: h["held"] for h in plan["holdings"]} == {
            "alpha:TUSD": str(1_900 * E18), "beta:TUSD": str(300 * E18)
        }  # fmt: skip
        assert requests.get(f"{url}/rebalance/plan", timeout=2).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)


BRIDGE_SOURCE = CONTRACTS / "LocalBridge.sol"
SOLCJS = Path(__file__).resolve().parents[3] / "node_modules" / "solc" / "solc.js"


@cache
def _bridge_artifact() -> tuple[list[dict], str]:
    """(abi, creation bytecode) of LocalBridge.sol, compiled with the repo's solc-js 0.8.30 (no optimizer: the
    stand-in's gas does not matter here, and it compiles a second faster)."""
    source = {
        "language": "Solidity",
        "sources": {BRIDGE_SOURCE.name: {"content": BRIDGE_SOURCE.read_text()}},
        "settings": {"evmVersion": "cancun", "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    result = subprocess.run(
        [str(SOLCJS), "--standard-json"], input=json.dumps(source), capture_output=True, text=True, check=True
    )
    output = json.loads(result.stdout[result.stdout.index("{") :])
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"], output["errors"]
    contract = output["contracts"][BRIDGE_SOURCE.name]["LocalBridge"]
    return contract["abi"], "0x" + contract["evm"]["bytecode"]["object"]


def _deploy_bridge(side: Side) -> Contract:
    """A SpokePool stand-in not upgraded yet: it emits the V3 events until `upgrade()`."""
    abi, bytecode = _bridge_artifact()
    receipt = side.chain.transact(side.chain.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(True))
    bridge = side.chain.w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    side.chain.transact(side.weth.functions.approve(bridge.address, 1 << 255))
    return bridge


def _word(value: str | bytes) -> bytes:
    """An upgraded SpokePool's bytes32 for a V3 event's address (left-padded), a bytes32 as is."""
    return bytes(12) + bytes.fromhex(value[2:]) if isinstance(value, str) else value


def _relay(origin: Side, origin_bridge: Contract, dest: Side, dest_bridge: Contract, delay_s: float,
           stop: threading.Event, limit: int) -> None:  # fmt: skip
    """The test's relayer: fills each deposit (either generation's event) on the destination `delay_s` after
    it saw it, `limit` at most; the destination's SpokePool is upgraded after the first fill (the chains were
    upgraded one at a time)."""
    seen: dict[int, tuple[float, Any]] = {}  # deposit id → (when seen, its log)
    done: set[int] = set()
    while not stop.is_set() and len(done) < limit:
        for event in (origin_bridge.events.V3FundsDeposited, origin_bridge.events.FundsDeposited):
            for log in event().get_logs(from_block=0):
                seen.setdefault(log["args"]["depositId"], (time.monotonic(), log))
        for deposit_id, (at, log) in sorted(seen.items()):
            if deposit_id in done or time.monotonic() < at + delay_s or len(done) >= limit:
                continue
            a = log["args"]
            relay = (_word(a["depositor"]), _word(a["recipient"]), _word(a["exclusiveRelayer"]), _word(a["inputToken"]),
                     _word(a["outputToken"]), a["inputAmount"], a["outputAmount"], origin.chain.w3.eth.chain_id,
                     deposit_id, a["fillDeadline"], a["exclusivityDeadline"], a["message"])  # fmt: skip
            repayment = dest.chain.w3.eth.chain_id, _word(dest.chain.account)
            dest.chain.transact(dest_bridge.functions.fillRelay(relay, *repayment))
            if not done:
                dest.chain.transact(dest_bridge.functions.upgrade())
            done.add(deposit_id)
        stop.wait(0.05)


def test_bridge_monitor_measures_fills_and_avoids_a_bridge_with_a_stuck_transfer(
    sides: tuple[Side, Side], tmp_path: Path
) -> None:
    """Across's SpokePool events of both generations: two V3 deposits on alpha, then alpha's SpokePool
    upgraded and two more; beta's fills the first with FilledV3Relay, then (upgraded) the next two with
    FilledRelay, one of them a V3 deposit's. The fourth deposit is never filled."""
    alpha, beta = sides
    alpha.set_price(100 * E18, 300_000 * E18)
    beta.set_price(100 * E18, 306_000 * E18)
    bridges = _deploy_bridge(alpha), _deploy_bridge(beta)
    rpc = {s.name: s.chain.w3.provider.endpoint_uri for s in (alpha, beta)}
    watch = [{"bridge": "fastlane", "chain": s.name, "rpc_url": rpc[s.name], "contract": b.address, "poll_s": 0.1}
             for s, b in zip((alpha, beta), bridges, strict=True)]  # fmt: skip
    engine = CrossChainEngine(_config(registry_for(tmp_path, alpha), watch=watch, stuck_after_s=3))
    service = CrossChainService(engine, Redis(host="127.0.0.1", port=1))  # prices are not read here
    stop = threading.Event()
    relayer = threading.Thread(target=_relay, args=(alpha, bridges[0], beta, bridges[1], 1.2, stop, 3), daemon=True)
    route = "fastlane@alpha:WETH->beta:WETH"

    def deposit() -> None:
        deadline = alpha.chain.w3.eth.get_block("latest")["timestamp"] + 3600
        alpha.chain.transact(bridges[0].functions.deposit((
            _word(alpha.chain.account), _word(alpha.weth.address), _word(beta.weth.address), E18, E18 - 10**15,
            31402, deadline,
        )))  # fmt: skip

    async def scenario() -> None:
        for _ in range(2):
            await asyncio.to_thread(deposit)
        await asyncio.to_thread(alpha.chain.transact, bridges[0].functions.upgrade())
        await asyncio.to_thread(deposit)
        await within(20, lambda: any(r["route"] == route and r["fills"] == 3 for r in engine.monitor.performance()))
        assert not engine.monitor.unhealthy
        await asyncio.to_thread(deposit)  # the relayer is done: this one is never filled
        await within(15, lambda: "fastlane" in engine.monitor.unhealthy)

    watch_while(service, relayer, stop, scenario)
    # Both generations' events were on the chains: deposits 0-1 V3, 2-3 upgraded; fill 0 V3, fills 1-2 upgraded.
    logs = {e: [g["args"]["depositId"] for g in getattr(c.events, e)().get_logs(from_block=0)]
            for c, names in ((bridges[0], ("V3FundsDeposited", "FundsDeposited")),
                             (bridges[1], ("FilledV3Relay", "FilledRelay"))) for e in names}  # fmt: skip
    assert logs == {"V3FundsDeposited": [0, 1], "FundsDeposited": [2, 3], "FilledV3Relay": [0], "FilledRelay": [1, 2]}
    [row] = engine.monitor.performance()
    # Fill time: from the deposit seen on alpha to the fill seen on beta (polled every 0.1 s); the relayer
    # waits 1.2 s after it saw each deposit.
    assert row["route"] == route and row["fills"] == 3 and 1.0 <= row["fill_s_p50"] <= row["fill_s_max"] <= 4
    assert (row["deposits"], row["pending"], row["failures"]) == (4, 1, 1)
    [pending] = engine.monitor.pending_rows(time.time())
    assert pending["stuck"] and pending["deposit"] == "31401:3" and pending["route"] == route
    status = {b["bridge"]: b for b in engine.bridges_status()["bridges"]}
    assert not status["fastlane"]["healthy"] and status["fastlane"]["stuck"] == 1
    # The next restoration avoids the unhealthy bridge: within 1,000 s only slowmint is left.
    engine.config = engine.config.model_copy(update={"max_bridge_time": 1000})
    events: list[Event] = []
    for reporter, side in reporters(alpha, beta, events.append):
        reporter.observe([side.pair.address.lower()], 3)
    for event in events:
        engine.absorb(event)  # type: ignore[arg-type]
    assert [(o.base_route, o.quote_route) for o in engine.current()] == [("slowmint", "slowmint")]
