"""Venus on anvil, deployed from the published @venusprotocol/venus-protocol 10.3.0 artifacts (the Unitroller
over the Diamond and its facets, ComptrollerLens, VBep20Immutable markets, the package's SimplePriceOracle):
the agent's account liquidity equals the Comptroller's getAccountLiquidity to the unit for random
positions, interest and price moves, with borrowers found by a scan of the vTokens' borrow logs; a price
drop puts a borrower under water, the agent sizes the largest liquidation the Comptroller allows at the next
block (both markets accrued), and `liquidateBorrow` repays and seizes exactly that, the seized vTokens
redeeming to exactly the predicted underlying; one unit more than the close factor allows, or the same
liquidation before the price drop, is refused by the Comptroller."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from web3 import Web3
from web3.logs import DISCARD

from mevagent.config import ChainConfig, VenusMarketConfig
from mevagent.core import Outcome, Status
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending import venus_reader as reader
from mevagent.lending.venus import (
    EXP,
    NATIVE,
    Account,
    VenusLiquidation,
    VMarket,
    best_pair,
    decide,
    liquidity,
    mul_truncate,
    size_liquidation,
)
from mevagent.lending.venus_monitor import VenusMonitor
from mevagent.strategies.venus_liquidation import (
    Settings,
    VenusLiquidationOpportunity,
    VenusLiquidator,
    VenusRoute,
)
from testbed.evm import Chain, start_anvil, stop_anvil
from testbed.venus import WAD, MarketSpec, VenusPool, available, deploy_venus

from .conftest import _need_anvil

# Rates near Venus' ceiling (borrowRateMaxMantissa, 5e-6 per block): anvil mines a few hundred blocks per
# second at best, so interest has to be material within that many.
RATES = {"base_rate_per_year": 10 * WAD, "multiplier_per_year": 10 * WAD}
SPECS = [
    MarketSpec("USDT", 6, 1, collateral_factor=80 * WAD // 100, liquidation_threshold=85 * WAD // 100, **RATES),
    MarketSpec("ETH", 18, 2_000, **RATES),
    MarketSpec("WBNB", 18, 600, liquidation_incentive=108 * WAD // 100, reserve_factor=20 * WAD // 100, **RATES),
    MarketSpec("BNB", 18, 600, native=True, **RATES),  # vBNB: Venus' VBNB, paid in BNB itself
]
USERS = [Web3.to_checksum_address(f"0x{0xBE0000 + i:040x}") for i in range(4)]
DEPOSIT_USD = 5_000_000  # the deployer's supply in each market: what the users borrow


@pytest.fixture(scope="module")
def pool() -> Iterator[VenusPool]:
    _need_anvil()
    if not available():
        pytest.fail(
            "the Venus artifacts are missing: run deploy/bootstrap.sh (it unpacks them into node_modules/.cache)"
        )
    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        built = deploy_venus(chain, SPECS)
        for user in USERS:
            w3.provider.make_request("anvil_impersonateAccount", [user])
        for spec in SPECS:
            built.supply(chain.account, spec.symbol, DEPOSIT_USD * 10**spec.decimals // spec.price_usd)
        yield built
    finally:
        stop_anvil(proc)


def _url(pool: VenusPool) -> str:
    return str(pool.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


async def _agent_view(pool: VenusPool, block: int) -> tuple[reader.Comptroller, dict[str, VMarket], dict, dict]:
    """What the agent reads at `block`: the Comptroller, its markets, the oracle's prices, and every account a
    Borrow or RepayBorrow log of the pool's markets named since deployment."""
    async with aiohttp.ClientSession() as session:
        rpc = HttpJsonRpc(_url(pool), session)
        at = hex(block)
        comptroller = await reader.read_comptroller(rpc, str(pool.comptroller.address), at)
        markets = {v: await reader.read_market(rpc, comptroller.address, v, at) for v in comptroller.markets}
        prices = await reader.read_prices(rpc, comptroller.oracle, comptroller.markets, at)
        snapshots = await reader.scan_borrowers(rpc, comptroller.markets, 0, block, span=200)
        accounts = {u: await reader.read_account(rpc, comptroller.address, u, s, at) for u, s in snapshots.items()}
    return comptroller, markets, prices, accounts


def _mine(pool: VenusPool, blocks: int) -> int:
    w3 = pool.chain.w3
    if blocks:
        w3.provider.make_request("anvil_mine", [hex(blocks)])
    return int(w3.eth.block_number)


def _open(pool: VenusPool, user: str, collateral: str, amount: int, debt: str, percent: int) -> None:
    """`user` supplies `amount` units of `collateral` and borrows `percent` of what its collateral factor allows."""
    pool.supply(user, collateral, amount)
    _, room, _ = pool.comptroller.functions.getHypotheticalAccountLiquidity(user, ZERO, 0, 0).call()
    spec = pool.specs[debt]
    price = pool.price_mantissa(debt, spec.price_usd)
    borrow = room * percent // 100 * EXP // price
    if borrow:
        pool.borrow(user, debt, borrow)


ZERO = "0x" + "00" * 20

plans = st.lists(
    st.tuples(
        st.sampled_from([s.symbol for s in SPECS]),
        st.integers(10, 10**5),  # collateral worth this many USD
        st.sampled_from([s.symbol for s in SPECS]),
        st.integers(1, 99),
    ),
    min_size=1,
    max_size=len(USERS),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=plans, blocks=st.integers(0, 300), moves=st.lists(st.integers(-60, 60), min_size=4, max_size=4))
def test_account_liquidity_equals_the_comptroller(
    pool: VenusPool, plans: list[tuple[str, int, str, int]], blocks: int, moves: list[int]
) -> None:
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        for user, (collateral, usd, debt, percent) in zip(USERS, plans, strict=False):
            spec = pool.specs[collateral]
            _open(pool, user, collateral, usd * 10**spec.decimals // spec.price_usd or 1, debt, percent)
        _mine(pool, blocks)
        # One market accrues after the wait (someone touches it), the others stay as stored.
        chain.transact(pool.vtokens["USDT"].functions.accrueInterest())
        for spec, move in zip(SPECS, moves, strict=True):
            pool.set_price(spec.symbol, spec.price_usd * (100 + move) / 100)
        block = _mine(pool, 0)
        _, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        assert accounts, "the scan found no borrower"
        for user, account in accounts.items():
            error, excess, shortfall = pool.comptroller.functions.getAccountLiquidity(
                Web3.to_checksum_address(user)
            ).call(block_identifier=block)
            ours = liquidity(account, markets, prices)
            assert (error, excess, shortfall) == (0, ours.liquidity, ours.shortfall), user
            for vtoken in account.borrows:
                stored = chain.w3.eth.contract(address=Web3.to_checksum_address(vtoken), abi=pool.vtokens["USDT"].abi)
                assert stored.functions.borrowBalanceStored(Web3.to_checksum_address(user)).call(
                    block_identifier=block
                ) == (account.borrow_balance(markets[vtoken]))
    finally:
        chain.revert(snapshot)


def _events(pool: VenusPool, receipt: dict[str, Any], name: str) -> list[Any]:
    out = []
    for vtoken in pool.vtokens.values():
        out += [
            e
            for e in getattr(vtoken.events, name)().process_receipt(receipt, errors=DISCARD)
            if e.address == vtoken.address
        ]
    return out


def test_price_drop_liquidation_is_exact(pool: VenusPool) -> None:
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        borrower, liquidator = USERS[0], USERS[1]
        _open(pool, borrower, "ETH", 10 * 10**18, "USDT", 95)  # 20,000 USD of ETH, ~13,300 USDT borrowed
        _mine(pool, 300)  # interest: the markets accrue only inside the liquidation
        block = _mine(pool, 0)
        _, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        account = accounts[borrower.lower()]
        vusdt, veth = (str(pool.vtokens[s].address).lower() for s in ("USDT", "ETH"))
        assert best_pair(account, markets, prices, block + 1) == (vusdt, veth)
        assert size_liquidation(account, vusdt, veth, markets, prices, WAD // 2, block + 1) is None
        pool.fund(liquidator, "USDT", 10**6 * 10**6)
        refused = _liquidate(pool, liquidator, borrower, 10**6, "ETH")
        assert _failure(pool, refused) == INSUFFICIENT_SHORTFALL

        pool.set_price("ETH", 1_600)  # 16,000 USD of ETH at an 80 % threshold: 12,800 against ~13,300
        block = _mine(pool, 0)
        comptroller, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        account = accounts[borrower.lower()]
        sized = size_liquidation(account, vusdt, veth, markets, prices, comptroller.close_factor, block + 1)
        assert sized is not None and sized.shortfall > 0
        before_drop = chain.snapshot()
        too_much = _liquidate(pool, liquidator, borrower, sized.repay + 1, "ETH")  # mined in block + 1
        assert _failure(pool, too_much) == TOO_MUCH_REPAY
        chain.revert(before_drop)

        _liquidate_and_redeem(pool, liquidator, borrower, sized, "USDT", "ETH", block + 1)
        # What the borrower owes after it: the accrued balance less the repay, as the model has it.
        accrued = markets[vusdt].accrued(block + 1)
        owed = pool.vtokens["USDT"].functions.borrowBalanceStored(borrower).call()
        assert owed == account.borrow_balance(accrued) - sized.repay
        decision = decide(
            sized,
            markets,
            prices,
            native=str(pool.vtokens["WBNB"].address).lower(),
            gas_limit=900_000,
            gas_price=10**9,
            builder_share_bps=5_000,
            flashloan_fee=sized.repay * 9 // 10_000,
            min_profit_usd=0,
        )
        assert decision.go and decision.builder_payment > 0
        assert decision.profit_usd == (
            mul_truncate(prices[veth], sized.seized_underlying)
            - mul_truncate(prices[vusdt], sized.repay)
            - mul_truncate(prices[vusdt], sized.repay * 9 // 10_000)
        )
    finally:
        chain.revert(snapshot)


def _liquidate_and_redeem(
    pool: VenusPool, liquidator: str, borrower: str, sized: VenusLiquidation, debt: str, collateral: str, block: int
) -> None:
    """`liquidateBorrow` of the sized repay and the redemption of what it seized, both in `block`: the vToken
    logs exactly the sized repay and seizure, and the redemption pays exactly the predicted underlying."""
    w3 = pool.chain.w3
    vcollateral = pool.vtokens[collateral]
    held = pool.tokens[collateral].functions.balanceOf(liquidator).call()
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        tx = {"from": liquidator, "gas": 5_000_000, "gasPrice": 0}
        liquidate = pool.vtokens[debt].functions.liquidateBorrow(borrower, sized.repay, vcollateral.address)
        sent = [liquidate.transact(tx), vcollateral.functions.redeem(sized.seized).transact(tx)]
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [dict(w3.eth.get_transaction_receipt(h)) for h in sent]
    assert [r["status"] for r in receipts] == [1, 1] and receipts[0]["blockNumber"] == block
    assert _failure(pool, receipts[0]) is None and _failure(pool, receipts[1]) is None
    (event,) = _events(pool, receipts[0], "LiquidateBorrow")
    assert (event.args.repayAmount, event.args.seizeTokens) == (sized.repay, sized.seized)
    assert event.args.vTokenCollateral == vcollateral.address and event.args.borrower == borrower
    assert pool.tokens[collateral].functions.balanceOf(liquidator).call() - held == sized.seized_underlying
    assert vcollateral.functions.balanceOf(liquidator).call() == 0


def test_vbnb_collateral_and_debt_value_and_liquidate_as_the_comptroller(pool: VenusPool) -> None:
    """The native market (Venus' VBNB from the package: paid in BNB, no ERC-20 underlying) loads like the others
    (its underlying BNB at 18 decimals, its cash the vToken's BNB balance, the oracle's price for vBNB); accounts
    with vBNB collateral, vBNB debt or both have exactly the Comptroller's liquidity after interest and price
    moves; and a liquidation repaying vBNB debt (payable `liquidateBorrow`) or seizing vBNB (redeemed in BNB)
    repays, seizes and redeems exactly what the agent sized."""
    chain, w3 = pool.chain, pool.chain.w3
    snapshot = chain.snapshot()
    try:
        collateral_only, debt_only, both, liquidator = USERS
        _open(pool, collateral_only, "BNB", 50 * 10**18, "USDT", 90)  # 30,000 USD of BNB, ~18,900 USDT
        _open(pool, debt_only, "ETH", 10 * 10**18, "BNB", 90)  # 20,000 USD of ETH, 21 BNB
        pool.supply(both, "USDT", 10_000 * 10**6)
        _open(pool, both, "BNB", 20 * 10**18, "BNB", 60)
        _mine(pool, 200)
        chain.transact(pool.vtokens["BNB"].functions.accrueInterest())  # vBNB accrued, then stored a while
        _mine(pool, 50)
        pool.fund(liquidator, "USDT", 10**6 * 10**6)
        pool.fund(liquidator, "BNB", 100 * 10**18)
        pool.set_price("BNB", 450)  # vBNB collateral under water: 18,000 at 80 % against ~18,900
        pool.set_price("ETH", 1_100)  # and ETH against vBNB debt: 8,800 against ~9,450
        block = _mine(pool, 0)
        comptroller, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        vbnb = pool.vtokens["BNB"]
        key, vusdt, veth = str(vbnb.address).lower(), *(str(pool.vtokens[s].address).lower() for s in ("USDT", "ETH"))
        market = markets[key]
        assert (market.underlying, market.decimals) == (NATIVE, 18)
        assert market.cash == w3.eth.get_balance(vbnb.address, block) > 0
        assert market.exchange_rate == vbnb.functions.exchangeRateStored().call(block_identifier=block)
        assert prices[key] == pool.price_mantissa("BNB", 450)
        shortfalls = {}
        for user in (collateral_only, debt_only, both):
            account = accounts[user.lower()]
            error, excess, shortfall = pool.comptroller.functions.getAccountLiquidity(user).call(block_identifier=block)
            ours = liquidity(account, markets, prices)
            assert (error, excess, shortfall) == (0, ours.liquidity, ours.shortfall), user
            shortfalls[user] = shortfall
        assert key in accounts[collateral_only.lower()].tokens and key in accounts[debt_only.lower()].borrows
        assert shortfalls[collateral_only] > 0 and shortfalls[debt_only] > 0 and shortfalls[both] == 0

        target = block + 1
        seize_bnb = size_liquidation(
            accounts[collateral_only.lower()], vusdt, key, markets, prices, comptroller.close_factor, target
        )
        repay_bnb = size_liquidation(
            accounts[debt_only.lower()], key, veth, markets, prices, comptroller.close_factor, target
        )
        assert seize_bnb is not None and repay_bnb is not None
        bnb_before = w3.eth.get_balance(liquidator)
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            tx = {"from": liquidator, "gas": 5_000_000, "gasPrice": 0}
            usdt_debt = pool.vtokens["USDT"].functions.liquidateBorrow(collateral_only, seize_bnb.repay, vbnb.address)
            sent = [
                usdt_debt.transact(tx),
                vbnb.functions.redeem(seize_bnb.seized).transact(tx),
                vbnb.functions.liquidateBorrow(debt_only, pool.vtokens["ETH"].address).transact(
                    {**tx, "value": repay_bnb.repay}
                ),
            ]
            w3.provider.make_request("evm_mine", [])
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        receipts = [dict(w3.eth.get_transaction_receipt(h)) for h in sent]
        assert [(r["status"], r["blockNumber"]) for r in receipts] == [(1, target)] * 3
        assert [_failure(pool, r) for r in receipts] == [None] * 3
        (seized_bnb,) = _events(pool, receipts[0], "LiquidateBorrow")
        assert (seized_bnb.args.repayAmount, seized_bnb.args.seizeTokens) == (seize_bnb.repay, seize_bnb.seized)
        (repaid_bnb,) = _events(pool, receipts[2], "LiquidateBorrow")
        assert (repaid_bnb.args.repayAmount, repaid_bnb.args.seizeTokens) == (repay_bnb.repay, repay_bnb.seized)
        # The redeemed BNB is exactly the sized underlying; the repay was paid out of the same balance.
        assert w3.eth.get_balance(liquidator) - bnb_before == seize_bnb.seized_underlying - repay_bnb.repay
        assert pool.vtokens["ETH"].functions.balanceOf(liquidator).call() == repay_bnb.seized
    finally:
        chain.revert(snapshot)


def test_liquidation_capped_by_the_collateral_held(pool: VenusPool) -> None:
    """The close factor would seize more USDT than the borrower holds: the repay is lowered until the seizure
    fits, and the Comptroller takes exactly that (one unit more seizes too much and reverts)."""
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        borrower, liquidator = USERS[2], USERS[3]
        pool.supply(borrower, "USDT", 1_000 * 10**6)
        _open(pool, borrower, "ETH", 10 * 10**18, "WBNB", 95)
        _mine(pool, 100)
        pool.fund(liquidator, "WBNB", 10**6 * 10**18)
        pool.set_price("ETH", 1_500)
        block = _mine(pool, 0)
        comptroller, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        account = accounts[borrower.lower()]
        vwbnb, vusdt = (str(pool.vtokens[s].address).lower() for s in ("WBNB", "USDT"))
        sized = size_liquidation(account, vwbnb, vusdt, markets, prices, comptroller.close_factor, block + 1)
        assert sized is not None
        owed = account.borrow_balance(markets[vwbnb].accrued(block + 1))
        assert sized.repay < mul_truncate(comptroller.close_factor, owed)
        held = account.tokens[vusdt]
        assert held - 10 < sized.seized <= held  # all of it but what one more unit of repay would overshoot
        before = chain.snapshot()
        over = pool.vtokens["WBNB"].functions.liquidateBorrow(borrower, sized.repay + 1, pool.vtokens["USDT"].address)
        tx_hash = over.transact({"from": liquidator, "gas": 5_000_000, "gasPrice": 0})
        reverted = chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        assert reverted["status"] == 0 and reverted["blockNumber"] == block + 1  # LIQUIDATE_SEIZE_TOO_MUCH
        chain.revert(before)
        _liquidate_and_redeem(pool, liquidator, borrower, sized, "WBNB", "USDT", block + 1)
        assert pool.vtokens["USDT"].functions.balanceOf(borrower).call() == held - sized.seized
    finally:
        chain.revert(snapshot)


INSUFFICIENT_SHORTFALL = 3  # ComptrollerErrorReporter.Error
TOO_MUCH_REPAY = 17


def _liquidate(pool: VenusPool, liquidator: str, borrower: str, repay: int, collateral: str) -> dict[str, Any]:
    vtoken = pool.vtokens["USDT"]
    return pool.send(liquidator, vtoken.functions.liquidateBorrow(borrower, repay, pool.vtokens[collateral].address))


def _failure(pool: VenusPool, receipt: dict[str, Any]) -> int | None:
    """The Comptroller's error code in a vToken's Failure log (Compound V2 refuses without reverting)."""
    failures = _events(pool, receipt, "Failure")
    return int(failures[0].args.detail) if failures else None


def test_decision_counts_gas_and_the_builder_payment() -> None:
    market = VMarket("0xb", "0xu", 18, 0, 0, 0, 0, EXP, 0, 0, 0, EXP, 0, 0, 0)
    bnb = VMarket("0xn", "0xw", 18, 0, 0, 0, 0, EXP, 0, 0, 0, EXP, 0, 0, 0)
    prices = {"0xb": EXP, "0xn": 600 * EXP}  # a USD stablecoin (18 decimals) and BNB at 600 USD
    sized = VenusLiquidation("0xa", "0xb", "0xb", 1_000 * EXP, 0, 1_100 * EXP, 1, 1)
    markets = {"0xb": market, "0xn": bnb}
    kept = decide(sized, markets, prices, native="0xn", gas_limit=1_000_000, gas_price=10**9,
                  builder_share_bps=5_000, flashloan_fee=0, min_profit_usd=0)  # fmt: skip
    assert kept.profit_usd == 100 * EXP
    assert kept.builder_payment == 100 * EXP * EXP // (600 * EXP) // 2  # half the profit, in wei of BNB
    assert kept.net_usd == 100 * EXP - mul_truncate(600 * EXP, 10**15 + kept.builder_payment)
    assert kept.go
    unpaid = decide(sized, markets, prices, native="0xn", gas_limit=1_000_000, gas_price=10**9,
                    builder_share_bps=0, flashloan_fee=9 * EXP // 10, min_profit_usd=99 * EXP)  # fmt: skip
    assert unpaid.builder_payment == 0 and unpaid.net_usd == 99 * EXP + EXP // 10 - 6 * EXP // 10
    assert not unpaid.go and "below the minimum" in unpaid.reason
    unpriced = decide(sized, markets, {"0xb": EXP}, native="0xn", gas_limit=1, gas_price=1,
                      builder_share_bps=0, flashloan_fee=0, min_profit_usd=0)  # fmt: skip
    assert not unpriced.go


def test_account_outside_the_core_pool_is_not_sized() -> None:
    market = VMarket("0xb", "0xu", 18, 0, 0, 0, 0, EXP, 0, 0, 0, EXP, 0, 0, 0)
    account = Account("0xa", ["0xb"], {"0xb": 1}, {"0xb": (10, EXP)}, core_pool=False)
    assert size_liquidation(account, "0xb", "0xb", {"0xb": market}, {"0xb": EXP}, WAD // 2, 1) is None


def test_collector_and_strategy_find_the_liquidation(pool: VenusPool) -> None:
    """The Venus collector loads the pool (a borrower from before it started found by the history scan), follows
    a second borrower's logs and the oracle's price drop; the venus_liquidation strategy, fed its events, emits
    the liquidation sized for the next block, which liquidateBorrow repays and seizes exactly."""
    chain = pool.chain
    snapshot = chain.snapshot()
    try:
        borrower, liquidator, later = USERS[0], USERS[1], USERS[2]
        _open(pool, borrower, "ETH", 10 * 10**18, "USDT", 95)
        pool.fund(liquidator, "USDT", 10**6 * 10**6)
        vusdt, veth, vwbnb = (str(pool.vtokens[s].address).lower() for s in ("USDT", "ETH", "WBNB"))
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
                _open(pool, later, "WBNB", 100 * 10**18, "USDT", 50)  # followed from its logs
                _mine(pool, 50)
                pool.set_price("ETH", 1_600)
                await monitor.poll()
                assert not monitor.feeds[0].error
                return at_load, strategy.on_events(events), int(chain.w3.eth.block_number)

        at_load, found, block = asyncio.run(follow())
        assert at_load == []
        (opportunity,) = found
        assert isinstance(opportunity, VenusLiquidationOpportunity)
        assert (opportunity.user, opportunity.block, opportunity.route) == (
            borrower.lower(),
            block,
            "venus_liquidation",
        )
        assert later.lower() in strategy.accounts
        comptroller, markets, prices, accounts = asyncio.run(_agent_view(pool, block))
        for user in (borrower, later):
            ours = strategy.accounts[user.lower()]
            assert liquidity(ours, strategy.markets, strategy.prices) == liquidity(
                accounts[user.lower()], markets, prices
            )
        sized = size_liquidation(
            accounts[borrower.lower()], vusdt, veth, markets, prices, comptroller.close_factor, block + 1
        )
        assert sized is not None
        assert (opportunity.amount_in, opportunity.seized, opportunity.amount_out) == (
            sized.repay,
            sized.seized,
            sized.seized_underlying,
        )
        assert opportunity.builder_payment > 0 and opportunity.gas_price == 10**9

        # The route's simulation of the next block: allowed, exactly the sized seizure; one unit more refused.
        async def simulated(repay: int) -> reader.Simulated:
            async with aiohttp.ClientSession() as session:
                rpc = HttpJsonRpc(_url(pool), session)
                return await reader.simulate(rpc, comptroller.address, vusdt, veth, borrower, repay, block + 1)

        exact = asyncio.run(simulated(sized.repay))
        assert (exact.allowed, exact.seize_error, exact.seized) == (0, 0, sized.seized)
        assert mul_truncate(exact.exchange_rate, exact.seized) == sized.seized_underlying
        assert asyncio.run(simulated(sized.repay + 1)).allowed == TOO_MUCH_REPAY
        assert int(chain.w3.eth.block_number) == block  # simulated, nothing mined

        async def routed(found: VenusLiquidationOpportunity) -> Outcome:
            async with aiohttp.ClientSession() as session:
                return await VenusRoute(gate=None, node=HttpJsonRpc(_url(pool), session)).execute(found)

        off = asyncio.run(routed(dataclasses.replace(opportunity, seized=opportunity.seized + 1)))
        assert off.status == Status.FAILED and f"seizes {sized.seized} vTokens" in off.reason
        over = asyncio.run(routed(dataclasses.replace(opportunity, amount_in=sized.repay + 1)))
        assert over.status == Status.FAILED and "error 17" in over.reason
        _liquidate_and_redeem(pool, liquidator, borrower, sized, "USDT", "ETH", block + 1)
    finally:
        chain.revert(snapshot)


def test_venus_markets_are_validated_naming_the_field() -> None:
    base = {"name": "bsc", "chain_id": 56, "http_url": "http://127.0.0.1:1", "max_gas_price_gwei": 10.0}
    venus = {"name": "venus", "comptroller": "0x" + "11" * 20, "native_market": "0x" + "22" * 20}
    chain = ChainConfig.model_validate({**base, "venus": [venus]})
    assert chain.venus[0].comptroller == "0x" + "11" * 20
    with pytest.raises(ValidationError, match=r"venus\.0\.comptroller"):
        ChainConfig.model_validate({**base, "venus": [{**venus, "comptroller": "0x12"}]})
    with pytest.raises(ValidationError, match=r"a market name is listed twice"):
        aave = {"name": "venus", "addresses_provider": "0x" + "33" * 20}
        ChainConfig.model_validate({**base, "venus": [venus], "lending": [aave]})
