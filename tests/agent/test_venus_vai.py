"""VAI on anvil, from the published @venusprotocol/venus-protocol 10.3.0 artifacts: the core pool of
venus_fixture with the package's VAIController behind its VAIUnitroller and its VAI token, minting open, a
base and a float rate (VAI priced under its peg, so both count). Accounts that mint VAI (alone, beside vToken
borrows, repaying part and minting again) are found by the MintVAI scan and valued exactly: their
`getVAIRepayAmount`, the controller's per-block rate and its index accrued to a later block, the repayment
split of `getVAICalculateRepayAmount`, and the Comptroller's `getAccountLiquidity` with the VAI owed, to the unit.
A price drop puts a VAI minter under water: the agent sizes `liquidateVAI` for the next block (VAI accrued
there), one unit more is refused (TOO_MUCH_REPAY), and exactly that lands: it takes and seizes what was
predicted, the seizure redeems to the predicted underlying and the borrower's VAI debt is what the model
leaves. Against a small collateral the repay is lowered until the seizure fits. The collector and the
strategy find the same liquidation from the chain's logs, and its route simulates and reports it (dry-run)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from mevagent.config import GWEI, RiskLimits, VenusMarketConfig
from mevagent.core import Status
from mevagent.executor.deploy import Deployment
from mevagent.executor.liquidation import FundedVenusLiquidation, venus_liquidated
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending import venus_reader as reader
from mevagent.lending.providers import UniswapV2FlashProvider
from mevagent.lending.venus import (
    EXP,
    Account,
    VAIDebt,
    VAIState,
    VMarket,
    best_pair,
    liquidity,
    size_vai_liquidation,
)
from mevagent.lending.venus_monitor import VenusMonitor
from mevagent.risk import ChainLimits, RiskGate
from mevagent.state.pools import PoolStore
from mevagent.strategies.venus_liquidation import (
    Settings,
    VenusLiquidationOpportunity,
    VenusLiquidator,
    VenusRoute,
)
from testbed.arb import (
    CHAIN,
    BuilderBehaviour,
    CountingRisk,
    assert_dry_run,
    builders,
    deploy_executor,
    open_executor,
    receipt_logs,
    rpc_url,
    v2_flash_provider,
    v2_store,
)
from testbed.evm import Chain, seeded_v2_pair, start_anvil, stop_anvil
from testbed.venus import WAD, MarketSpec, VAIMinting, VenusPool, available, deploy_venus, open_vai_minting

from .conftest import _need_anvil

RATES = {"base_rate_per_year": 10 * WAD, "multiplier_per_year": 10 * WAD}
SPECS = [
    MarketSpec("USDT", 6, 1, collateral_factor=80 * WAD // 100, liquidation_threshold=85 * WAD // 100, **RATES),
    MarketSpec("ETH", 18, 2_000, **RATES),
    MarketSpec("WBNB", 18, 600, liquidation_incentive=108 * WAD // 100, **RATES),
]
# VAI's yearly rates: 20,000 % base and 10,000 % float, with VAI at 0.97 USD (300 % more): material within the
# few hundred blocks a test mines (70,080,000 blocks a year).
VAI_RATES = {"base_rate": 200 * WAD, "float_rate": 100 * WAD, "price": 97 * WAD // 100}
USERS = [Web3.to_checksum_address(f"0x{0xFA0000 + i:040x}") for i in range(5)]
DEPOSIT_USD = 5_000_000
INSUFFICIENT_SHORTFALL = 3  # ComptrollerErrorReporter.Error
TOO_MUCH_REPAY = 17
ZERO = "0x" + "00" * 20


@dataclasses.dataclass
class World:
    pool: VenusPool
    vai: VAIMinting
    chain: Chain
    swap: Contract  # ETH/VAI at 1,600 VAI per ETH: the contract sells seized ETH here
    lender: Contract  # VAI/USDT: VAI is flash-borrowed here
    key_file: Path
    identity_file: Path
    deployment: Deployment

    def store(self) -> PoolStore:
        return v2_store(self.chain, [self.swap, self.lender])

    def provider(self) -> UniswapV2FlashProvider:
        return v2_flash_provider(self.lender)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _need_anvil()
    if not available():
        pytest.fail(
            "the Venus artifacts are missing: run deploy/bootstrap.sh (it unpacks them into node_modules/.cache)"
        )
    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        pool = deploy_venus(chain, SPECS)
        minting = open_vai_minting(pool, **VAI_RATES)
        for user in USERS:
            w3.provider.make_request("anvil_impersonateAccount", [user])
        for spec in SPECS:
            pool.supply(chain.account, spec.symbol, DEPOSIT_USD * 10**spec.decimals // spec.price_usd)
        # The pairs' VAI, minted by the deployer against its supply.
        chain.transact(minting.controller.functions.mintVAI(2_600_000 * WAD))
        chain.transact(pool.tokens["ETH"].functions.faucet(1_000 * WAD))
        chain.transact(pool.tokens["USDT"].functions.faucet(1_000_000 * 10**6))
        swap = seeded_v2_pair(chain, pool.tokens["ETH"], 1_000 * WAD, minting.vai, 1_600_000 * WAD)
        lender = seeded_v2_pair(chain, minting.vai, 1_000_000 * WAD, pool.tokens["USDT"], 1_000_000 * 10**6)
        key_file, identity_file, deployment = deploy_executor(chain, tmp_path_factory.mktemp("venus-vai"))
        yield World(pool, minting, chain, swap, lender, key_file, identity_file, deployment)
    finally:
        stop_anvil(proc)


def _url(pool: VenusPool) -> str:
    return str(pool.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


def _mine(pool: VenusPool, blocks: int) -> int:
    if blocks:
        pool.chain.w3.provider.make_request("anvil_mine", [hex(blocks)])
    return int(pool.chain.w3.eth.block_number)


@dataclasses.dataclass
class View:
    comptroller: reader.Comptroller
    markets: dict[str, VMarket]
    prices: dict[str, int]
    vai: VAIState
    accounts: dict[str, Account]


async def _read(pool: VenusPool, block: int) -> View:
    """What the agent reads at `block`: the pool, the VAI controller's state, and every account a borrow log or a
    MintVAI log named since deployment."""
    async with aiohttp.ClientSession() as session:
        rpc = HttpJsonRpc(_url(pool), session)
        at = hex(block)
        comptroller = await reader.read_comptroller(rpc, str(pool.comptroller.address), at)
        markets = {v: await reader.read_market(rpc, comptroller.address, v, at) for v in comptroller.markets}
        prices = await reader.read_prices(rpc, comptroller.oracle, comptroller.markets, at)
        vai = await reader.read_vai(rpc, comptroller.vai_controller, comptroller.oracle, at)
        users = await reader.scan_borrowers(rpc, comptroller.markets, 0, block, span=500)
        for minter in await reader.scan_vai_minters(rpc, comptroller.vai_controller, 0, block, span=500):
            users.setdefault(minter, {})
        accounts = {
            u: await reader.read_account(rpc, comptroller.address, u, s, at, comptroller.vai_controller)
            for u, s in users.items()
        }
    return View(comptroller, markets, prices, vai, accounts)


def _view(pool: VenusPool, block: int) -> View:
    return asyncio.run(_read(pool, block))


def _mintable(world: World, user: str) -> int:
    error, mintable = world.vai.controller.functions.getMintableVAI(user).call()
    assert error == 0
    return int(mintable)


def _mint(world: World, user: str, percent: int) -> int:
    """`user` mints `percent` of the VAI it may mint."""
    amount = _mintable(world, user) * percent // 100
    world.pool.send(user, world.vai.controller.functions.mintVAI(amount))
    return amount


def _vai_events(world: World, receipt: dict[str, Any], name: str) -> list[Any]:
    controller = world.vai.controller
    found = getattr(controller.events, name)().process_receipt(receipt, errors=DISCARD)
    return [e for e in found if e.address == controller.address]


def test_vai_debt_and_liquidity_equal_the_controller_and_the_comptroller(world: World) -> None:
    """Three minters (VAI alone; VAI beside a vToken borrow; VAI repaid in part, then minted again, which moves
    interest into pastVAIInterest), interest accrued once and then left stored, the VAI price moved (the float
    rate): every account's VAI owed is `getVAIRepayAmount`, its liquidity `getAccountLiquidity`, the controller's
    rate `getVAIRepayRatePerBlock`, its index accrued to the next block what `accrueVAIInterest` writes there, and
    repayments split as `getVAICalculateRepayAmount` splits them."""
    pool, controller = world.pool, world.vai.controller
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        alone, beside, again = USERS[:3]
        pool.supply(alone, "ETH", 10 * WAD)
        _mint(world, alone, 60)
        pool.supply(beside, "USDT", 20_000 * 10**6)
        pool.borrow(beside, "ETH", 3 * WAD)
        _mint(world, beside, 50)
        pool.supply(again, "WBNB", 40 * WAD)
        _mint(world, again, 40)
        _mine(pool, 150)
        pool.send(again, world.vai.vai.functions.approve(controller.address, 2**256 - 1))
        pool.send(again, controller.functions.repayVAI(1_000 * WAD))
        _mine(pool, 50)
        _mint(world, again, 30)  # the interest since its index moves into pastVAIInterest
        assert controller.functions.pastVAIInterest(again).call() > 0
        _mine(pool, 120)
        chain.transact(controller.functions.accrueVAIInterest())  # logs nothing: the index moves silently
        _mine(pool, 80)  # stored from here
        chain.transact(pool.oracle.functions.setDirectPrice(world.vai.vai.address, 93 * WAD // 100))
        pool.set_price("ETH", 1_900)
        block = _mine(pool, 0)
        view = _view(pool, block)
        assert {alone.lower(), beside.lower(), again.lower()} <= set(view.accounts)
        vai = view.vai
        assert vai.controller == str(controller.address).lower()
        assert vai.mint_index == controller.functions.vaiMintIndex().call()
        assert vai.rate_per_block == controller.functions.getVAIRepayRatePerBlock().call() > 0
        assert vai.price == 93 * WAD // 100 and vai.yearly_rate == controller.functions.getVAIRepayRate().call()
        for user in (alone, beside, again):
            account = view.accounts[user.lower()]
            assert account.vai.owed(vai) == controller.functions.getVAIRepayAmount(user).call() > 0
            error, excess, shortfall = pool.comptroller.functions.getAccountLiquidity(user).call()
            ours = liquidity(account, view.markets, view.prices, vai)
            assert (error, excess, shortfall) == (0, ours.liquidity, ours.shortfall), user
            for repay in (1, 777 * WAD, account.vai.owed(vai), account.vai.owed(vai) + 5):
                split = controller.functions.getVAICalculateRepayAmount(user, repay).call()
                assert tuple(split) == account.vai.repay_parts(vai, repay), (user, repay)
        # Without the VAI controller's state an account that minted cannot be valued.
        with pytest.raises(ValueError, match="minted VAI"):
            liquidity(view.accounts[alone.lower()], view.markets, view.prices)
        chain.transact(controller.functions.accrueVAIInterest())  # mined in block + 1
        assert vai.accrued(block + 1).mint_index == controller.functions.vaiMintIndex().call()
        later = _view(pool, block + 1).vai
        assert (later.accrual_block, later.mint_index) == (block + 1, vai.accrued(block + 1).mint_index)
        for user in (alone, beside, again):
            owed = view.accounts[user.lower()].vai.owed(later)
            assert owed == controller.functions.getVAIRepayAmount(user).call()
    finally:
        chain.revert(snapshot)


def _liquidate_vai(world: World, liquidator: str, borrower: str, repay: int, collateral: str) -> dict[str, Any]:
    call = world.vai.controller.functions.liquidateVAI(borrower, repay, world.pool.vtokens[collateral].address)
    return world.pool.send(liquidator, call)


def _refusal(world: World, receipt: dict[str, Any]) -> int | None:
    """The Comptroller's error in the VAI controller's Failure log (its `detail`: liquidateVAI refuses without
    reverting)."""
    failures = _vai_events(world, receipt, "Failure")
    return int(failures[0].args.detail) if failures else None


def _vai_liquidator(world: World, liquidator: str) -> None:
    """`liquidator` holds VAI (minted against USDT) and lets the controller burn and take it."""
    world.pool.supply(liquidator, "USDT", 500_000 * 10**6)
    _mint(world, liquidator, 50)
    world.pool.send(liquidator, world.vai.vai.functions.approve(world.vai.controller.address, 2**256 - 1))


def test_price_drop_vai_liquidation_is_exact(world: World) -> None:
    pool, controller, token = world.pool, world.vai.controller, world.vai.vai
    chain, w3 = world.pool.chain, world.pool.chain.w3
    snapshot = chain.snapshot()
    try:
        borrower, liquidator, small = USERS[0], USERS[1], USERS[2]
        pool.supply(borrower, "ETH", 10 * WAD)  # 20,000 USD at a 70 % collateral factor: 14,000 VAI mintable
        _mint(world, borrower, 95)
        _vai_liquidator(world, liquidator)
        _mine(pool, 200)
        block = _mine(pool, 0)
        view = _view(pool, block)
        veth = str(pool.vtokens["ETH"].address).lower()
        account = view.accounts[borrower.lower()]
        assert best_pair(account, view.markets, view.prices, block + 1, view.vai) == (view.vai.controller, veth)
        assert size_vai_liquidation(account, veth, view.markets, view.prices, view.vai, WAD // 2, block + 1) is None
        refused = _liquidate_vai(world, liquidator, borrower, 10 * WAD, "ETH")
        assert _refusal(world, refused) == INSUFFICIENT_SHORTFALL

        pool.set_price("ETH", 1_600)  # 16,000 USD at an 80 % threshold: 12,800 against ~13,300 VAI
        block = _mine(pool, 0)
        view = _view(pool, block)
        account = view.accounts[borrower.lower()]
        _, _, shortfall = pool.comptroller.functions.getAccountLiquidity(borrower).call()
        assert liquidity(account, view.markets, view.prices, view.vai).shortfall == shortfall > 0
        sized = size_vai_liquidation(
            account, veth, view.markets, view.prices, view.vai, view.comptroller.close_factor, block + 1
        )
        assert sized is not None and sized.vai and sized.borrowed == view.vai.controller
        assert 0 <= sized.repay - sized.paid <= 2  # the repayment split truncates
        # A vToken liquidation of the same account would value VAI at the stored index: a smaller shortfall.
        assert sized.shortfall > liquidity(account, view.markets, view.prices, view.vai).shortfall
        before = chain.snapshot()
        too_much = _liquidate_vai(world, liquidator, borrower, sized.repay + 1, "ETH")  # mined in block + 1
        assert too_much["blockNumber"] == block + 1 and _refusal(world, too_much) == TOO_MUCH_REPAY
        chain.revert(before)

        held_vai = token.functions.balanceOf(liquidator).call()
        held_eth = pool.tokens["ETH"].functions.balanceOf(liquidator).call()
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            tx = {"from": liquidator, "gas": 5_000_000, "gasPrice": 0}
            vcollateral = pool.vtokens["ETH"]
            sent = [
                controller.functions.liquidateVAI(borrower, sized.repay, vcollateral.address).transact(tx),
                vcollateral.functions.redeem(sized.seized).transact(tx),
            ]
            w3.provider.make_request("evm_mine", [])
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        receipts = [dict(w3.eth.get_transaction_receipt(h)) for h in sent]
        assert [r["status"] for r in receipts] == [1, 1] and receipts[0]["blockNumber"] == block + 1
        assert _refusal(world, receipts[0]) is None
        (event,) = _vai_events(world, receipts[0], "LiquidateVAI")
        assert (event.args.repayAmount, event.args.seizeTokens) == (sized.paid, sized.seized)
        assert event.args.borrower == borrower and event.args.vTokenCollateral == vcollateral.address
        assert held_vai - token.functions.balanceOf(liquidator).call() == sized.paid
        assert pool.tokens["ETH"].functions.balanceOf(liquidator).call() - held_eth == sized.seized_underlying
        # What the borrower owes after it, as repayVAIFresh leaves its position.
        at = view.vai.accrued(block + 1)
        burnt, _current, past = account.vai.repay_parts(at, sized.repay)
        left = VAIDebt(account.vai.minted - burnt - past, account.vai.past_interest - past, account.vai.index)
        assert controller.functions.getVAIRepayAmount(borrower).call() == left.owed(at)
        assert pool.comptroller.functions.mintedVAIs(borrower).call() == left.minted

        # A small USDT collateral beside ETH: the close factor would seize more USDT than it holds.
        pool.supply(small, "ETH", 10 * WAD)
        pool.supply(small, "USDT", 300 * 10**6)
        _mint(world, small, 95)
        pool.set_price("ETH", 1_300)  # 10,655 USD at the thresholds against ~10,870 VAI
        block = _mine(pool, 0)
        view = _view(pool, block)
        vusdt = str(pool.vtokens["USDT"].address).lower()
        account = view.accounts[small.lower()]
        capped = size_vai_liquidation(
            account, vusdt, view.markets, view.prices, view.vai, view.comptroller.close_factor, block + 1
        )
        assert capped is not None and capped.seized <= account.tokens[vusdt]
        assert capped.repay < view.comptroller.close_factor * account.vai.owed(view.vai.accrued(block + 1)) // EXP
        before = chain.snapshot()
        over = controller.functions.liquidateVAI(small, capped.repay + 1, pool.vtokens["USDT"].address)
        reverted = chain.transact(over, expect_success=False, sender=liquidator, gas=5_000_000)
        assert reverted["status"] == 0 and reverted["blockNumber"] == block + 1  # VAI_LIQUIDATE_SEIZE_TOO_MUCH
        chain.revert(before)
        landed = _liquidate_vai(world, liquidator, small, capped.repay, "USDT")
        assert landed["blockNumber"] == block + 1
        (event,) = _vai_events(world, landed, "LiquidateVAI")
        assert (event.args.repayAmount, event.args.seizeTokens) == (capped.paid, capped.seized)
    finally:
        chain.revert(snapshot)


def test_collector_and_strategy_find_the_vai_liquidation(world: World, tmp_path: Path) -> None:
    """The collector loads the pool (a VAI minter with no vToken borrow found by the MintVAI scan, the controller's
    state), follows a second minter's MintVAI log and the price drop; the strategy, fed its events, emits the
    `liquidateVAI` sized for the next block from fresh reads; its route simulates that block (allowed, exactly what
    it takes and seizes) and reports it dry-run through the risk gate, and fails one off by a unit naming why;
    then exactly that liquidation lands."""
    pool, controller = world.pool, world.vai.controller
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        borrower, liquidator, later = USERS[0], USERS[1], USERS[3]
        pool.supply(borrower, "ETH", 10 * WAD)
        _mint(world, borrower, 95)
        _vai_liquidator(world, liquidator)
        vwbnb = str(pool.vtokens["WBNB"].address).lower()
        config = VenusMarketConfig(
            name="venus", comptroller=str(pool.comptroller.address), native_market=vwbnb, history_from_block=0
        )
        strategy = VenusLiquidator("bsc", Settings(), priority_fee_wei=10**9, builder_share_bps=5_000)

        async def follow() -> tuple[list[Any], list[Any], int]:
            async with aiohttp.ClientSession() as session:
                monitor = VenusMonitor.of("bsc", HttpJsonRpc(_url(pool), session), (config,))
                events: list[Any] = []

                async def emit(event: object) -> None:
                    events.append(event)

                monitor._emit = emit
                await monitor.poll()  # the load
                at_load = strategy.on_events(events)
                events.clear()
                pool.supply(later, "WBNB", 100 * WAD)
                _mint(world, later, 50)  # followed from its MintVAI log
                _mine(pool, 50)
                pool.set_price("ETH", 1_600)
                await monitor.poll()
                assert not monitor.feeds[0].error
                return at_load, strategy.on_events(events), int(chain.w3.eth.block_number)

        at_load, found, block = asyncio.run(follow())
        assert at_load == []
        (opportunity,) = found
        assert isinstance(opportunity, VenusLiquidationOpportunity) and opportunity.vai
        view = _view(pool, block)
        assert strategy.vai == view.vai
        assert later.lower() in strategy.accounts and strategy.accounts[later.lower()].vai.minted > 0
        for user in (borrower, later):
            assert strategy.accounts[user.lower()] == view.accounts[user.lower()]
        veth = str(pool.vtokens["ETH"].address).lower()
        sized = size_vai_liquidation(
            view.accounts[borrower.lower()], veth, view.markets, view.prices, view.vai, view.comptroller.close_factor,
            block + 1,
        )  # fmt: skip
        assert sized is not None
        assert (opportunity.user, opportunity.borrowed, opportunity.collateral) == (
            borrower.lower(),
            str(controller.address).lower(),
            veth,
        )
        assert (opportunity.amount_in, opportunity.paid, opportunity.seized, opportunity.amount_out) == (
            sized.repay,
            sized.paid,
            sized.seized,
            sized.seized_underlying,
        )
        assert opportunity.hops[0].token_in == str(world.vai.vai.address).lower()

        limits = RiskLimits(max_position_size_usd=100_000, max_total_exposure_usd=10**6, max_chain_exposure_usd=10**6)
        gate = RiskGate(limits.updated({"max_token_exposure_usd": 10**6}), {"bsc": ChainLimits(100 * GWEI)}, tmp_path)

        async def routed(found: VenusLiquidationOpportunity) -> Any:
            async with aiohttp.ClientSession() as session:
                return await VenusRoute(gate, HttpJsonRpc(_url(pool), session)).execute(found)

        reported = asyncio.run(routed(opportunity))
        assert reported.status == Status.DRY_RUN, reported.reason
        assert reported.realized_profit_usd == opportunity.profit_usd > 0
        off = asyncio.run(routed(dataclasses.replace(opportunity, seized=opportunity.seized + 1)))
        assert off.status == Status.FAILED and f"seizes {sized.seized} vTokens" in off.reason
        taken = asyncio.run(routed(dataclasses.replace(opportunity, paid=opportunity.paid + 1)))
        assert taken.status == Status.FAILED and f"takes {sized.paid} VAI" in taken.reason
        over = asyncio.run(routed(dataclasses.replace(opportunity, amount_in=sized.repay + 1)))
        assert over.status == Status.FAILED and f"error {TOO_MUCH_REPAY}" in over.reason
        assert int(chain.w3.eth.block_number) == block  # simulated, nothing mined

        landed = _liquidate_vai(world, liquidator, borrower, opportunity.amount_in, "ETH")
        assert landed["blockNumber"] == block + 1
        (event,) = _vai_events(world, landed, "LiquidateVAI")
        assert (event.args.repayAmount, event.args.seizeTokens) == (opportunity.paid, opportunity.seized)
    finally:
        chain.revert(snapshot)


def _executed(world: World, *, live: bool) -> tuple[VenusLiquidationOpportunity, Any, list[Any], int]:
    """Collector -> strategy (the lender's fee counted) -> route -> the ArbitrageExecutor with the agent's contract
    and a local builder, around a price drop that puts a VAI minter under water. (found, outcome, reports,
    bundles the builder received)."""
    pool, chain = world.pool, world.chain
    borrower = USERS[4]

    async def scenario() -> tuple[VenusLiquidationOpportunity, Any, list[Any], int]:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            vwbnb = str(pool.vtokens["WBNB"].address).lower()
            market = VenusMarketConfig(name="venus", comptroller=str(pool.comptroller.address), native_market=vwbnb)
            monitor = VenusMonitor.of(CHAIN, rpc, (market,))
            settings = Settings(min_profit_threshold=0, min_profit_bps=0, live_chains=(CHAIN,) if live else ())
            provider = world.provider()
            strategy = VenusLiquidator(CHAIN, settings, priority_fee_wei=0, providers=lambda: [provider])
            events: list[object] = []

            async def collect(event: object) -> None:
                events.append(event)

            monitor._emit = collect
            await monitor.poll()
            await asyncio.to_thread(pool.supply, borrower, "ETH", 10 * WAD)
            await asyncio.to_thread(_mint, world, borrower, 95)
            await monitor.poll()
            assert strategy.on_events(events) == []  # healthy
            events.clear()
            await asyncio.to_thread(pool.set_price, "ETH", 1_600)
            await monitor.poll()
            found = [o for o in strategy.on_events(events) if isinstance(o, VenusLiquidationOpportunity)]
            assert len(found) == 1 and found[0].vai, found
            risk = CountingRisk()
            executor = await open_executor(world, servers[0], risk, live=live)
            executor.flash_providers = lambda: [provider]
            try:
                outcome = await VenusRoute(risk, rpc, executor, lambda: 0.0).execute(found[0])
            finally:
                await executor.aclose()
            return found[0], outcome, list(executor.reports), len(servers[0].bundles)

    return asyncio.run(scenario())


def test_vai_liquidation_through_the_contract_lands_keeping_the_prediction(world: World) -> None:
    """With the agent's contract: VAI flash-borrowed from a VAI/USDT pair, `liquidateVAI` on the controller, the
    seized vETH redeemed and sold for VAI on an ETH/VAI pair, the loan repaid. Dry-run simulates it to the wei and
    sends nothing; live, it lands in the block it was sized for: the controller takes and seizes exactly the
    strategy's amounts and the contract keeps exactly the predicted VAI (the unit or two of the loan liquidateVAI
    did not take among it)."""
    chain, pool, token = world.chain, world.pool, world.vai.vai
    contract = world.deployment.address
    snapshot = chain.snapshot()
    try:
        owner = Web3.to_checksum_address(world.deployment.owner)
        nonce = chain.w3.eth.get_transaction_count(owner)
        dry = chain.snapshot()
        found, outcome, reports, bundles = _executed(world, live=False)
        funded = assert_dry_run(chain, world.deployment, nonce, outcome, reports, FundedVenusLiquidation)
        assert funded.borrowed_vai and bundles == 0
        chain.revert(dry)

        found, outcome, reports, bundles = _executed(world, live=True)
        assert outcome.status is Status.LANDED, outcome.reason
        funded = outcome.opportunity
        assert isinstance(funded, FundedVenusLiquidation) and funded.loan is not None and funded.borrowed_vai
        assert funded.loan.lender == world.lender.address.lower() and funded.hops[0].pool == world.swap.address.lower()
        assert (funded.borrowed_vtoken, funded.amount_in, funded.seized_vtokens, funded.collateral_seized) == (
            str(world.vai.controller.address).lower(),
            found.amount_in,
            found.seized,
            found.amount_out,
        )
        assert funded.vai_left == found.amount_in - found.paid
        kept = funded.swap_out + funded.vai_left - found.amount_in - funded.loan.fee
        assert kept > 0 and funded.gross_profit == kept
        checksummed = Web3.to_checksum_address(contract)
        assert token.functions.balanceOf(checksummed).call() == kept  # it held none before: to the wei
        (report,) = reports
        assert report.profit_wei == kept and bundles >= 1
        receipt = chain.w3.eth.get_transaction_receipt(report.tx_hash)
        assert receipt["blockNumber"] == found.block + 1
        (event,) = _vai_events(world, dict(receipt), "LiquidateVAI")
        assert (event.args.repayAmount, event.args.seizeTokens) == (found.paid, found.seized)
        veth = pool.vtokens["ETH"]
        assert venus_liquidated(receipt_logs(receipt), contract) == [
            (USERS[4].lower(), veth.address.lower(), found.amount_in, found.seized, found.amount_out)
        ]
        assert veth.functions.balanceOf(checksummed).call() == 0
        assert pool.tokens["ETH"].functions.balanceOf(checksummed).call() == 0
    finally:
        chain.revert(snapshot)
