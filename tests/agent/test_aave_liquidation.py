"""The aave_liquidation plug-in in the running agent (dry-run), on anvil against @aave/core-v3: the chain's
lending collector follows the market, a borrow opens a position the strategy keeps from the Pool's
events, a price drop (a new AaveOracle source) makes it liquidatable, and the agent reports the
liquidation on its route: the Pool's own health factor at that block, and the debt to cover and the
collateral to seize that `liquidationCall`, sent by the test in a block with the valuation's timestamp,
then repays and seizes. The agent sends nothing: every transaction on the chain is the test's own and the
node's pool of pending transactions stays empty."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from testbed.aave import AaveMarket, ReserveSpec, deploy_aave
from testbed.e2e import agent_config, devnet_chain, eventually, load, running
from testbed.evm import Chain
from testbed.pools import IpcAnvil

SPECS = [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)]
PREMIUM_BPS = 9


@pytest.fixture(scope="module")
def market(node: IpcAnvil) -> Iterator[AaveMarket]:
    chain = Chain(node.w3)
    built = deploy_aave(chain, SPECS)
    for spec in SPECS:
        chain.transact(built.configurator.functions.setReserveFlashLoaning(built.asset(spec.symbol), True))
    chain.transact(built.configurator.functions.updateFlashloanPremiumTotal(PREMIUM_BPS))
    yield built


def _config(node: IpcAnvil, market: AaveMarket, tmp_path: Path) -> Any:
    chain = {
        **devnet_chain(node),
        "wrapped_native": market.asset("WETH"),
        "lending": [{"name": "aave_v3", "addresses_provider": str(market.provider.address)}],
    }
    strategies = {"aave_liquidation": {"min_profit_threshold": 0, "min_profit_bps": 0}}
    return load(agent_config(tmp_path, [chain], strategies=strategies))


def test_a_price_drop_is_reported_as_the_liquidation_the_pool_then_performs(
    node: IpcAnvil, market: AaveMarket, tmp_path: Path
) -> None:
    chain, w3 = market.chain, market.chain.w3
    lender, borrower, liquidator = (Web3.to_checksum_address(f"0x{0x11D0 + i:040x}") for i in range(3))
    for user in (lender, borrower, liquidator):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    ours = {Web3.to_checksum_address(a) for a in (chain.account, lender, borrower, liquidator)}
    config = _config(node, market, tmp_path)
    first_block = int(w3.eth.block_number) + 1

    async def go() -> dict[str, Any]:
        async with running(config) as (agent, api):
            strategy = agent.chains["ethereum"].strategies["aave_liquidation"]
            await eventually(lambda: _ready(strategy), 30, "the market loaded into the strategy")
            await asyncio.to_thread(market.supply, lender, "USDC", 1_000_000 * 10**6)
            await asyncio.to_thread(market.supply, borrower, "WETH", 10 * 10**18)
            await asyncio.to_thread(market.borrow, borrower, "USDC", 15_000 * 10**6)
            await asyncio.to_thread(market.fund, liquidator, "USDC", 10**9 * 10**6)
            await eventually(lambda: _tracks(strategy, borrower.lower()), 30, "the borrower's position")
            assert await api.opportunities() == []  # healthy: nothing to report
            # 10 WETH at 1,800 USD, 82.5 % threshold, 15,000 USDC owed: health factor 0.99
            receipt = await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)

            async def reported() -> dict[str, Any] | None:
                found = [o for o in await api.opportunities() if o["strategy"] == "aave_liquidation"]
                return found[0] if found and found[0]["status"] == "dry_run" else None

            entry = await eventually(reported, 30, "the dry-run liquidation report")
            entry["price_block"] = receipt["blockNumber"]
            await asyncio.sleep(1.5)  # a poll or more later: still nothing sent
            return entry

    entry = asyncio.run(go())
    price_block = entry["price_block"]
    pool = market.pool.functions
    assert entry["user"] == borrower.lower() and entry["block"] == price_block
    assert int(entry["health_factor"]) == pool.getUserAccountData(borrower).call(block_identifier=price_block)[5]
    assert int(entry["health_factor"]) < 10**18
    assert entry["debt_asset"] == market.asset("USDC").lower()
    assert entry["collateral_asset"] == market.asset("WETH").lower()
    assert int(entry["flashloan_fee"]) == int(entry["debt_to_cover"]) * PREMIUM_BPS // 10_000 + (
        1 if int(entry["debt_to_cover"]) * PREMIUM_BPS % 10_000 >= 5_000 else 0
    )
    # Nothing from the agent: every transaction since it started is the test's, none is pending.
    for number in range(first_block, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert tx["from"] in ours, f"block {number}: a transaction from {tx['from']}"
    assert w3.provider.make_request("txpool_status", [])["result"] == {"pending": "0x0", "queued": "0x0"}

    # What the Pool does with the reported amounts, valued at the same timestamp.
    w3.provider.make_request("evm_setNextBlockTimestamp", [entry["valued_at"]])
    done = market._send(
        liquidator,
        pool.liquidationCall(market.asset("WETH"), market.asset("USDC"), borrower, int(entry["debt_to_cover"]), False),
    )
    events = market.pool.events.LiquidationCall().process_receipt(done, errors=DISCARD)  # the tokens' logs too
    assert len(events) == 1
    assert events[0]["args"]["debtToCover"] == int(entry["debt_to_cover"])
    assert events[0]["args"]["liquidatedCollateralAmount"] == int(entry["collateral_seized"])
    # Health factor 0.99 (above 0.95): the close factor lets half the debt be repaid, interest included.
    owed_after = market.debt_tokens["USDC"].functions.balanceOf(borrower).call()
    assert abs(owed_after - int(entry["debt_to_cover"])) <= 1
    seized_usd = int(entry["collateral_seized"]) * 1_800 / 10**18
    repaid_usd = (int(entry["debt_to_cover"]) + int(entry["flashloan_fee"])) / 10**6
    assert entry["profit_usd"] == pytest.approx(seized_usd - repaid_usd, rel=1e-9)


async def _ready(strategy: Any) -> bool:
    return strategy.book is not None


async def _tracks(strategy: Any, user: str) -> bool:
    book = strategy.book
    return book is not None and user in book._index and bool(book.position(user).debt)
