"""The venus_liquidation plug-in in the running agent (dry-run), on anvil against the published Venus contracts
(testbed/venus.py): the chain's Venus collector loads the pool and follows its logs, a borrower
opens a position, a price drop (SimplePriceOracle.setUnderlyingPrice) puts it under water, and the agent
reports the liquidation sized for the next block on its route (`dry_run`); `liquidateBorrow` of the reported
repay, sent by the test in that block, seizes exactly the reported vTokens. The agent sends nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from testbed.e2e import agent_config, devnet_chain, eventually, load, running
from testbed.evm import Chain
from testbed.pools import IpcAnvil
from testbed.venus import WAD, MarketSpec, deploy_venus

ETH = MarketSpec("ETH", 18, 2_000, collateral_factor=80 * WAD // 100, liquidation_threshold=85 * WAD // 100)
SPECS = [MarketSpec("USDT", 6, 1), ETH, MarketSpec("WBNB", 18, 600)]


def test_a_price_drop_is_reported_as_the_liquidation_the_vtoken_then_performs(node: IpcAnvil, tmp_path: Path) -> None:
    chain = Chain(node.w3)
    w3 = chain.w3
    pool = deploy_venus(chain, SPECS)
    lender, borrower, liquidator = (Web3.to_checksum_address(f"0x{0xFE5 + i:040x}") for i in range(3))
    for user in (lender, borrower, liquidator):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    ours = {Web3.to_checksum_address(a) for a in (chain.account, lender, borrower, liquidator)}
    vbnb = str(pool.vtokens["WBNB"].address)
    venus = {"name": "venus", "comptroller": str(pool.comptroller.address), "native_market": vbnb}
    strategies = {"venus_liquidation": {"min_profit_threshold": 0, "min_profit_bps": 0}}
    config = load(agent_config(tmp_path, [{**devnet_chain(node), "venus": [venus]}], strategies=strategies))
    first_block = int(w3.eth.block_number) + 1

    async def go() -> tuple[dict[str, Any], int]:
        async with running(config) as (agent, api):
            strategy = agent.chains["ethereum"].strategies["venus_liquidation"]
            await eventually(lambda: _true(strategy.loaded), 30, "the pool loaded into the strategy")
            await asyncio.to_thread(pool.supply, lender, "USDT", 1_000_000 * 10**6)
            await asyncio.to_thread(pool.supply, borrower, "ETH", 10 * 10**18)
            await asyncio.to_thread(pool.borrow, borrower, "USDT", 15_000 * 10**6)  # 20,000 USD of ETH, CF 80 %
            await asyncio.to_thread(pool.fund, liquidator, "USDT", 10**6 * 10**6)
            await eventually(lambda: _true(borrower.lower() in strategy.accounts), 30, "the borrower's account")
            assert await api.opportunities() == []
            receipt = await asyncio.to_thread(pool.set_price, "ETH", 1_700)  # 14,450 USD at LT 85 % vs 15,000

            async def reported() -> dict[str, Any] | None:
                found = [o for o in await api.opportunities() if o["strategy"] == "venus_liquidation"]
                return found[0] if found and found[0]["status"] == "dry_run" else None

            entry = await eventually(reported, 30, "the dry-run liquidation report")
            await asyncio.sleep(1.5)  # a poll or more later: still nothing sent
            return entry, int(receipt["blockNumber"])

    entry, price_block = asyncio.run(go())
    assert entry["user"] == borrower.lower() and entry["block"] == price_block
    assert entry["borrowed_vtoken"] == str(pool.vtokens["USDT"].address).lower()
    assert entry["collateral_vtoken"] == str(pool.vtokens["ETH"].address).lower()
    for number in range(first_block, int(w3.eth.block_number) + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            assert tx["from"] in ours, f"block {number}: a transaction from {tx['from']}"
    assert w3.provider.make_request("txpool_status", [])["result"] == {"pending": "0x0", "queued": "0x0"}
    # The report was sized for the block after the price drop: liquidateBorrow there takes exactly it.
    assert int(w3.eth.block_number) == price_block
    vusdt, veth = pool.vtokens["USDT"], pool.vtokens["ETH"]
    done = pool.send(liquidator, vusdt.functions.liquidateBorrow(borrower, int(entry["repay"]), veth.address))
    assert not vusdt.events.Failure().process_receipt(done, errors=DISCARD)
    (event,) = vusdt.events.LiquidateBorrow().process_receipt(done, errors=DISCARD)
    assert (event.args.repayAmount, event.args.seizeTokens) == (int(entry["repay"]), int(entry["seized_vtokens"]))
    rate = veth.functions.exchangeRateStored().call()
    assert int(entry["collateral_redeemed"]) == rate * int(entry["seized_vtokens"]) // WAD


async def _true(value: bool) -> bool:
    return value
