"""Aave V3 as a flashloan provider, on anvil against @aave/core-v3: the cash it can lend, tracked from the
Pool's events only, equals what each aToken holds after random supplies, withdrawals, borrows, repayments
(also with aTokens), flashloans and a liquidation; and the cheapest-provider choice never picks a pool
that does not hold enough."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import aiohttp
import pytest
from web3 import Web3

from mevagent.executor.rpc import HttpJsonRpc
from mevagent.lending.flash import AaveV3Provider, cheapest
from testbed.aave import AaveMarket, ReserveSpec, deploy_aave, find
from testbed.evm import Chain, start_anvil, stop_anvil

from .conftest import _need_anvil

SPECS = [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)]
USERS = [Web3.to_checksum_address(f"0x{0xF1A5E0 + i:040x}") for i in range(3)]


@pytest.fixture(scope="module")
def markets() -> Iterator[tuple[AaveMarket, AaveMarket]]:
    _need_anvil()
    proc, w3 = start_anvil()
    try:
        chain = Chain(w3)
        built = []
        for premium in (5, 9):
            market = deploy_aave(chain, SPECS)
            for spec in SPECS:
                chain.transact(market.configurator.functions.setReserveFlashLoaning(market.asset(spec.symbol), True))
            chain.transact(market.configurator.functions.updateFlashloanPremiumTotal(premium))
            built.append(market)
        for user in USERS:
            w3.provider.make_request("anvil_impersonateAccount", [user])
        yield built[0], built[1]
    finally:
        stop_anvil(proc)


async def _provider(market: AaveMarket, block: int) -> AaveV3Provider:
    async with aiohttp.ClientSession() as session:
        rpc = HttpJsonRpc(str(market.chain.w3.provider.endpoint_uri), session)  # type: ignore[attr-defined]
        a_tokens = {market.asset(s).lower(): str(market.a_tokens[s].address) for s in market.tokens}
        premium = market.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call(block_identifier=block)
        return await AaveV3Provider.load("anvil", rpc, str(market.pool.address), a_tokens, premium, block)


def _logs(market: AaveMarket, since: int) -> list[dict]:
    w3 = market.chain.w3
    raw = w3.provider.make_request(
        "eth_getLogs", [{"fromBlock": hex(since + 1), "toBlock": "latest", "address": market.pool.address}]
    )
    return list(raw["result"])


def test_tracked_cash_equals_what_the_atokens_hold(markets: tuple[AaveMarket, AaveMarket]) -> None:
    market = markets[0]
    chain = market.chain
    snapshot = chain.snapshot()
    try:
        start = int(chain.w3.eth.block_number)
        provider = asyncio.run(_provider(market, start))
        receiver = chain.deploy(find("MockFlashLoanSimpleReceiver"), market.provider.address)
        rng = random.Random(12)
        for user in USERS:
            market.supply(user, "WETH", rng.randrange(1, 50) * 10**18)
            market.supply(user, "USDC", rng.randrange(1_000, 100_000) * 10**6)
        for _ in range(30):
            user, symbol = rng.choice(USERS), rng.choice(["WETH", "USDC"])
            asset, unit = market.asset(symbol), 10 ** market.specs[symbol].decimals
            action = rng.choice(["supply", "withdraw", "borrow", "repay", "repay_atokens", "flash"])
            pool = market.pool.functions
            if action == "supply":
                market.supply(user, symbol, rng.randrange(1, 10**4) * unit // 100)
            elif action == "withdraw":
                chain_try(market, user, pool.withdraw(asset, rng.randrange(1, 10**3) * unit // 100, user))
            elif action == "borrow":
                chain_try(market, user, pool.borrow(asset, rng.randrange(1, 10**3) * unit // 100, 2, 0, user))
            elif action == "repay":
                market.fund(user, symbol, 10**6 * unit)
                chain_try(market, user, pool.repay(asset, rng.randrange(1, 10**3) * unit // 100, 2, user))
            elif action == "repay_atokens":
                chain_try(market, user, pool.repayWithATokens(asset, rng.randrange(1, 10**3) * unit // 100, 2))
            else:
                chain.transact(
                    pool.flashLoanSimple(receiver.address, asset, rng.randrange(1, 10**4) * unit // 100, b"", 0)
                )
        # Once each for sure: a repayment with aTokens (burnt: the cash stays), then a liquidation (the
        # repaid debt comes in, the seized collateral goes out).
        market.borrow(USERS[2], "WETH", 10**17)
        market._send(USERS[2], market.pool.functions.repayWithATokens(market.asset("WETH"), 10**17, 2))
        borrower, liquidator = USERS[0], USERS[1]
        available_usd = market.pool.functions.getUserAccountData(borrower).call()[2]  # 8 decimals
        cash = market.tokens["USDC"].functions.balanceOf(market.a_tokens["USDC"].address).call()
        market.borrow(borrower, "USDC", min(available_usd * 95 // 100 // 100, cash * 9 // 10))
        market.set_price("WETH", 1_000 * 10**8)
        market.fund(liquidator, "USDC", 10**12 * 10**6)
        market._send(
            liquidator,
            market.pool.functions.liquidationCall(
                market.asset("WETH"), market.asset("USDC"), borrower, 2**256 - 1, False
            ),
        )
        for log in _logs(market, start):
            provider.apply(log)
        for symbol, token in market.tokens.items():
            held = token.functions.balanceOf(market.a_tokens[symbol].address).call()
            assert provider.available(market.asset(symbol).lower()) == held, symbol
    finally:
        chain.revert(snapshot)


def chain_try(market: AaveMarket, user: str, fn: object) -> None:
    """Send it if the Pool would accept it (a random withdrawal or borrow may exceed what is allowed)."""
    try:
        fn.call({"from": user})  # type: ignore[attr-defined]
    except Exception:
        return
    market._send(user, fn)


def test_a_provider_without_enough_is_never_chosen(markets: tuple[AaveMarket, AaveMarket]) -> None:
    cheap, dear = markets  # premiums 5 and 9 bps
    chain = cheap.chain
    snapshot = chain.snapshot()
    try:
        cheap.supply(chain.account, "WETH", 10 * 10**18)
        dear.supply(chain.account, "WETH", 1_000 * 10**18)
        block = int(chain.w3.eth.block_number)
        providers = [asyncio.run(_provider(cheap, block)), asyncio.run(_provider(dear, block))]
        weth = cheap.asset("WETH").lower()
        assert cheap.asset("WETH").lower() != dear.asset("WETH").lower()
        # Each market lists its own WETH token: the test asks both for the same amount of "their" WETH.
        providers[1].cash[weth] = providers[1].cash.pop(dear.asset("WETH").lower())
        rng = random.Random(3)
        for _ in range(200):
            amount = rng.randrange(1, 2_000 * 10**18)
            chosen = cheapest(providers, weth, amount)
            if amount <= providers[0].available(weth):
                assert chosen is providers[0]  # both hold it: the 5 bps pool
            elif amount <= providers[1].available(weth):
                assert chosen is providers[1]
            else:
                assert chosen is None
            assert chosen is None or chosen.available(weth) >= amount
        assert providers[0].fee(weth, 10**18) == 5 * 10**14 and providers[1].fee(weth, 10**18) == 9 * 10**14
    finally:
        chain.revert(snapshot)
