"""Live Aave V3 liquidation on anvil, against @aave/core-v3 and a Uniswap V2 pair from @uniswap/v2-core: the
chain's FlashMonitor follows the market, the aave_liquidation strategy sees a price drop (a new AaveOracle
source) make a position liquidatable and sizes it, its route plans it (the debt flash-borrowed from the
Aave pool itself, the seized WETH swapped back to USDC through the pair) and the ArbitrageExecutor
simulates, asks the risk gate, signs and sends it to a local builder that includes it. The contract keeps
exactly the predicted USDC, the Pool repays and seizes exactly the strategy's amounts, and in dry-run the
same plan is simulated to the wei and nothing is sent. Interest alone (time passing, a block with no
transaction and no price answer) makes a position liquidatable: the monitor's head event has the strategy
report it at that head, sized as the Pool's liquidationCall pays; so does a PoolConfigurator's lower
liquidation threshold (its new bonus in the sizing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from eth_utils import keccak
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from mevagent.config import LendingMarketConfig
from mevagent.core import Outcome, Status
from mevagent.executor.contract import artifact
from mevagent.executor.deploy import Deployment
from mevagent.executor.executor import ExecutionReport
from mevagent.executor.liquidation import FundedLiquidation, liquidated
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending.aave_reader import COLLATERAL_CONFIGURATION_CHANGED
from mevagent.lending.aave_v3 import WAD, percent_mul
from mevagent.lending.monitor import FlashMonitor
from mevagent.state.pools import PoolStore
from mevagent.strategies.aave_liquidation import PLUGIN, AaveLiquidation, LiquidationOpportunity, Liquidations, Settings
from testbed.aave import AaveMarket, ReserveSpec, mine, weth_usdc_market_priced_by_a_pair
from testbed.arb import (
    BuilderBehaviour,
    CountingRisk,
    assert_dry_run,
    builders,
    deploy_executor,
    emitted,
    open_executor,
    receipt_logs,
    rpc_url,
    v2_store,
)
from testbed.e2e import (
    assert_landed_after_the_drop,
    eventually,
    live_chain,
    live_liquidation_config,
    outcome_of,
    running,
)
from testbed.evm import Chain
from testbed.pools import IpcAnvil

from .conftest import snapshot_fixtures

SPECS = [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)]
PREMIUM_BPS = 9
CHAIN = "anvil"
EXECUTED = keccak(text="Executed(address,uint256,uint256,uint256)")


@dataclass
class World:
    chain: Chain
    market: AaveMarket
    pair: Contract
    key_file: Path
    identity_file: Path
    deployment: Deployment
    borrower: str

    def usdc(self, holder: str) -> int:
        return int(self.market.tokens["USDC"].functions.balanceOf(self.chain.w3.to_checksum_address(holder)).call())

    def store(self) -> PoolStore:
        return v2_store(self.chain, [self.pair])


def _market_priced_by_a_pair(chain: Chain, first_user: int) -> tuple[Any, Any, str]:
    """Aave with flashloans on, a WETH/USDC pair pricing WETH at the oracle's new price (1,000 WETH against
    1.8 M USDC), a lender's USDC supplied; returns the market, the pair and the (impersonated) borrower."""
    w3 = chain.w3
    market, pair = weth_usdc_market_priced_by_a_pair(chain, SPECS, PREMIUM_BPS)
    lender, borrower = (w3.to_checksum_address(f"0x{first_user + i:040x}") for i in range(2))
    for user in (lender, borrower):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    market.supply(lender, "USDC", 1_000_000 * 10**6)
    return market, pair, borrower


def _build(chain: Chain, directory: Path) -> World:
    market, pair, borrower = _market_priced_by_a_pair(chain, 0x11E0)
    key_file, identity_file, deployment = deploy_executor(chain, directory)
    return World(chain, market, pair, key_file, identity_file, deployment, borrower)


built, world = snapshot_fixtures(_build, "liquidation", ("built", "world"))


@dataclass
class Run:
    found: list[LiquidationOpportunity]
    outcome: Outcome
    reports: list[ExecutionReport]
    risk: CountingRisk


def _run(world: World, *, live: bool, before: Any = None, opened_before: bool = False, share_bps: int = 0) -> Run:
    """Monitor -> strategy -> route -> executor, as the agent wires them, around a price drop. With
    `opened_before` the position is opened before the monitor starts, and found by its history scan."""
    chain, market = world.chain, world.market

    async def scenario() -> Run:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            history = {"history_from_block": 0} if opened_before else {}
            lending = (LendingMarketConfig(name="aave_v3", addresses_provider=str(market.provider.address), **history),)
            monitor = FlashMonitor.of(CHAIN, rpc, lending, 60.0)
            monitor.log_span = 8  # the scan covers the chain's whole history in many eth_getLogs chunks
            settings = Settings(min_profit_threshold=0, min_profit_bps=0, live_chains=(CHAIN,) if live else ())
            strategy = AaveLiquidation(CHAIN, settings, market.asset("WETH").lower(), 0, share_bps)
            events = emitted(monitor)
            if opened_before:
                await asyncio.to_thread(_open, world)
                assert chain.w3.eth.block_number > 4 * monitor.log_span
            await monitor.poll()
            if not opened_before:
                # The position opens while the monitor follows the market (it learns positions from events).
                await asyncio.to_thread(_open, world)
                await monitor.poll()
            for event in strategy.on_events(events):
                raise AssertionError(f"healthy: nothing to liquidate, got {event}")
            events.clear()
            # 10 WETH at 1,800 USD, 82.5 % threshold, 15,000 USDC owed: health factor 0.99
            await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)
            await monitor.poll()
            found = [o for o in strategy.on_events(events) if isinstance(o, LiquidationOpportunity)]
            assert len(found) == 1, found
            risk = CountingRisk()
            executor = await open_executor(world, servers[0], risk, live=live)
            executor.flash_providers = monitor.providers
            if before is not None:
                await asyncio.to_thread(before, found[0])
            try:
                outcome = await Liquidations(executor.risk, executor).execute(found[0])
            finally:
                await executor.aclose()
            return Run(found, outcome, list(executor.reports), risk)

    return asyncio.run(scenario())


def _open(world: World) -> None:
    world.market.supply(world.borrower, "WETH", 10 * 10**18)
    world.market.borrow(world.borrower, "USDC", 15_000 * 10**6)


def test_a_position_opened_before_the_monitor_started_is_found_by_its_history_scan_and_liquidated(
    world: World,
) -> None:
    run = _run(world, live=True, opened_before=True)
    (found,) = run.found
    assert found.user == world.borrower.lower()
    assert run.outcome.status is Status.LANDED, run.outcome.reason
    funded = run.outcome.opportunity
    assert isinstance(funded, FundedLiquidation) and funded.loan is not None
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert kept > 0 and world.usdc(world.deployment.address) == kept  # to the wei
    debt_after = world.market.debt_tokens["USDC"].functions.balanceOf(world.borrower).call()
    assert 15_000 * 10**6 - found.amount_in <= debt_after < 15_000 * 10**6 - found.amount_in + 10**6


def test_the_history_scan_keeps_the_most_recently_active_users_within_its_bound(world: World) -> None:
    _open(world)
    market = world.market

    async def loaded(max_users: int) -> dict[str, dict[str, int | str]]:
        async with aiohttp.ClientSession() as session:
            config = LendingMarketConfig(
                name="aave_v3",
                addresses_provider=str(market.provider.address),
                history_from_block=0,
                history_max_users=max_users,
            )
            monitor = FlashMonitor.of(CHAIN, HttpJsonRpc(rpc_url(world.chain), session), (config,), 60.0)
            monitor.log_span = 7
            events = emitted(monitor)
            await monitor.poll()
            return {e.user: dict(e.args) for e in events if getattr(e, "event", "") == "PositionLoaded"}

    everyone = asyncio.run(loaded(10))
    lender = f"0x{0x11E0:040x}"
    assert set(everyone) == {lender, world.borrower.lower()}  # the lender supplied USDC, the borrower borrowed
    weth, usdc = market.asset("WETH").lower(), market.asset("USDC").lower()
    borrower = everyone[world.borrower.lower()]
    assert borrower[f"debt:{usdc}"] == market.debt_tokens["USDC"].functions.scaledBalanceOf(world.borrower).call()
    assert borrower[f"collateral:{weth}"] == market.a_tokens["WETH"].functions.scaledBalanceOf(world.borrower).call()
    assert f"debt:{usdc}" not in everyone[lender]
    assert set(asyncio.run(loaded(1))) == {world.borrower.lower()}  # the borrower acted last


class CountingRpc:
    """The monitor's node, noting each call's method and its first parameter."""

    def __init__(self, rpc: HttpJsonRpc) -> None:
        self.rpc, self.calls = rpc, list[tuple[str, Any]]()

    async def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params[0] if params else None))
        return await self.rpc.call(method, params)


def test_a_poll_asks_only_what_the_head_does_not_say_and_a_block_reorged_out_reloads_the_market(world: World) -> None:
    """A poll reads the head's header (one call): the head's logs are asked by its hash when the feed followed its
    parent (whether that parent is still the chain's, the header says); two blocks behind, the followed block's
    hash is asked alongside the logs of the range. A followed block reorged out (the same height with another
    hash, or a head whose parent is another block) loads the market again."""
    chain, w3 = world.chain, world.chain.w3

    def mine(blocks: int, timestamp: int | None = None) -> None:
        for _ in range(blocks):
            if timestamp is not None:  # another block at the same height: another hash
                w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
            w3.provider.make_request("evm_mine", [])

    def latest() -> tuple[int, str]:
        block = w3.eth.get_block("latest")
        return block["number"], "0x" + bytes(block["hash"]).hex()

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            rpc = CountingRpc(HttpJsonRpc(rpc_url(chain), session))
            config = LendingMarketConfig(name="aave_v3", addresses_provider=str(world.market.provider.address))
            monitor = FlashMonitor.of(CHAIN, rpc, (config,), 60.0)
            events = emitted(monitor)
            feed = monitor.markets[0]

            async def poll() -> list[tuple[str, Any]]:
                rpc.calls.clear()
                await monitor.poll()
                assert not feed.error, feed.error
                return list(rpc.calls)

            def loads() -> int:
                return sum(1 for e in events if getattr(e, "event", "") == "MarketLoaded")

            await poll()
            assert feed.provider is not None and loads() == 1
            watched = [feed.provider.pool, feed.oracle, feed.configurator, *feed.sources]
            mine(1)
            head, head_hash = latest()
            expected = [
                ("eth_getBlockByNumber", "latest"),
                ("eth_getLogs", {"blockHash": head_hash, "address": watched}),
            ]
            assert await poll() == expected
            assert (feed.followed, feed.followed_hash) == (head, head_hash)
            mine(2)
            calls = await poll()
            assert sorted(m for m, _ in calls) == ["eth_getBlockByNumber", "eth_getBlockByNumber", "eth_getLogs"]
            assert ("eth_getBlockByNumber", hex(head)) in calls and (feed.followed, feed.followed_hash) == latest()
            assert await poll() == [("eth_getBlockByNumber", "latest")]  # no new block: nothing else asked

            for more in (0, 1):  # the followed height with another hash; a head whose parent is another block
                snapshot = chain.snapshot()
                mine(1)
                await poll()
                orphan = w3.eth.get_block("latest")
                chain.revert(snapshot)
                mine(1, timestamp=orphan["timestamp"] + 7)
                mine(more)
                assert latest()[1] != "0x" + bytes(orphan["hash"]).hex()
                before = loads()
                await poll()
                assert loads() == before + 1 and (feed.followed, feed.followed_hash) == latest()

    asyncio.run(scenario())


def test_a_price_drop_is_liquidated_live_and_the_contract_keeps_the_prediction_to_the_wei(world: World) -> None:
    chain, market, w3 = world.chain, world.market, world.chain.w3
    contract = world.deployment.address
    run = _run(world, live=True)
    (found,) = run.found
    outcome = run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedLiquidation) and funded.loan is not None
    assert funded.user == world.borrower.lower() and funded.amount_in == found.amount_in
    assert funded.collateral_seized == found.amount_out
    # The loan: the Aave pool's own USDC at its premium; the swap: the pair's exact output.
    assert funded.loan.lender == str(market.pool.address).lower()
    assert funded.loan.fee == percent_mul(found.amount_in, PREMIUM_BPS) == found.flashloan_fee
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert kept > 0 and funded.gross_profit == kept
    assert world.usdc(contract) == kept  # the contract held nothing before
    (report,) = run.reports
    assert report.profit_wei == kept and report.funding == "aave_v3"
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    (event,) = market.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["user"] == world.borrower
    assert event["args"]["debtToCover"] == found.amount_in
    assert event["args"]["liquidatedCollateralAmount"] == found.amount_out
    assert liquidated(receipt_logs(receipt), contract) == [
        (world.borrower.lower(), market.asset("WETH").lower(), found.amount_in, found.amount_out)
    ]
    # Half the 15,000 USDC owed (close factor 50 % at a health factor of 0.99) repaid; the interest stays.
    debt_after = market.debt_tokens["USDC"].functions.balanceOf(world.borrower).call()
    assert 15_000 * 10**6 - found.amount_in <= debt_after < 15_000 * 10**6 - found.amount_in + 10**6
    assert chain.w3.eth.get_balance(w3.to_checksum_address(contract)) == 0  # nothing else moved


def test_the_builder_payment_is_subtracted_from_the_decision_and_paid_to_the_block_exactly(world: World) -> None:
    w3 = world.chain.w3
    contract = w3.to_checksum_address(world.deployment.address)
    w3.provider.make_request("anvil_setBalance", [contract, hex(10**18)])  # pays builders in ether (USDC debt)
    run = _run(world, live=True, share_bps=5_000)
    (found,) = run.found
    assert found.builder_payment > 0
    outcome = run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedLiquidation) and funded.loan is not None
    # Half of what the contract keeps, valued as the strategy valued its profit (the swap pays a little
    # less than the oracle's price, so the payment is scaled down with it).
    assert 0 < funded.builder_payment < found.builder_payment
    assert funded.builder_payment == int(
        found.builder_payment * Fraction(funded.profit_usd) / Fraction(found.profit_usd)
    )
    (report,) = run.reports
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    executed = [log for log in receipt["logs"] if log["address"] == contract and log["topics"][0] == EXECUTED]
    (log,) = executed
    assert int.from_bytes(log["data"][64:96], "big") == funded.builder_payment  # Executed(.., builderPayment)
    assert w3.eth.get_balance(contract) == 10**18 - funded.builder_payment  # paid to the coinbase, exactly
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert world.usdc(contract) == kept == report.profit_wei  # the USDC kept is unchanged by the payment


def test_dry_run_simulates_the_liquidation_to_the_wei_and_sends_nothing(world: World) -> None:
    w3 = world.chain.w3
    owner = w3.to_checksum_address(world.deployment.owner)
    nonce = w3.eth.get_transaction_count(owner)
    run = _run(world, live=False)
    assert_dry_run(world.chain, world.deployment, nonce, run.outcome, run.reports, FundedLiquidation)
    assert world.market.debt_tokens["USDC"].functions.balanceOf(world.borrower).call() >= 15_000 * 10**6
    assert world.usdc(world.deployment.address) == 0


def test_a_liquidation_another_searcher_took_first_is_skipped_without_sending_anything(world: World) -> None:
    market, w3 = world.market, world.chain.w3
    owner = w3.to_checksum_address(world.deployment.owner)
    rival = w3.to_checksum_address(f"0x{0x12F0:040x}")
    w3.provider.make_request("anvil_impersonateAccount", [rival])
    market.fund(rival, "USDC", 10**12)

    def rival_first(found: LiquidationOpportunity) -> None:
        # Between our sizing and our execution, another liquidator repays all the close factor allows.
        pool = market.pool.functions
        market._send(
            rival, pool.liquidationCall(market.asset("WETH"), market.asset("USDC"), world.borrower, 2**256 - 1, False)
        )

    nonce = w3.eth.get_transaction_count(owner)
    run = _run(world, live=True, before=rival_first)
    outcome = run.outcome
    # The head simulation reverts: nothing is signed or sent, so nothing can revert on chain, and the
    # risk gate is not told of a failure (no reservation was made; the circuit breaker does not count it).
    assert outcome.status is Status.FAILED and outcome.reason.startswith("simulation reverted"), outcome.reason
    assert w3.eth.get_transaction_count(owner) == nonce
    assert world.usdc(world.deployment.address) == 0
    assert outcome.tx_hashes == () and run.risk.checks == [] and run.risk.records == []


def test_interest_alone_makes_a_position_liquidatable_and_its_head_reports_it_sized_as_the_pool_pays(
    world: World,
) -> None:
    """No price moves: a whale's borrow keeps USDC 95 % used (about 60 % a year), the borrower's health factor
    of 1.06 falls under 1 in some 40 days. Sixty days then pass in one empty block: the monitor's poll of it
    carries no answer, only its `Head`, and the strategy reports the position at that head with the Pool's own
    health factor. In dry-run the plan is simulated and nothing is sent; a liquidator's liquidationCall for
    the reported amount at the head's timestamp repays and seizes exactly the reported amounts."""
    chain, market, w3 = world.chain, world.market, world.chain.w3
    market.set_price("WETH", 1_800 * 10**8)  # the pair's price: the seized WETH sells back at the oracle's
    whale = w3.to_checksum_address(f"0x{0x13E0:040x}")
    w3.provider.make_request("anvil_impersonateAccount", [whale])
    market.supply(whale, "WETH", 1_000 * 10**18)
    market.borrow(whale, "USDC", 936_000 * 10**6)
    owner = w3.to_checksum_address(world.deployment.owner)
    nonce = w3.eth.get_transaction_count(owner)

    async def scenario() -> tuple[LiquidationOpportunity, list[Any], Outcome, list[ExecutionReport]]:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            lending = (LendingMarketConfig(name="aave_v3", addresses_provider=str(market.provider.address)),)
            monitor = FlashMonitor.of(CHAIN, rpc, lending, 60.0)
            strategy = AaveLiquidation(CHAIN, Settings(min_profit_threshold=0, min_profit_bps=0), None, 0)
            events = emitted(monitor)
            await monitor.poll()
            await asyncio.to_thread(market.supply, world.borrower, "WETH", 10 * 10**18)  # 18,000 USD, 82.5 %
            await asyncio.to_thread(market.borrow, world.borrower, "USDC", 14_000 * 10**6)  # health factor 1.06
            await monitor.poll()
            assert strategy.on_events(events) == []
            events.clear()
            await asyncio.to_thread(mine, chain, 60 * 86_400)
            await monitor.poll()
            quiet = list(events)
            found = strategy.on_events(events)
            assert len(found) == 1 and isinstance(found[0], LiquidationOpportunity), found
            risk = CountingRisk()
            executor = await open_executor(world, servers[0], risk, live=False)
            executor.flash_providers = monitor.providers
            try:
                outcome = await Liquidations(executor.risk, executor).execute(found[0])
            finally:
                await executor.aclose()
            return found[0], quiet, outcome, list(executor.reports)

    found, quiet, outcome, reports = asyncio.run(scenario())
    head = w3.eth.get_block("latest")
    assert [(e.event, e.block) for e in quiet] == [("Head", head["number"])]  # no answer, no Pool event
    assert found.block == head["number"] and found.valued_at == head["timestamp"]
    assert found.user == world.borrower.lower()
    pools_hf = market.pool.functions.getUserAccountData(world.borrower).call(block_identifier=head["number"])[5]
    assert found.health_factor == pools_hf < WAD
    assert_dry_run(chain, world.deployment, nonce, outcome, reports, FundedLiquidation)
    # The reported amounts are what the Pool pays at the head's timestamp, to the unit.
    assert _liquidated_at(world, head["timestamp"], found) == (found.amount_in, found.amount_out)


def _liquidated_at(world: World, timestamp: int, found: LiquidationOpportunity) -> tuple[int, int]:
    """(debt covered, collateral seized) of a liquidator's liquidationCall for the reported debt, mined at
    `timestamp` (the valuation's)."""
    market, w3 = world.market, world.chain.w3
    liquidator = w3.to_checksum_address(f"0x{0x14E0:040x}")
    w3.provider.make_request("anvil_impersonateAccount", [liquidator])
    market.fund(liquidator, "USDC", found.amount_in)
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    call = market.pool.functions.liquidationCall(
        market.asset("WETH"), market.asset("USDC"), world.borrower, found.amount_in, False
    )
    (event,) = market.pool.events.LiquidationCall().process_receipt(market._send(liquidator, call), errors=DISCARD)
    return event["args"]["debtToCover"], event["args"]["liquidatedCollateralAmount"]


def test_a_lower_liquidation_threshold_is_followed_and_its_head_reports_what_it_made_liquidatable(
    world: World,
) -> None:
    """The PoolConfigurator lowers WETH's liquidation threshold from 82.5 % to 74 % (and raises its bonus to
    8 %): the borrower's 1.1 becomes 0.99 with no price answer. The monitor follows the configurator's
    CollateralConfigurationChanged (its topic is the published ABI's), the strategy rebuilds its screen and
    reports the position at that block's head with the Pool's own health factor, sized with the new bonus:
    a liquidationCall at the same timestamp repays and seizes exactly the reported amounts."""
    chain, market = world.chain, world.market

    async def scenario() -> tuple[list[Any], list[Any], int]:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(chain), session)
            lending = (LendingMarketConfig(name="aave_v3", addresses_provider=str(market.provider.address)),)
            monitor = FlashMonitor.of(CHAIN, rpc, lending, 60.0)
            strategy = AaveLiquidation(CHAIN, Settings(min_profit_threshold=0, min_profit_bps=0), None, 0)
            events = emitted(monitor)
            await monitor.poll()
            await asyncio.to_thread(_open, world)  # 10 WETH at 2,000 USD, 15,000 USDC: 1.1
            await monitor.poll()
            assert strategy.on_events(events) == []
            events.clear()
            configure = market.configurator.functions.configureReserveAsCollateral(
                market.asset("WETH"), 7_000, 7_400, 10_800
            )
            receipt = await asyncio.to_thread(chain.transact, configure)
            (log,) = market.configurator.events.CollateralConfigurationChanged().process_receipt(receipt)
            assert "0x" + bytes(receipt["logs"][log["logIndex"]]["topics"][0]).hex() == COLLATERAL_CONFIGURATION_CHANGED
            await monitor.poll()
            return list(events), strategy.on_events(events), int(receipt["blockNumber"])

    events, found, block = asyncio.run(scenario())
    weth = market.asset("WETH").lower()
    assert [(e.event, dict(e.args).get("asset")) for e in events] == [("ReserveConfigured", weth), ("Head", None)]
    assert dict(events[0].args)["liquidation_threshold"] == 7_400
    (opportunity,) = found
    assert isinstance(opportunity, LiquidationOpportunity) and opportunity.block == block
    pools_hf = market.pool.functions.getUserAccountData(world.borrower).call(block_identifier=block)[5]
    assert opportunity.health_factor == pools_hf < WAD
    # Half the debt (0.99 > 0.95), 108 % of it in WETH at 2,000 USD: the new bonus, not the old 105 %.
    assert 15_000 * 10**6 // 2 <= opportunity.amount_in < 15_000 * 10**6 // 2 + 10**6
    assert opportunity.amount_out > opportunity.amount_in * 10**12 * 107 // 100 // 2_000
    timestamp = int(chain.w3.eth.get_block(block)["timestamp"])
    assert _liquidated_at(world, timestamp, opportunity) == (opportunity.amount_in, opportunity.amount_out)


def test_a_live_chain_runs_it_only_where_live_chains_names_it() -> None:
    chain = SimpleNamespace(name="ethereum", live=True, lending=(SimpleNamespace(name="aave_v3"),))
    off = SimpleNamespace(section=Settings(), chain=chain)
    assert "live_chains does not name it" in PLUGIN.unavailable(off)  # type: ignore[arg-type]
    on = SimpleNamespace(section=Settings(live_chains=("ethereum",)), chain=chain)
    assert PLUGIN.unavailable(on) == ""  # type: ignore[arg-type]
    dry = SimpleNamespace(section=Settings(), chain=SimpleNamespace(name="ethereum", live=False, lending=chain.lending))
    assert PLUGIN.unavailable(dry) == ""  # type: ignore[arg-type]


def test_the_contract_answers_only_its_owner(world: World) -> None:
    w3 = world.chain.w3
    contract = w3.eth.contract(address=w3.to_checksum_address(world.deployment.address), abi=artifact()["abi"])
    call = contract.functions.liquidate(
        (world.market.pool.address, world.market.asset("WETH"), world.borrower),
        [],
        (1, 0, 0, 10**9),
        (1, world.market.pool.address, 0, 0),
    )
    for sender, error in ((world.chain.account, "NotOwner()"), (world.deployment.owner, "NotACycle()")):
        with pytest.raises(ContractCustomError) as raised:
            call.call({"from": w3.to_checksum_address(sender)})
        assert "0x" + keccak(text=error)[:4].hex() in str(raised.value)


def test_the_running_agent_liquidates_live_in_the_block_after_the_price_drop(node: IpcAnvil, tmp_path: Path) -> None:
    """The whole agent, as run_agent wires it: the pair bootstrapped from its factory into the pool store,
    the market followed by the chain's monitor, the strategy sending live because the chain is live and
    live_chains names it, the bundle to a local builder that includes it."""
    chain = Chain(node.w3)
    w3 = chain.w3
    market, pair, borrower = _market_priced_by_a_pair(chain, 0x12E0)
    key_file, identity_file, deployment = deploy_executor(chain, tmp_path)
    http = f"http://127.0.0.1:{node.port}"

    async def go() -> dict[str, Any]:
        contract = w3.to_checksum_address(deployment.address)
        # The builder is paid its share (gas.builder_payment_share, 0.5 by default) in ether: the debt is USDC.
        w3.provider.make_request("anvil_setBalance", [contract, hex(10**18)])
        async with builders([BuilderBehaviour("builder", include=True)], http) as servers:
            settings = live_chain(
                node,
                servers[0].url,
                key_file,
                identity_file,
                deployment.address,
                pair.functions.factory().call(),
                wrapped_native=market.asset("WETH"),
                lending=[{"name": "aave_v3", "addresses_provider": str(market.provider.address)}],
            )
            config = live_liquidation_config(tmp_path, settings, "aave_liquidation")
            async with running(config) as (agent, api):
                strategy = agent.chains[CHAIN].strategies["aave_liquidation"]
                await eventually(lambda: _ready(strategy), 30, "the market loaded into the strategy")
                await asyncio.to_thread(market.supply, borrower, "WETH", 10 * 10**18)
                await asyncio.to_thread(market.borrow, borrower, "USDC", 15_000 * 10**6)
                await eventually(lambda: _tracks(strategy, borrower.lower()), 30, "the borrower's position")
                receipt = await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)
                entry = await eventually(lambda: outcome_of(api, "aave_liquidation"), 30, "the liquidation's outcome")
                entry["price_block"] = receipt["blockNumber"]
                entry["kept"] = market.tokens["USDC"].functions.balanceOf(contract).call()
                entry["landed_in"] = w3.eth.block_number
                entry["ether"] = w3.eth.get_balance(contract)
                return entry

    entry = asyncio.run(go())
    assert_landed_after_the_drop(entry, "debt_to_cover")
    assert entry["funding"] == "aave_v3" and entry["user"] == borrower.lower()
    assert int(entry["builder_payment"]) > 0 and entry["ether"] == 10**18 - int(entry["builder_payment"])


async def _ready(strategy: Any) -> bool:
    return strategy.book is not None


async def _tracks(strategy: Any, user: str) -> bool:
    book = strategy.book
    return book is not None and user in book._index and bool(book.position(user).debt)
