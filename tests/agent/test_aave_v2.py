"""Aave V2 on anvil, deployed from the published @aave/protocol-v2 artifacts, standing in for Radiant (an Aave
V2 fork whose own deployment is not published): the agent's valuation of positions with variable and
stable-rate debt equals the LendingPool's getUserAccountData to the unit for random positions, time and
price moves; a price drop makes a position liquidatable and the collateral manager repays and seizes
exactly what the agent sized; and the agent, wired as for V3 (FlashMonitor -> aave_liquidation -> route ->
ArbitrageExecutor), liquidates a V2 position live through the contract's `liquidate`, keeping exactly the
predicted profit, or in dry-run simulates it to the wei and sends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from mevagent.config import FlashProviderConfig, LendingMarketConfig
from mevagent.core import Opportunity, OracleUpdate, Outcome, Status
from mevagent.executor.contract import artifact
from mevagent.executor.deploy import Deployment
from mevagent.executor.executor import ExecutionReport
from mevagent.executor.liquidation import FundedLiquidation, liquidated
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending import aave_reader as reader
from mevagent.lending.aave_v2 import ReserveV2, size_liquidation_v2
from mevagent.lending.aave_v3 import (
    RAY,
    WAD,
    Position,
    PositionBook,
    Reserve,
    ReserveParams,
    StableDebt,
    account_data,
    percent_mul,
    size_liquidation,
)
from mevagent.lending.flash import AaveV2Provider
from mevagent.lending.monitor import FlashMonitor
from mevagent.state.pools import PoolStore
from mevagent.strategies.aave_liquidation import AaveLiquidation, LiquidationOpportunity, Liquidations, Settings
from testbed.aave import ReserveSpec, accrue_then_move_prices, assert_account_data_is_the_pools, deploy_aave, mine
from testbed.aave_v2 import STABLE, VARIABLE, AaveV2Market, deploy_aave_v2, find, weth_usdc_market_priced_by_a_pair
from testbed.arb import (
    BuilderBehaviour,
    CountingRisk,
    assert_dry_run,
    builders,
    deploy_executor,
    emitted,
    open_executor,
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
from testbed.evm import Chain, seeded_v2_pair
from testbed.pools import IpcAnvil

from .conftest import own_anvil

SPECS = [
    ReserveSpec("WETH", 18, 2_000 * 10**8),
    ReserveSpec("USDC", 6, 10**8, ltv=7_700, liquidation_threshold=8_000, liquidation_bonus=10_450),
    ReserveSpec("WBTC", 8, 60_000 * 10**8, ltv=7_000, liquidation_threshold=7_500, liquidation_bonus=10_650),
]
USERS = [Web3.to_checksum_address(f"0x{0xB22CE0 + i:040x}") for i in range(4)]
CHAIN = "anvil"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Chain]:
    with own_anvil() as chain:
        yield chain


@pytest.fixture(scope="module")
def market(anvil: Chain) -> Iterator[AaveV2Market]:
    chain = anvil
    snapshot = chain.snapshot()
    built = deploy_aave_v2(chain, SPECS)
    for user in USERS:
        chain.w3.provider.make_request("anvil_impersonateAccount", [user])
    # About 20 million USD of liquidity in every reserve: borrows use up to 90 % of it, so rates (and the
    # compounded interest's higher terms) are material.
    for spec in SPECS:
        built.supply(chain.account, spec.symbol, 20_000_000 * 10**8 * 10**spec.decimals // spec.price)
    yield built
    chain.revert(snapshot)


async def _agent_view(market: AaveV2Market, block: int, since: int) -> tuple[dict, dict, dict, int]:
    """What the agent knows at `block`: reserves loaded at `since`, then moved by their events; every
    position a V2 pool event of (since, block] named, read at `block`; the oracle's prices at `block`."""
    pool = str(market.pool.address)
    async with aiohttp.ClientSession() as session:
        rpc = HttpJsonRpc(rpc_url(market.chain), session)
        start_ts = int((await rpc.call("eth_getBlockByNumber", [hex(since), False]))["timestamp"], 16)
        reserves = await reader.read_reserves_v2(rpc, pool, start_ts, hex(since))
        logs = await rpc.call("eth_getLogs", [{"fromBlock": hex(since + 1), "toBlock": hex(block), "address": pool}])
        users: dict[str, None] = {}
        stamps: dict[str, int] = {}
        for log in logs:
            if (update := reader.reserve_update(log)) is not None:
                if log["blockHash"] not in stamps:
                    header = await rpc.call("eth_getBlockByHash", [log["blockHash"], False])
                    stamps[log["blockHash"]] = int(header["timestamp"], 16)
                asset, liquidity_rate, variable_rate, liquidity_index, variable_index = update
                reserves[asset].updated(
                    liquidity_rate, variable_rate, liquidity_index, variable_index, stamps[log["blockHash"]]
                )
            elif (user := reader.user_touched(log, reader.USER_EVENTS_V2)) is not None:
                users[user] = None
        positions = {u: await reader.read_position(rpc, pool, u, reserves, hex(block)) for u in users}
        prices = await reader.read_prices(rpc, str(market.oracle.address), list(reserves), hex(block))
        now = int((await rpc.call("eth_getBlockByNumber", [hex(block), False]))["timestamp"], 16)
    return reserves, positions, prices, now


def _borrow_share(market: AaveV2Market, user: str, collateral: str, debt: str, share: int, stable: bool) -> None:
    """Borrow `share` % of what the user's collateral allows, at a stable rate where V2 allows it."""
    available = market.pool.functions.getUserAccountData(user).call()[2]
    price = market.oracle.functions.getAssetPrice(market.asset(debt)).call()
    amount = available * share // 100 * 10 ** market.specs[debt].decimals // price
    cash = market.tokens[debt].functions.balanceOf(market.a_tokens[debt].address).call()
    # A stable loan: at most 25 % of the reserve's cash, never in the asset the user supplies as collateral.
    stable = stable and debt != collateral
    amount = min(amount, cash * (24 if stable else 90) // 100)
    if amount > 0:
        market.borrow(user, debt, amount, STABLE if stable else VARIABLE)


position_plans = st.lists(
    st.tuples(
        st.sampled_from([s.symbol for s in SPECS]),  # collateral
        st.integers(1, 10**6),  # collateral, in thousandths of one token
        st.sampled_from([s.symbol for s in SPECS]),  # debt
        st.integers(1, 99),  # percent of what the collateral allows borrowing
        st.booleans(),  # at a stable rate (where V2 allows it)
        st.integers(0, 60),  # percent of what is left borrowed again, at the other rate
    ),
    min_size=1,
    max_size=len(USERS),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=position_plans,
    seconds=st.integers(0, 2 * 365 * 24 * 3600),
    moves=st.lists(st.integers(40, 160), min_size=len(SPECS), max_size=len(SPECS)),
)
def test_health_factor_equals_get_user_account_data_to_the_unit(
    market: AaveV2Market, plans: list, seconds: int, moves: list[int]
) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        since = int(chain.w3.eth.block_number)
        for user, (collateral, thousandths, debt, share, stable, again) in zip(USERS, plans, strict=False):
            market.supply(user, collateral, max(1, thousandths * 10 ** market.specs[collateral].decimals // 1000))
            _borrow_share(market, user, collateral, debt, share, stable)
            _borrow_share(market, user, collateral, debt, again, not stable)
        block = accrue_then_move_prices(market, SPECS, seconds, moves)
        reserves, positions, prices, now = asyncio.run(_agent_view(market, block, since))
        assert all(isinstance(r, ReserveV2) for r in reserves.values())
        assert set(positions) == {u.lower() for u in USERS[: len(plans)]} | {chain.account.lower()}
        liquidatable = assert_account_data_is_the_pools(market, positions, reserves, prices, now, block)
        # The book's screen (floats, with the stable debt's growth bounded) finds exactly those.
        book = PositionBook(reserves, prices)
        for position in positions.values():
            book.set_position(position)
        assert {p.user for p, _ in book.evaluate_all(now)} == liquidatable
        for asset in reserves:  # a stable-only debt holds its asset too
            held = [p for p in positions.values() if p.collateral.get(asset) or p.debt.get(asset) or asset in p.stable]
            assert book.holders(asset) == len(held)
    finally:
        chain.revert(snapshot)


def test_a_price_drop_makes_a_stable_and_variable_debt_liquidatable_and_the_pool_pays_what_the_agent_sized(
    market: AaveV2Market,
) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    # One second per block from here: the debts are the same on every run (no borrows before), and so is
    # the collateral manager's rounding, which this price and these amounts make count (V3's order differs).
    t0 = int(chain.w3.eth.get_block("latest")["timestamp"]) + 100
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [t0])
    chain.w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
    try:
        since = int(chain.w3.eth.block_number)
        borrower, liquidator = USERS[0], USERS[1]
        market.supply(borrower, "WETH", 10 * WAD)  # 20,000 USD of collateral, liquidation threshold 82.5 %
        market.borrow(borrower, "USDC", 9_000 * 10**6, VARIABLE)
        market.borrow(borrower, "USDC", 6_000 * 10**6, STABLE)
        chain.w3.provider.make_request("evm_setNextBlockTimestamp", [t0 + 30 * 24 * 3600])
        block = mine(chain, 0)
        reserves, positions, prices, now = asyncio.run(_agent_view(market, block, since))
        position = positions[borrower.lower()]
        usdc, weth = market.asset("USDC").lower(), market.asset("WETH").lower()
        assert position.stable[usdc].principal == 6_000 * 10**6 and position.debt[usdc] > 0
        book = PositionBook(reserves, prices)
        for p in positions.values():
            book.set_position(p)
        assert book.on_price(weth, prices[weth], now) == []
        # 14,843 USD weighted < 15,000 USDC + interest; a price that makes the collateral manager's rounding count
        drop = 179_912_345_678
        receipt = market.set_price("WETH", drop)
        block = int(receipt["blockNumber"])
        now = int(chain.w3.eth.get_block(block)["timestamp"])
        ((found, data),) = book.on_price(weth, drop, now)
        assert found.user == borrower.lower() and data.health_factor < WAD
        assert data.health_factor == market.pool.functions.getUserAccountData(borrower).call(block_identifier=block)[5]
        market.fund(liquidator, "USDC", 10**12)
        # Sized at the liquidation's own block: half the stable plus variable debt as it is then.
        next_ts = int(chain.w3.eth.get_block("latest")["timestamp"]) + 12
        plan = size_liquidation_v2(found, weth, usdc, book.reserves, book.prices, next_ts)
        chain.w3.provider.make_request("evm_setNextBlockTimestamp", [next_ts])
        before = market.tokens["WETH"].functions.balanceOf(liquidator).call()
        pool = market.pool.functions
        call = pool.liquidationCall(market.asset("WETH"), market.asset("USDC"), borrower, 2**256 - 1, False)
        tx = market._send(liquidator, call)
        (event,) = market.pool.events.LiquidationCall().process_receipt(tx, errors=DISCARD)
        assert event["args"]["debtToCover"] == plan.debt_to_cover  # the pool's own cap: the stable debt valued
        assert event["args"]["liquidatedCollateralAmount"] == plan.collateral_seized
        assert market.tokens["WETH"].functions.balanceOf(liquidator).call() - before == plan.collateral_seized
    finally:
        chain.w3.provider.make_request("anvil_removeBlockTimestampInterval", [])
        chain.revert(snapshot)


def test_the_flashloan_premium_is_what_the_pool_charges_and_its_cash_follows_its_events(market: AaveV2Market) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        receiver = chain.deploy(find("MockFlashLoanReceiver"), market.provider.address)
        pool = str(market.pool.address).lower()

        async def provider() -> AaveV2Provider:
            async with aiohttp.ClientSession() as session:
                rpc = HttpJsonRpc(rpc_url(chain), session)
                bps = await reader.flashloan_premium(rpc, pool)
                a_tokens = {market.asset(s.symbol).lower(): str(market.a_tokens[s.symbol].address) for s in SPECS}
                return await AaveV2Provider.load(CHAIN, rpc, pool, a_tokens, bps, chain.w3.eth.block_number)

        loaded = asyncio.run(provider())
        assert loaded.premium_bps == 9 and loaded.kind == "aave_v2"
        since = int(chain.w3.eth.block_number)
        market.supply(USERS[2], "WETH", 3 * WAD)
        market.borrow(USERS[2], "USDC", 1_000 * 10**6, STABLE)
        market.borrow(USERS[2], "USDC", 500 * 10**6, VARIABLE)
        for symbol, amount in (("WETH", 123_456_789_123_456_789), ("USDC", 999_999), ("WBTC", 1)):
            asset = market.asset(symbol)
            receipt = chain.transact(
                market.pool.functions.flashLoan(receiver.address, [asset], [amount], [0], chain.account, b"", 0)
            )
            (event,) = market.pool.events.FlashLoan().process_receipt(receipt, errors=DISCARD)
            assert event["args"]["premium"] == loaded.fee(asset.lower(), amount) == amount * 9 // 10_000, symbol
        market.fund(USERS[2], "USDC", 10**9)
        pool = market.pool.functions
        market._send(USERS[2], pool.repay(market.asset("USDC"), 2**256 - 1, STABLE, USERS[2]))
        market._send(USERS[2], pool.repay(market.asset("USDC"), 100 * 10**6, VARIABLE, USERS[2]))
        market._send(USERS[2], market.pool.functions.withdraw(market.asset("WETH"), WAD, USERS[2]))
        logs = chain.w3.provider.make_request(
            "eth_getLogs", [{"fromBlock": hex(since + 1), "toBlock": "latest", "address": market.pool.address}]
        )["result"]
        for log in logs:
            loaded.apply(log)
        for spec in SPECS:
            held = market.tokens[spec.symbol].functions.balanceOf(market.a_tokens[spec.symbol].address).call()
            assert loaded.available(market.asset(spec.symbol).lower()) == held, spec.symbol
    finally:
        chain.revert(snapshot)


BOOK_ASSETS = ("0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20)
BOOK_DECIMALS = (18, 6, 8)
BOOK_PRICES = (2_000 * 10**8, 10**8, 60_000 * 10**8)


@settings(max_examples=40, deadline=None)
@given(
    plans=st.lists(
        st.tuples(
            st.integers(0, 2),  # collateral
            st.integers(1, 10**6),  # its USD value
            st.integers(0, 2),  # debt
            st.integers(7_000, 8_300),  # debt / collateral value, basis points: health factors 0.96 to 1.14
            st.integers(0, 100),  # percent of the debt at a stable rate
            st.integers(RAY // 20, RAY * 6 // 10),  # that stable rate: 5 % to 60 %, above the variable 5 %
        ),
        min_size=1,
        max_size=40,
    ),
    path=st.lists(st.tuples(st.integers(0, 2), st.integers(80, 120), st.integers(0, 180 * 86_400)), max_size=10),
)
def test_the_book_finds_exactly_the_liquidatable_positions_whose_stable_debt_grew(plans: list, path: list) -> None:
    """No node: V2 reserves, positions with stable-rate debt growing faster than any index, months without an
    index write: every answer returns exactly the liquidatable holders (the screen's bound covers the
    stable rates), and a stable-only debt holds its asset."""
    reserves: dict[str, Reserve] = {
        asset: ReserveV2(
            asset=asset,
            id=i,
            params=ReserveParams(7_700, 8_000, 10_500, BOOK_DECIMALS[i], True, True, 0),
            a_token=asset,
            debt_token=asset,
            liquidity_index=RAY,
            variable_borrow_index=RAY,
            liquidity_rate=RAY // 50,
            variable_borrow_rate=RAY // 20,
            last_update=1_000,
            stable_debt_token=asset,
        )
        for i, asset in enumerate(BOOK_ASSETS)
    }
    prices = dict(zip(BOOK_ASSETS, BOOK_PRICES, strict=True))
    book = PositionBook(reserves, prices)
    positions = []
    for n, (c, usd, d, ratio, share, rate) in enumerate(plans):
        position = Position(f"0x{n:040x}")
        position.collateral[BOOK_ASSETS[c]] = usd * 10**8 * 10 ** BOOK_DECIMALS[c] // BOOK_PRICES[c]
        owed = usd * ratio * 10**4 * 10 ** BOOK_DECIMALS[d] // BOOK_PRICES[d] + 1
        stable = owed * share // 100
        if owed - stable:
            position.debt[BOOK_ASSETS[d]] = owed - stable
        if stable:
            position.stable[BOOK_ASSETS[d]] = StableDebt(stable, rate, 1_000)
        positions.append(position)
        book.set_position(position)
    now = 1_000
    exact = {p.user for p in positions if account_data(p, reserves, prices, now).liquidatable}
    assert {p.user for p, _ in book.evaluate_all(now)} == exact
    for step, (index, percent, seconds) in enumerate(path):
        asset = BOOK_ASSETS[index]
        now += seconds
        if step % 3 == 2:  # the pool wrote new indexes: the floats are rebuilt, the stable debts grown to now
            reserve = reserves[asset]
            reserve.updated(reserve.liquidity_rate, reserve.variable_borrow_rate,
                            reserve.normalized_income(now), reserve.normalized_debt(now), now)  # fmt: skip
            book.reserves_updated([asset], now)
        if step % 4 == 1:  # an event named a borrower: it borrowed more at a stable rate, re-read and replaced
            changed = positions[step % len(positions)]
            debt = next(iter(changed.stable or changed.debt))
            old = changed.stable.get(debt)
            owed = old.principal if old is not None else changed.debt[debt]
            changed.stable = {**changed.stable, debt: StableDebt(owed * 11 // 10, RAY // 2, now)}
            book.set_position(changed)
        price = BOOK_PRICES[index] * percent // 100
        found = {p.user for p, _ in book.on_price(asset, price, now)}
        prices[asset] = price
        expected = {
            p.user
            for p in positions
            if (asset in p.collateral or asset in p.debt or asset in p.stable)
            and account_data(p, reserves, prices, now).liquidatable
        }
        assert found == expected, (asset, price, now)
    for asset in BOOK_ASSETS:
        assert book.holders(asset) == sum(
            1 for p in positions if {asset} & (p.collateral.keys() | p.debt.keys() | p.stable.keys())
        )


def test_a_market_names_its_protocol_and_an_unknown_one_is_refused() -> None:
    provider = "0x" + "11" * 20
    assert LendingMarketConfig(name="radiant", protocol="aave_v2", addresses_provider=provider).protocol == "aave_v2"
    assert LendingMarketConfig(name="aave_v3", addresses_provider=provider).protocol == "aave_v3"
    with pytest.raises(ValidationError, match="protocol\n  Input should be 'aave_v3' or 'aave_v2'"):
        LendingMarketConfig(name="radiant", protocol="radiant", addresses_provider=provider)


# -- live on anvil: the agent's own wiring ------------------------------------------------------------------


@dataclass
class World:
    chain: Chain
    market: AaveV2Market
    pair: Contract  # where the seized WETH is swapped back
    lender: Contract  # a second WETH/USDC pair: the flash swap that lends the USDC
    key_file: Path
    identity_file: Path
    deployment: Deployment
    borrower: str

    def usdc(self, holder: str) -> int:
        return int(self.market.tokens["USDC"].functions.balanceOf(self.chain.w3.to_checksum_address(holder)).call())

    def store(self) -> PoolStore:
        return v2_store(self.chain, [self.pair, self.lender])


@pytest.fixture(scope="module")
def world(anvil: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chain, w3 = anvil, anvil.w3
    snapshot = chain.snapshot()
    market, pair = weth_usdc_market_priced_by_a_pair(chain, SPECS[:2])
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    lender = seeded_v2_pair(chain, weth, 100 * 10**18, usdc, 180_000 * 10**6)  # lends up to that
    supplier, borrower = (w3.to_checksum_address(f"0x{0x21E0 + i:040x}") for i in range(2))
    for user in (supplier, borrower):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    market.supply(supplier, "USDC", 1_000_000 * 10**6)
    key_file, identity_file, deployment = deploy_executor(chain, tmp_path_factory.mktemp("aave-v2"))
    yield World(chain, market, pair, lender, key_file, identity_file, deployment, borrower)
    chain.revert(snapshot)


@dataclass
class Run:
    found: list[LiquidationOpportunity]
    outcome: Outcome
    reports: list[ExecutionReport]
    monitor: FlashMonitor


def _open(world: World) -> None:
    world.market.supply(world.borrower, "WETH", 10 * 10**18)
    world.market.borrow(world.borrower, "USDC", 9_000 * 10**6, VARIABLE)
    world.market.borrow(world.borrower, "USDC", 6_000 * 10**6, STABLE)


def _run(world: World, *, live: bool, opened_before: bool) -> Run:
    """Monitor -> strategy -> route -> executor around a price drop, the market named `radiant` (protocol
    aave_v2); with `opened_before` the position predates the monitor and is found by its history scan."""
    chain, market = world.chain, world.market

    async def scenario() -> Run:
        async with (
            aiohttp.ClientSession() as session,
            builders([BuilderBehaviour("winner", include=True)], rpc_url(chain)) as servers,
        ):
            rpc = HttpJsonRpc(rpc_url(chain), session)
            history = {"history_from_block": 0} if opened_before else {}
            provider = str(market.provider.address)
            lending = (LendingMarketConfig(name="radiant", protocol="aave_v2", addresses_provider=provider, **history),)
            lender = FlashProviderConfig(name="lender", protocol="uniswap_v2", address=str(world.lender.address))
            monitor = FlashMonitor.of(CHAIN, rpc, lending, 60.0, (lender,))
            settings = Settings(
                market="radiant", min_profit_threshold=0, min_profit_bps=0, live_chains=(CHAIN,) if live else ()
            )
            strategy = AaveLiquidation(CHAIN, settings, market.asset("WETH").lower(), 0, 0)
            events = emitted(monitor)
            if opened_before:
                await asyncio.to_thread(_open, world)
            await monitor.poll()
            if not opened_before:
                await asyncio.to_thread(_open, world)  # learnt from the V2 pool's Deposit and Borrow events
                await monitor.poll()
            assert strategy.on_events(events) == []  # healthy
            book = strategy.book
            assert book is not None and book.position(world.borrower.lower()).stable
            events.clear()
            # 10 WETH at 1,800 USD, 82.5 % threshold, 15,000 USDC owed: health factor 0.99
            await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)
            await monitor.poll()
            found = [o for o in strategy.on_events(events) if isinstance(o, LiquidationOpportunity)]
            assert len(found) == 1, found
            executor = await open_executor(world, servers[0], CountingRisk(), live=live)
            executor.flash_providers = monitor.providers
            try:
                outcome = await Liquidations(executor.risk, executor).execute(found[0])
            finally:
                await executor.aclose()
            await monitor.poll()
            return Run(found, outcome, list(executor.reports), monitor)

    return asyncio.run(scenario())


@pytest.fixture
def fresh(world: World) -> Iterator[World]:
    snapshot = world.chain.snapshot()
    yield world
    world.chain.revert(snapshot)


def test_a_v2_position_found_by_the_history_scan_is_liquidated_live_and_the_contract_keeps_the_prediction(
    fresh: World,
) -> None:
    world = fresh
    market, w3, contract = world.market, world.chain.w3, world.deployment.address
    run = _run(world, live=True, opened_before=True)
    (found,) = run.found
    assert found.user == world.borrower.lower() and found.hops[0].pool == str(market.pool.address).lower()
    outcome = run.outcome
    assert outcome.status is Status.LANDED, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, FundedLiquidation) and funded.loan is not None
    # The V2 pool lends the USDC (flashLoan, 9 bps: cheaper than the pair's 0.3 %) while it liquidates.
    assert funded.loan.lender == str(market.pool.address).lower() and funded.loan.kind == "aave_v2"
    assert funded.loan.fee == found.amount_in * 9 // 10_000 == found.flashloan_fee
    assert funded.amount_in == found.amount_in and funded.collateral_seized == found.amount_out
    kept = funded.swap_out - found.amount_in - funded.loan.fee
    assert kept > 0 and funded.gross_profit == kept
    assert world.usdc(contract) == kept  # to the wei: the contract held nothing before
    (report,) = run.reports
    assert report.profit_wei == kept and report.funding == "radiant"
    receipt = w3.eth.get_transaction_receipt(report.tx_hash)
    (event,) = market.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["user"] == world.borrower
    assert event["args"]["debtToCover"] == found.amount_in
    assert event["args"]["liquidatedCollateralAmount"] == found.amount_out
    logs = [
        {"address": log["address"], "topics": ["0x" + t.hex() for t in log["topics"]], "data": "0x" + log["data"].hex()}
        for log in receipt["logs"]
    ]
    assert liquidated({"logs": logs}, contract) == [
        (world.borrower.lower(), market.asset("WETH").lower(), found.amount_in, found.amount_out)
    ]
    # The monitor followed the liquidation into the V2 pool's cash, exactly.
    (status,) = [s for s in run.monitor.status() if s["provider"] == "radiant"]
    assert status["healthy"] and status["protocol"] == "aave_v2" and status["fee_bps"] == 9
    cash = {entry["token"]: int(entry["available"]) for entry in status["liquidity"]}
    for symbol in ("WETH", "USDC"):
        held = market.tokens[symbol].functions.balanceOf(market.a_tokens[symbol].address).call()
        assert cash[market.asset(symbol).lower()] == held, symbol


def test_dry_run_simulates_the_v2_liquidation_to_the_wei_and_sends_nothing(fresh: World) -> None:
    world = fresh
    w3 = world.chain.w3
    owner = w3.to_checksum_address(world.deployment.owner)
    nonce = w3.eth.get_transaction_count(owner)
    run = _run(world, live=False, opened_before=False)
    assert_dry_run(world.chain, world.deployment, nonce, run.outcome, run.reports, FundedLiquidation)
    assert world.usdc(world.deployment.address) == 0
    debt = world.market.debt_tokens["USDC"].functions.balanceOf(world.borrower).call()
    assert debt >= 9_000 * 10**6  # nothing repaid


def test_the_strategy_takes_only_its_own_markets_events_and_the_answers_of_the_sources_it_loaded(
    fresh: World,
) -> None:
    """Two markets on one chain: the strategy set on `radiant` ignores another market's events; an
    `AnswerUpdated` of a source the market had at load (no source change) is evaluated."""
    _open(fresh)
    strategy = AaveLiquidation(CHAIN, Settings(market="aave_v3", min_profit_threshold=0, min_profit_bps=0), None, 0)

    async def load() -> list[Any]:
        async with aiohttp.ClientSession() as session:
            provider = str(fresh.market.provider.address)
            config = LendingMarketConfig(
                name="radiant", protocol="aave_v2", addresses_provider=provider, history_from_block=0
            )
            monitor = FlashMonitor.of(CHAIN, HttpJsonRpc(rpc_url(fresh.chain), session), (config,), 60.0)
            events = emitted(monitor)
            await monitor.poll()
            return events

    events = asyncio.run(load())
    assert events and all(getattr(e, "protocol", "radiant") == "radiant" for e in events)
    strategy.on_events(events)
    assert strategy.book is None  # not its market
    strategy.settings = Settings(market="radiant", min_profit_threshold=0, min_profit_bps=0)
    assert strategy.on_events(events) == []  # healthy
    assert strategy.book is not None and all(isinstance(r, ReserveV2) for r in strategy.book.reserves.values())
    assert set(strategy.sources.values()) == set(strategy.book.reserves)  # each asset's price source, from AssetPrice
    weth = fresh.market.asset("WETH").lower()
    (feed,) = [source for source, asset in strategy.sources.items() if asset == weth]
    block = fresh.chain.w3.eth.block_number
    (found,) = strategy.on_events([OracleUpdate(CHAIN, feed, 1_800 * 10**8, block, 0)])
    assert isinstance(found, LiquidationOpportunity) and found.user == fresh.borrower.lower()


def test_the_v2_flashloan_callback_answers_only_a_loan_the_contract_took(fresh: World) -> None:
    w3 = fresh.chain.w3
    contract = w3.eth.contract(address=w3.to_checksum_address(fresh.deployment.address), abi=artifact()["abi"])
    callback = contract.get_function_by_signature("executeOperation(address[],uint256[],uint256[],address,bytes)")
    usdc = fresh.market.asset("USDC")
    for initiator in (contract.address, fresh.chain.account):  # no loan outstanding; someone else's loan
        with pytest.raises(ContractCustomError) as raised:
            callback([usdc], [10**6], [900], initiator, b"").call({"from": fresh.chain.account})
        assert "0x" + keccak(text="UnexpectedCallback(address)")[:4].hex() in str(raised.value)


def test_the_running_agent_liquidates_a_radiant_market_live_in_the_block_after_the_price_drop(
    node: IpcAnvil, tmp_path: Path
) -> None:
    """The whole agent as run_agent wires it from its config: a chain whose `lending` lists a market named
    `radiant` with `protocol: aave_v2`, the strategy's `market: radiant`, live; the V2 pool lends the debt."""
    chain = Chain(node.w3)
    w3 = chain.w3
    market, pair = weth_usdc_market_priced_by_a_pair(chain, SPECS[:2])
    supplier, borrower = (w3.to_checksum_address(f"0x{0x31E0 + i:040x}") for i in range(2))
    for user in (supplier, borrower):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    market.supply(supplier, "USDC", 1_000_000 * 10**6)
    key_file, identity_file, deployment = deploy_executor(chain, tmp_path)
    http = f"http://127.0.0.1:{node.port}"

    async def go() -> dict[str, Any]:
        contract = w3.to_checksum_address(deployment.address)
        w3.provider.make_request("anvil_setBalance", [contract, hex(10**18)])  # the builder's share, in ether
        async with builders([BuilderBehaviour("builder", include=True)], http) as servers:
            lending = {"name": "radiant", "protocol": "aave_v2", "addresses_provider": str(market.provider.address)}
            settings = live_chain(
                node,
                servers[0].url,
                key_file,
                identity_file,
                deployment.address,
                pair.functions.factory().call(),
                wrapped_native=market.asset("WETH"),
                lending=[lending],
            )
            config = live_liquidation_config(tmp_path, settings, "aave_liquidation", market="radiant")
            async with running(config) as (agent, api):
                strategy = agent.chains[CHAIN].strategies["aave_liquidation"]
                await eventually(lambda: _ready(strategy), 30, "the market loaded into the strategy")
                await asyncio.to_thread(market.supply, borrower, "WETH", 10 * 10**18)
                await asyncio.to_thread(market.borrow, borrower, "USDC", 9_000 * 10**6, VARIABLE)
                await asyncio.to_thread(market.borrow, borrower, "USDC", 6_000 * 10**6, STABLE)
                await eventually(lambda: _tracks_stable(strategy, borrower.lower()), 30, "the borrower's position")
                receipt = await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)
                entry = await eventually(lambda: outcome_of(api, "aave_liquidation"), 30, "the liquidation's outcome")
                entry["price_block"] = receipt["blockNumber"]
                entry["kept"] = market.tokens["USDC"].functions.balanceOf(contract).call()
                entry["landed_in"] = w3.eth.block_number
                return entry

    entry = asyncio.run(go())
    assert_landed_after_the_drop(entry, "debt_to_cover")
    assert entry["funding"] == "radiant" and entry["user"] == borrower.lower()
    assert int(entry["flashloan_fee"]) == int(entry["debt_to_cover"]) * 9 // 10_000


async def _ready(strategy: Any) -> bool:
    return strategy.book is not None


async def _tracks_stable(strategy: Any, user: str) -> bool:
    book = strategy.book
    return book is not None and user in book._index and bool(book.position(user).stable)


def test_one_strategy_liquidates_an_aave_v3_market_and_radiant_side_by_side(fresh: World) -> None:
    """Arbitrum's case: Aave V3 and Radiant on one chain, `markets: [aave_v3, radiant]`: each market's
    positions are kept apart and a price drop on both finds each one's borrower, liquidated in its own pool."""
    chain, w3 = fresh.chain, fresh.chain.w3
    v3 = deploy_aave(chain, SPECS[:2])
    v3_borrower = w3.to_checksum_address(f"0x{0x41E0:040x}")
    w3.provider.make_request("anvil_impersonateAccount", [v3_borrower])
    v3.supply(chain.account, "USDC", 1_000_000 * 10**6)
    v3.supply(v3_borrower, "WETH", 10 * 10**18)
    v3.borrow(v3_borrower, "USDC", 15_000 * 10**6)
    _open(fresh)
    lending = (
        LendingMarketConfig(name="aave_v3", addresses_provider=str(v3.provider.address), history_from_block=0),
        LendingMarketConfig(
            name="radiant",
            protocol="aave_v2",
            addresses_provider=str(fresh.market.provider.address),
            history_from_block=0,
        ),
    )
    strategy = AaveLiquidation(
        CHAIN, Settings(markets=("aave_v3", "radiant"), min_profit_threshold=0, min_profit_bps=0), None, 0
    )

    async def scenario() -> list[Opportunity]:
        async with aiohttp.ClientSession() as session:
            monitor = FlashMonitor.of(CHAIN, HttpJsonRpc(rpc_url(chain), session), lending, 60.0)
            events = emitted(monitor)
            await monitor.poll()
            assert strategy.on_events(events) == []  # healthy, both
            events.clear()
            await asyncio.to_thread(v3.set_price, "WETH", 1_800 * 10**8)
            await asyncio.to_thread(fresh.market.set_price, "WETH", 1_800 * 10**8)
            await monitor.poll()
            return strategy.on_events(events)

    found = asyncio.run(scenario())
    v3_pool, v2_pool = str(v3.pool.address).lower(), str(fresh.market.pool.address).lower()
    assert {(o.hops[0].pool, o.hops[0].kind, o.user) for o in found if isinstance(o, LiquidationOpportunity)} == {
        (v3_pool, "aave_v3_liquidation", v3_borrower.lower()),
        (v2_pool, "aave_v2_liquidation", fresh.borrower.lower()),
    }
    books = {name: state.book for name, state in strategy.states.items()}
    assert set(books) == {"aave_v3", "radiant"}
    assert all(book is not None and len(book) == 2 for book in books.values())  # the borrower and its lender


@pytest.mark.parametrize("kind", [Reserve, ReserveV2])
def test_the_protocols_rules_are_the_reserves_not_the_strategys(kind: type[Reserve]) -> None:
    """No node: what differs between V3 and V2 (the sizing, the flashloan premium's rounding, the hop's kind) is
    answered by the reserve's class, which the strategy asks; for a health factor under 0.95 V3 lets the whole
    debt be repaid and V2 half of it, and 6,112 units at 9 bps are a premium of 6 in V3 (half up), 5 in V2."""
    weth, usdc = "0x" + "e7" * 20, "0x" + "dc" * 20
    reserves: dict[str, Reserve] = {
        asset: kind(
            asset=asset,
            id=i,
            params=ReserveParams(8_000, 8_250, 10_500, decimals, True, False, 0),
            a_token=asset,
            debt_token=asset,
            liquidity_index=RAY,
            variable_borrow_index=RAY,
            liquidity_rate=0,
            variable_borrow_rate=0,
            last_update=1_000,
        )
        for i, (asset, decimals) in enumerate(((weth, 18), (usdc, 6)))
    }
    prices = {weth: 1_600 * 10**8, usdc: 10**8}
    position = Position("0x" + "b0" * 20, {weth: 10 * WAD}, {usdc: 15_000 * 10**6})
    health = account_data(position, reserves, prices, 1_000).health_factor
    assert health < 95 * WAD // 100  # 0.88: V3's close factor is the whole debt
    sized = reserves[usdc].liquidation(position, weth, reserves, prices, 1_000, health)
    if kind is ReserveV2:
        assert sized == size_liquidation_v2(position, weth, usdc, reserves, prices, 1_000)
        assert sized.debt_to_cover == 7_500 * 10**6
        assert (reserves[usdc].flashloan_premium(6_112, 9), reserves[usdc].LIQUIDATION_HOP) == (
            5,
            "aave_v2_liquidation",
        )
    else:
        assert sized == size_liquidation(position, weth, usdc, reserves, prices, 1_000, health)
        assert sized.debt_to_cover == 15_000 * 10**6
        assert reserves[usdc].flashloan_premium(6_112, 9) == percent_mul(6_112, 9) == 6
        assert reserves[usdc].LIQUIDATION_HOP == "aave_v3_liquidation"
