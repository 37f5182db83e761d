"""Liquidations classified from a real Aave V3 Pool on anvil (testbed/aave.py, @aave/core-v3).

A borrower is made liquidatable by a price drop; one block holds a liquidation that lands and one that
reverts (a healthy user). The amounts expected are the liquidator's balance changes on chain.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mevagent.analytics import classify_block
from testbed.aave import AaveMarket, ReserveSpec, deploy_aave
from testbed.analytics import actor_address, fetch_block, source_variants
from testbed.evm import Chain

GAS = 5_000_000


@pytest.fixture(scope="module")
def market(chain: Chain) -> Iterator[AaveMarket]:
    yield deploy_aave(chain, [ReserveSpec("WETH", 18, 2000 * 10**8), ReserveSpec("USDC", 6, 10**8)])


def _account(chain: Chain, index: int) -> str:
    address = chain.w3.to_checksum_address(actor_address(100 + index))
    chain.w3.provider.make_request("anvil_impersonateAccount", [address])
    chain.w3.provider.make_request("anvil_setBalance", [address, hex(10**21)])
    return address


def test_aave_v3_liquidation_and_a_reverted_one(market: AaveMarket, chain: Chain) -> None:
    lender, borrower, liquidator = (_account(chain, i) for i in range(3))
    market.supply(lender, "USDC", 1_000_000 * 10**6)
    market.supply(borrower, "WETH", 10**18)
    market.borrow(borrower, "USDC", 1_500 * 10**6)  # 75 % of $2000: healthy
    market.set_price("WETH", 1_700 * 10**8)  # 1500 > 1700 * 82.5 %: liquidatable
    market.fund(liquidator, "USDC", 10_000 * 10**6)
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    before = (usdc.functions.balanceOf(liquidator).call(), weth.functions.balanceOf(liquidator).call())
    w3 = chain.w3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        landed = market.pool.functions.liquidationCall(
            weth.address, usdc.address, borrower, 750 * 10**6, False
        ).transact({"from": liquidator, "gas": GAS, "gasPrice": 0})
        healthy = market.pool.functions.liquidationCall(weth.address, usdc.address, lender, 10 * 10**6, False).transact(
            {"from": liquidator, "gas": GAS, "gasPrice": 0}
        )
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=60) for h in (landed, healthy)]
    assert [r["status"] for r in receipts] == [1, 0]
    paid = before[0] - usdc.functions.balanceOf(liquidator).call()
    seized = weth.functions.balanceOf(liquidator).call() - before[1]
    assert paid > 0 and seized > 0
    raw = fetch_block(chain, receipts[0]["blockNumber"])
    expected = [
        {
            "tx": "0x" + receipts[0]["transactionHash"].hex().removeprefix("0x"),
            "liquidator": liquidator.lower(),
            "liquidated_user": borrower.lower(),
            "protocol": "aave",
            "debt_token": usdc.address.lower(),
            "debt_amount": str(paid),
            "collateral_token": weth.address.lower(),
            "collateral_amount": str(seized),
        }
    ]
    for name, variant in source_variants(raw).items():
        result = classify_block(variant)
        assert [x.model_dump(mode="json") for x in result.liquidations] == expected, name
