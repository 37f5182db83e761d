"""Venus liquidations executed by the agent's contract, on anvil against the published Venus 10.3.0 contracts
(testbed/venus.py) and Uniswap V2 pairs from @uniswap/v2-core: the chain's Venus collector follows
the pool, the venus_liquidation strategy sizes the liquidation a price drop allows, its route plans it (the
USDT debt flash-borrowed from a USDT/WBNB pair, `liquidateBorrow` on vUSDT, the seized vETH redeemed, the ETH
swapped back to USDT through an ETH/USDT pair) and the ArbitrageExecutor simulates it in the next block at
the head, asks the risk gate, signs and sends it to a local builder that includes it. The contract keeps
exactly the predicted USDT and the vToken repays and seizes exactly the strategy's amounts; a liquidation
another searcher took first fails the head simulation and nothing is sent; dry-run simulates to the wei and
sends nothing; a Comptroller that accepts only its liquidator contract is refused at plan time; the strategy
decides on the plan's loan fee (a minimum cleared only before it emits nothing, and the route refuses a plan
that misses it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from web3 import Web3
from web3.logs import DISCARD

from mevagent.config import VenusMarketConfig
from mevagent.core import Hop, LendingEvent, Outcome, Status
from mevagent.executor.executor import ExecutionReport
from mevagent.executor.liquidation import FundedVenusLiquidation, venus_liquidated
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending.providers import UniswapV2FlashProvider
from mevagent.lending.venus import EXP, mul_truncate
from mevagent.lending.venus_monitor import VenusMonitor
from mevagent.lending.venus_reader import ZERO, ExecutionTerms
from mevagent.state.pools import PoolStore
from mevagent.strategies.venus_liquidation import (
    PLUGIN,
    Settings,
    VenusLiquidationOpportunity,
    VenusLiquidator,
    VenusRoute,
    plan_found,
)
from testbed.arb import (
    BuilderBehaviour,
    CountingRisk,
    assert_dry_run,
    builders,
    open_executor,
    receipt_logs,
    rpc_url,
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
from testbed.venus import BORROWER, RIVAL, WAD, LiquidationWorld, build_liquidation_world, open_borrow

from .conftest import snapshot_fixtures

CHAIN = "anvil"
built, world = snapshot_fixtures(build_liquidation_world, "venus-execution", ("built", "world"))


@dataclass
class Run:
    found: VenusLiquidationOpportunity
    outcome: Outcome
    reports: list[ExecutionReport]
    risk: CountingRisk
    bundles: int  # eth_sendBundle requests the builder received
    events: list[object]  # every event the collector emitted, in order
    provider: UniswapV2FlashProvider
    route_calls: list[str]  # the JSON-RPC methods the route itself asked its node


class CountingRpc:
    """The route's node, counting what the route asks it."""

    def __init__(self, rpc: HttpJsonRpc) -> None:
        self.rpc, self.calls = rpc, list[str]()

    async def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        return await self.rpc.call(method, params)


def _run(
    world: LiquidationWorld,
    *,
    live: bool,
    before: Callable[[VenusLiquidationOpportunity], None] | None = None,
    before_drop: Callable[[], None] | None = None,
    minimum: float = 0.0,
    strategy_lenders: bool = True,
) -> Run:
    """Collector -> strategy -> route -> executor, as the agent wires them, around a price drop. `minimum`: the
    route's min_profit_threshold (the strategy's is 0); `strategy_lenders`: whether the strategy knows the
    lender (as it does with a contract) or decides without a loan fee; `before_drop`: run after the collector
    loaded the pool, before the price drop's block; `before`: after the sizing, before the route."""
    chain, pool = world.chain, world.pool
    vwbnb = str(pool.vtokens["WBNB"].address).lower()

    async def scenario() -> Run:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            market = VenusMarketConfig(name="venus", comptroller=str(pool.comptroller.address), native_market=vwbnb)
            monitor = VenusMonitor.of(CHAIN, rpc, (market,))
            settings = Settings(min_profit_threshold=0, min_profit_bps=0, live_chains=(CHAIN,) if live else ())
            provider = world.provider()
            lenders = (lambda: [provider]) if strategy_lenders else None
            strategy = VenusLiquidator(CHAIN, settings, priority_fee_wei=0, providers=lenders)
            events: list[object] = []
            seen: list[object] = []

            async def collect(event: object) -> None:
                events.append(event)
                seen.append(event)

            monitor._emit = collect
            await monitor.poll()
            await asyncio.to_thread(open_borrow, pool)  # 10 ETH at 2,000 USD, 95 % of its borrowing power in USDT
            await monitor.poll()
            assert strategy.on_events(events) == []  # healthy
            events.clear()
            if before_drop is not None:
                await asyncio.to_thread(before_drop)
            await asyncio.to_thread(pool.set_price, "ETH", 1_600)  # 16,000 USD at an 80 % threshold vs ~13,300
            await monitor.poll()
            assert not monitor.feeds[0].error
            found = [o for o in strategy.on_events(events) if isinstance(o, VenusLiquidationOpportunity)]
            assert len(found) == 1, found
            risk = CountingRisk()
            executor = await open_executor(world, servers[0], risk, live=live)
            executor.flash_providers = lambda: [provider]
            if before is not None:
                await asyncio.to_thread(before, found[0])
            node = CountingRpc(rpc)
            try:
                outcome = await VenusRoute(risk, node, executor, lambda: minimum).execute(found[0])
            finally:
                await executor.aclose()
            bundles = len(servers[0].bundles)
            return Run(found[0], outcome, list(executor.reports), risk, bundles, seen, provider, node.calls)

    return asyncio.run(scenario())


def test_a_price_drop_is_liquidated_live_and_the_contract_keeps_the_prediction_to_the_wei(
    world: LiquidationWorld,
) -> None:
    pool, w3 = world.pool, world.chain.w3
    contract = world.deployment.address
    run = _run(world, live=True)
    found, outcome = run.found, run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None
    assert (funded.user, funded.amount_in, funded.seized_vtokens, funded.collateral_seized) == (
        BORROWER.lower(),
        found.amount_in,
        found.seized,
        found.amount_out,
    )
    assert funded.loan.lender == world.lender.address.lower() and funded.hops[0].pool == world.swap.address.lower()
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert kept > 0 and funded.gross_profit == kept
    assert world.usdt(contract) == kept  # the contract held nothing before: to the wei
    (report,) = run.reports
    assert report.profit_wei == kept and report.funding == "uniswap_v2" and run.bundles >= 1
    # The Comptroller's terms came with the liquidation (read when the collector loaded the pool): the route
    # asked its node nothing on the way to the executor.
    assert found.terms == ExecutionTerms(ZERO, 0) and run.route_calls == []
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    assert receipt["blockNumber"] == found.block + 1  # the block it was sized for
    vusdt, veth = pool.vtokens["USDT"], pool.vtokens["ETH"]
    (event,) = vusdt.events.LiquidateBorrow().process_receipt(receipt, errors=DISCARD)
    assert (event.args.borrower, event.args.repayAmount, event.args.seizeTokens) == (
        BORROWER,
        found.amount_in,
        found.seized,
    )
    assert venus_liquidated(receipt_logs(receipt), contract) == [
        (BORROWER.lower(), veth.address.lower(), found.amount_in, found.seized, found.amount_out)
    ]
    checksummed = Web3.to_checksum_address(contract)
    assert veth.functions.balanceOf(checksummed).call() == 0  # every seized vToken redeemed
    assert pool.tokens["ETH"].functions.balanceOf(checksummed).call() == 0  # all of it sold
    assert w3.eth.get_balance(checksummed) == 0
    # The borrower owes what it borrowed less the repay, and the interest of a few blocks (under a cent).
    borrowed = int(vusdt.events.Borrow().get_logs(from_block=0)[-1].args.borrowAmount)
    owed = vusdt.functions.borrowBalanceStored(BORROWER).call()
    assert borrowed - found.amount_in < owed < borrowed - found.amount_in + 10**4


def test_the_loan_fee_is_decided_on_and_the_emitted_profit_is_what_the_contract_keeps(world: LiquidationWorld) -> None:
    """The strategy counts the fee of the lender the plan borrows from: the emitted liquidation's profit is the
    oracle's seized value less the repay and exactly the plan's loan fee, and what the route hands the executor
    is what the contract keeps (to the wei). A minimum the profit clears only before the fee: the strategy emits
    nothing (deciding without the fee, as it did, it would), and a route planning one the strategy did not
    charge the fee refuses it at plan time, nothing signed."""
    pool = world.pool
    fresh = world.chain.snapshot()
    run = _run(world, live=True)
    found, outcome = run.found, run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None
    assert found.flashloan_fee == funded.loan.fee > 0 and found.details()["flashloan_fee"] == str(funded.loan.fee)
    usdt, eth = pool.price_mantissa("USDT", 1), pool.price_mantissa("ETH", 1_600)
    fee_usd = mul_truncate(usdt, found.flashloan_fee)
    profit = mul_truncate(eth, found.amount_out) - mul_truncate(usdt, found.amount_in) - fee_usd
    assert found.profit_usd == profit / EXP
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert world.usdt(world.deployment.address) == kept == funded.gross_profit == run.reports[0].profit_wei
    assert funded.profit_usd == kept * found.notional_usd / found.amount_in

    net = found.profit_usd - found.gas_cost_usd  # after the fee (gas costs nothing here)
    between = net + fee_usd / EXP / 2  # cleared before the fee, not after it

    def emitted(threshold: float, lenders: bool) -> list[VenusLiquidationOpportunity]:
        settings = Settings(min_profit_threshold=threshold, min_profit_bps=0)
        strategy = VenusLiquidator(CHAIN, settings, 0, providers=(lambda: [run.provider]) if lenders else None)
        return [o for o in strategy.on_events(run.events) if isinstance(o, VenusLiquidationOpportunity)]

    assert [o.id for o in emitted(net - 0.01, lenders=True)] == [found.id]
    assert emitted(between, lenders=True) == []
    assert [o.flashloan_fee for o in emitted(between, lenders=False)] == [0]  # the fee ignored: it would be sent

    world.chain.revert(fresh)  # the same price drop again, planned by a route with that minimum
    owner = Web3.to_checksum_address(world.deployment.owner)
    nonce = world.chain.w3.eth.get_transaction_count(owner)
    refused = _run(world, live=True, minimum=between, strategy_lenders=False)
    assert refused.outcome.status is Status.REJECTED
    assert f"after the {found.flashloan_fee} loan fee" in refused.outcome.reason
    assert "is below the minimum" in refused.outcome.reason and "min_profit_threshold" in refused.outcome.reason
    assert refused.reports == [] and refused.bundles == 0 and refused.risk.checks == []
    assert world.chain.w3.eth.get_transaction_count(owner) == nonce


def test_a_redeem_fee_to_the_treasury_is_taken_off_the_plan_to_the_wei(world: LiquidationWorld) -> None:
    """The Comptroller's treasuryPercent: the vETH redemption sends that share to the treasury; the plan takes it
    off what the contract receives and swaps, and the contract keeps exactly the prediction."""
    pool = world.pool
    treasury = Web3.to_checksum_address(f"0x{0xBE5200:040x}")
    percent = 5 * WAD // 1000  # 0.5 %
    world.chain.transact(pool.comptroller.functions._setTreasuryData(world.chain.account, treasury, percent))
    run = _run(world, live=True)
    found, outcome = run.found, run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None
    fee = found.amount_out * percent // WAD
    assert fee > 0 and funded.redeem_fee == fee and funded.collateral_seized == found.amount_out - fee
    assert pool.tokens["ETH"].functions.balanceOf(treasury).call() == fee
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert world.usdt(world.deployment.address) == kept == run.reports[0].profit_wei
    receipt = world.chain.w3.eth.get_transaction_receipt(run.reports[0].tx_hash)
    ((_, _, _, seized, redeemed),) = venus_liquidated(receipt_logs(receipt), world.deployment.address)
    assert (seized, redeemed) == (found.seized, found.amount_out - fee)


def test_a_liquidation_another_searcher_took_first_fails_the_head_simulation_and_nothing_is_sent(
    world: LiquidationWorld,
) -> None:
    pool, w3 = world.pool, world.chain.w3
    owner = Web3.to_checksum_address(world.deployment.owner)
    pool.fund(RIVAL, "USDT", 10**7 * 10**6)

    def rival_first(found: VenusLiquidationOpportunity) -> None:
        # Between our sizing and our execution, another liquidator repays the same amount.
        vusdt, veth = pool.vtokens["USDT"], pool.vtokens["ETH"]
        pool.send(RIVAL, vusdt.functions.liquidateBorrow(BORROWER, found.amount_in, veth.address))
        assert veth.functions.balanceOf(RIVAL).call() == found.seized

    nonce = w3.eth.get_transaction_count(owner)
    run = _run(world, live=True, before=rival_first)
    outcome = run.outcome
    # The rival's liquidation left the borrower healthy: vUSDT answers INSUFFICIENT_SHORTFALL (3) and the
    # contract reverts with it.
    assert outcome.status is Status.FAILED, outcome.reason
    vusdt = pool.vtokens["USDT"].address.lower()
    assert outcome.reason == f"simulation reverted: VenusRefused({vusdt}, 3)"
    assert w3.eth.get_transaction_count(owner) == nonce and run.bundles == 0
    assert world.usdt(world.deployment.address) == 0
    assert outcome.tx_hashes == () and run.risk.checks == [] and run.risk.records == []


def test_dry_run_simulates_the_liquidation_to_the_wei_and_sends_nothing(world: LiquidationWorld) -> None:
    w3 = world.chain.w3
    owner = Web3.to_checksum_address(world.deployment.owner)
    nonce = w3.eth.get_transaction_count(owner)
    run = _run(world, live=False)
    assert_dry_run(world.chain, world.deployment, nonce, run.outcome, run.reports, FundedVenusLiquidation)
    assert run.bundles == 0 and world.usdt(world.deployment.address) == 0


def test_a_comptroller_with_a_liquidator_contract_is_refused_at_plan_time(world: LiquidationWorld) -> None:
    """Set after the collector loaded the pool: its NewLiquidatorContract log makes the collector re-read the terms
    (`VenusTerms`), and the liquidation found in a later block is refused at plan time without asking the node."""
    only = Web3.to_checksum_address(f"0x{0xBE5100:040x}")
    fresh = world.chain.snapshot()

    def set_liquidator() -> None:
        world.chain.transact(world.pool.comptroller.functions._setLiquidatorContract(only))

    run = _run(world, live=True, before_drop=set_liquidator)
    (terms,) = [e for e in run.events if isinstance(e, LendingEvent) and e.event == "VenusTerms"]
    assert dict(terms.args)["liquidator"] == only.lower() and run.found.terms == ExecutionTerms(only.lower(), 0)
    assert run.outcome.status is Status.REJECTED
    assert f"accepts only its liquidator contract {only.lower()}" in run.outcome.reason
    assert run.reports == [] and run.bundles == 0 and run.risk.checks == [] and run.route_calls == []

    # Set between the sizing and the execution (the terms the liquidation carries are a block old): the head
    # simulation meets the Comptroller's refusal (UNAUTHORIZED) and nothing is signed.
    world.chain.revert(fresh)
    owner = Web3.to_checksum_address(world.deployment.owner)
    nonce = world.chain.w3.eth.get_transaction_count(owner)
    raced = _run(world, live=True, before=lambda _: set_liquidator())
    assert raced.found.terms == ExecutionTerms(ZERO, 0)
    vusdt = world.pool.vtokens["USDT"].address.lower()
    assert raced.outcome.status is Status.FAILED  # vUSDT's COMPTROLLER_REJECTION (3), the contract reverting with it
    assert raced.outcome.reason == f"simulation reverted: VenusRefused({vusdt}, 3)"
    assert raced.outcome.tx_hashes == () and raced.bundles == 0 and raced.risk.checks == []
    assert world.chain.w3.eth.get_transaction_count(owner) == nonce


def test_what_the_contract_cannot_run_is_refused_at_plan_time_naming_why() -> None:
    found = VenusLiquidationOpportunity(
        chain=CHAIN, strategy="venus_liquidation", block=1,
        hops=(Hop("0x" + "c0" * 20, "venus_liquidation", "0x" + "d0" * 20, "0x" + "00" * 20),),
        amount_in=10**6, amount_out=10**18, gas_limit=900_000, gas_price=0, builder_payment=0, notional_usd=1.0,
        profit_usd=1.0, gas_cost_usd=0.0, found_ns=0, user="0x" + "a0" * 20, borrowed="0x" + "b1" * 20,
        collateral="0x" + "b2" * 20, seized=10**8,
    )  # fmt: skip
    store = PoolStore(CHAIN)
    assert plan_found(found, store=store, providers=[], min_net_usd=0.0) == (
        None,
        "venus liquidation: a vBNB (native) leg trades as the wrapped native: none is configured",
    )
    wrapped = "0x" + "f0" * 20  # the vBNB collateral is swapped as the wrapped native
    assert plan_found(found, store=store, providers=[], min_net_usd=0.0, wrapped_native=wrapped) == (
        None,
        f"liquidation: no pool in the store swaps {wrapped} for {'0x' + 'd0' * 20}",
    )
    same = dataclasses.replace(found, hops=(dataclasses.replace(found.hops[0], token_out="0x" + "d0" * 20),))
    funded, reason = plan_found(same, store=store, providers=[], min_net_usd=0.0)
    assert funded is None and "there is nothing to swap" in reason
    other = dataclasses.replace(found, hops=(dataclasses.replace(found.hops[0], token_out="0x" + "d1" * 20),))
    funded, reason = plan_found(other, store=store, providers=[], min_net_usd=0.0)
    assert funded is None and reason.startswith("liquidation: no pool in the store swaps")


def test_a_live_chain_runs_it_only_where_live_chains_names_it() -> None:
    chain = SimpleNamespace(name="bsc", live=True, venus=(SimpleNamespace(name="venus"),))
    off = SimpleNamespace(section=Settings(), chain=chain)
    assert "live_chains does not name it" in PLUGIN.unavailable(off)  # type: ignore[arg-type]
    on = SimpleNamespace(section=Settings(live_chains=("bsc",)), chain=chain)
    assert PLUGIN.unavailable(on) == ""  # type: ignore[arg-type]
    dry = SimpleNamespace(section=Settings(), chain=SimpleNamespace(name="bsc", live=False, venus=chain.venus))
    assert PLUGIN.unavailable(dry) == ""  # type: ignore[arg-type]


def test_the_running_agent_liquidates_live_in_the_block_after_the_price_drop(node: IpcAnvil, tmp_path: Path) -> None:
    """The whole agent, as run_agent wires it: the swap pair bootstrapped from its factory into the pool store,
    the lender pair a configured flash provider, the pool followed by the chain's Venus collector, the
    strategy sending live because the chain is live and live_chains names it, the bundle to a local builder
    that includes it."""
    chain = Chain(node.w3)
    w3 = chain.w3
    world = build_liquidation_world(chain, tmp_path)
    pool = world.pool
    contract = Web3.to_checksum_address(world.deployment.address)
    # The builder is paid its share (gas.builder_payment_share, 0.5 by default) in ether: the debt is USDT.
    w3.provider.make_request("anvil_setBalance", [contract, hex(10**18)])
    http = f"http://127.0.0.1:{node.port}"

    async def go() -> dict[str, Any]:
        async with builders([BuilderBehaviour("builder", include=True)], http) as servers:
            venus = {
                "name": "venus",
                "comptroller": str(pool.comptroller.address),
                "native_market": str(pool.vtokens["WBNB"].address),
            }
            settings = live_chain(
                node,
                servers[0].url,
                world.key_file,
                world.identity_file,
                world.deployment.address,
                world.swap.functions.factory().call(),
                wrapped_native=pool.tokens["WBNB"].address,
                flash_providers=[{"name": "lender", "protocol": "uniswap_v2", "address": world.lender.address}],
                venus=[venus],
            )
            config = live_liquidation_config(tmp_path, settings, "venus_liquidation")
            async with running(config) as (agent, api):
                strategy = agent.chains[CHAIN].strategies["venus_liquidation"]
                await eventually(lambda: _true(strategy.loaded), 30, "the pool loaded into the strategy")
                await asyncio.to_thread(open_borrow, pool)
                await eventually(lambda: _true(BORROWER.lower() in strategy.accounts), 30, "the borrower's account")
                receipt = await asyncio.to_thread(pool.set_price, "ETH", 1_600)
                entry = await eventually(lambda: outcome_of(api, "venus_liquidation"), 30, "the liquidation's outcome")
                entry["price_block"] = receipt["blockNumber"]
                entry["kept"] = world.usdt(contract)
                entry["landed_in"] = w3.eth.block_number
                entry["ether"] = w3.eth.get_balance(contract)
                return entry

    entry = asyncio.run(go())
    assert_landed_after_the_drop(entry, "repay")
    assert entry["funding"] == "lender" and entry["user"] == BORROWER.lower()
    assert entry["borrowed_vtoken"] == str(pool.vtokens["USDT"].address).lower()
    assert int(entry["builder_payment"]) > 0 and entry["ether"] == 10**18 - int(entry["builder_payment"])


async def _true(value: bool) -> bool:
    return value
