"""Aave V3 on anvil, deployed from the published @aave/core-v3 artifacts: the agent's valuation of
positions equals the Pool's getUserAccountData to the unit for random positions, time and price moves,
with reserves tracked from ReserveDataUpdated and positions read when a Pool event names their owner;
the flashloan premium it predicts is what the Pool charges; and a price drop makes a position
liquidatable in the agent's book, whose sized liquidation is what the Pool's liquidationCall pays, to the
unit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.logs import DISCARD

from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending import aave_reader as reader
from mevagent.lending.aave_v3 import (
    WAD,
    PositionBook,
    account_data,
    percent_mul,
    size_liquidation,
)
from testbed.aave import (
    AaveMarket,
    ReserveSpec,
    accrue_then_move_prices,
    assert_account_data_is_the_pools,
    deploy_aave,
    find,
    mine,
)
from testbed.evm import Chain, start_anvil, stop_anvil

from .conftest import _need_anvil

SPECS = [
    ReserveSpec("WETH", 18, 2_000 * 10**8),
    ReserveSpec("USDC", 6, 10**8, ltv=7_700, liquidation_threshold=8_000, liquidation_bonus=10_450),
    ReserveSpec("WBTC", 8, 60_000 * 10**8, ltv=7_000, liquidation_threshold=7_500, liquidation_bonus=10_650),
]
USERS = [Web3.to_checksum_address(f"0x{0xA11CE0 + i:040x}") for i in range(4)]


@pytest.fixture(scope="module")
def market() -> Iterator[AaveMarket]:
    _need_anvil()
    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        built = deploy_aave(chain, SPECS)
        for user in USERS:
            w3.provider.make_request("anvil_impersonateAccount", [user])
        # About 20 million USD of liquidity in every reserve from the deployer: the users' borrows use
        # up to 90 % of it, so rates (and the compounded interest's higher terms) are material.
        for spec in SPECS:
            built.supply(chain.account, spec.symbol, 20_000_000 * 10**8 * 10**spec.decimals // spec.price)
            chain.transact(built.configurator.functions.setReserveFlashLoaning(built.asset(spec.symbol), True))
        chain.transact(built.configurator.functions.updateFlashloanPremiumTotal(9))
        yield built
    finally:
        stop_anvil(proc)


def _url(market: AaveMarket) -> str:
    return str(market.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


async def _agent_view(market: AaveMarket, block: int, since: int) -> tuple[dict, dict, dict, int]:
    """What the agent knows at `block`: reserves loaded at `since`, then moved by their events; every
    position an event of (since, block] named, read at `block`; the oracle's prices at `block`."""
    pool = str(market.pool.address)
    async with aiohttp.ClientSession() as session:
        rpc = HttpJsonRpc(_url(market), session)
        start_ts = int((await rpc.call("eth_getBlockByNumber", [hex(since), False]))["timestamp"], 16)
        reserves = await reader.read_reserves(rpc, pool, start_ts, hex(since))
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
            elif (user := reader.user_touched(log)) is not None:
                users[user] = None
        positions = {u: await reader.read_position(rpc, pool, u, reserves, hex(block)) for u in users}
        prices = await reader.read_prices(rpc, str(market.oracle.address), list(reserves), hex(block))
        now = int((await rpc.call("eth_getBlockByNumber", [hex(block), False]))["timestamp"], 16)
    return reserves, positions, prices, now


position_plans = st.lists(
    st.tuples(
        st.sampled_from([s.symbol for s in SPECS]),  # collateral
        st.integers(1, 10**6),  # collateral, in thousandths of one token unit x 10^decimals / 1000
        st.sampled_from([s.symbol for s in SPECS]),  # debt
        st.integers(1, 99),  # percent of what the collateral allows borrowing
    ),
    min_size=1,
    max_size=len(USERS),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plans=position_plans,
    seconds=st.integers(0, 2 * 365 * 24 * 3600),
    moves=st.lists(st.integers(40, 160), min_size=len(SPECS), max_size=len(SPECS)),
)
def test_health_factor_equals_get_user_account_data_to_the_unit(
    market: AaveMarket, plans: list, seconds: int, moves: list[int]
) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        since = int(chain.w3.eth.block_number)
        for user, (collateral, thousandths, debt, share) in zip(USERS, plans, strict=False):
            spec = market.specs[collateral]
            market.supply(user, collateral, max(1, thousandths * 10**spec.decimals // 1000))
            available = market.pool.functions.getUserAccountData(user).call()[2]
            price = market.oracle.functions.getAssetPrice(market.asset(debt)).call()
            amount = available * share // 100 * 10 ** market.specs[debt].decimals // price
            cash = market.tokens[debt].functions.balanceOf(market.a_tokens[debt].address).call()
            amount = min(amount, cash * 9 // 10)
            if amount > 0:
                market.borrow(user, debt, amount)
        block = accrue_then_move_prices(market, SPECS, seconds, moves)
        reserves, positions, prices, now = asyncio.run(_agent_view(market, block, since))
        # The users, and the deployer whose deposits wrote the indexes: every one of them exact.
        assert set(positions) == {u.lower() for u in USERS[: len(plans)]} | {chain.account.lower()}
        assert_account_data_is_the_pools(market, positions, reserves, prices, now, block)
    finally:
        chain.revert(snapshot)


def test_flashloan_premium_is_what_the_pool_charges(market: AaveMarket) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        receiver = chain.deploy(find("MockFlashLoanSimpleReceiver"), market.provider.address)

        async def premium_bps() -> int:
            async with aiohttp.ClientSession() as session:
                return await reader.flashloan_premium(HttpJsonRpc(_url(market), session), str(market.pool.address))

        bps = asyncio.run(premium_bps())
        assert bps == 9
        for symbol, amount in (("WETH", 123_456_789_123_456_789), ("USDC", 999_999), ("WBTC", 1)):
            receipt = chain.transact(
                market.pool.functions.flashLoanSimple(receiver.address, market.asset(symbol), amount, b"", 0)
            )
            (event,) = market.pool.events.FlashLoan().process_receipt(receipt, errors=DISCARD)
            assert event["args"]["premium"] == percent_mul(amount, bps), symbol
    finally:
        chain.revert(snapshot)


def test_a_price_drop_makes_a_position_liquidatable_and_the_pool_pays_what_the_agent_sized(
    market: AaveMarket,
) -> None:
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        since = int(chain.w3.eth.block_number)
        borrower, liquidator = USERS[0], USERS[1]
        market.supply(borrower, "WETH", 10 * WAD)  # 20,000 USD of collateral, liquidation threshold 82.5 %
        market.borrow(borrower, "USDC", 15_000 * 10**6)
        block = mine(market.chain, 3600)
        reserves, positions, prices, now = asyncio.run(_agent_view(market, block, since))
        book = PositionBook(reserves, prices)
        for position in positions.values():
            book.set_position(position)
        assert book.on_price(market.asset("WETH").lower(), prices[market.asset("WETH").lower()], now) == []
        # 1,800 USD: 10 WETH x 1,800 x 0.825 = 14,850 < 15,000 + interest.
        weth = market.asset("WETH").lower()
        receipt = market.set_price("WETH", 1_800 * 10**8)
        block = int(receipt["blockNumber"])
        now = int(chain.w3.eth.get_block(block)["timestamp"])
        ((position, data),) = book.on_price(weth, 1_800 * 10**8, now)
        assert position.user == borrower.lower() and data.health_factor < WAD
        pools_hf = market.pool.functions.getUserAccountData(borrower).call(block_identifier=block)[5]
        assert data.health_factor == pools_hf
        # The liquidation mined in the next block: the agent sizes it at that block's timestamp.
        next_ts = now + 12
        chain.w3.provider.make_request("evm_setNextBlockTimestamp", [next_ts])
        at_next = account_data(position, book.reserves, book.prices, next_ts)
        plan = size_liquidation(position, weth, market.asset("USDC").lower(), book.reserves, book.prices, next_ts,
                                at_next.health_factor)  # fmt: skip
        market.fund(liquidator, "USDC", plan.debt_to_cover)
        before = market.tokens["WETH"].functions.balanceOf(liquidator).call()
        tx = market._send(
            liquidator,
            market.pool.functions.liquidationCall(
                market.asset("WETH"), market.asset("USDC"), borrower, plan.debt_to_cover, False
            ),
        )
        (event,) = market.pool.events.LiquidationCall().process_receipt(tx, errors=DISCARD)
        assert event["args"]["debtToCover"] == plan.debt_to_cover
        assert event["args"]["liquidatedCollateralAmount"] == plan.collateral_seized
        received = market.tokens["WETH"].functions.balanceOf(liquidator).call() - before
        assert received == plan.collateral_seized
    finally:
        chain.revert(snapshot)
