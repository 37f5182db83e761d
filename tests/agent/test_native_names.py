"""The native coin told from a token, once: mevagent.lending.venus.NATIVE_NAMES / traded_as, which the Venus
strategy's loan-fee decision and the route's plan both use (they disagreed: the decision knew only NATIVE, the
plan also the zero address and "", so a vBNB market named by 10.3.0's zero address was priced without a lender
and dropped while the plan would have borrowed WBNB). And the native -> wrapped mapping of the 8 chains of the
agent's token data (mevagent/crosschain/tokens.yml), pinned."""

from __future__ import annotations

import pytest

from mevagent.core import Hop
from mevagent.crosschain.registry import registry
from mevagent.lending.aave_v3 import percent_mul
from mevagent.lending.flash import AaveV3Provider
from mevagent.lending.venus import NATIVE, NATIVE_NAMES, is_native, traded_as
from mevagent.state.pools import PoolStore, V2Pool
from mevagent.strategies.venus_liquidation import Settings, VenusLiquidationOpportunity, VenusLiquidator, plan_found

WBNB, USDT = "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c", "0x55d398326f99059ff775485246999027b3197955"
LENDER, PAIR = "0x" + "a1" * 20, "0x" + "a2" * 20
ZERO = "0x" + "00" * 20
PREMIUM_BPS = 9


def test_every_native_name_is_one_set_and_maps_to_the_wrapped_native() -> None:
    assert {NATIVE, ZERO, ""} == NATIVE_NAMES
    for name in (NATIVE, NATIVE.upper().replace("0X", "0x"), ZERO, ""):
        assert is_native(name) and traded_as(name, WBNB.upper().replace("0X", "0x")) == WBNB
    assert not is_native(USDT) and traded_as(USDT, WBNB) == USDT
    assert traded_as(NATIVE, "") == ""  # none configured: nothing to borrow or swap it as


@pytest.mark.parametrize("name", sorted(NATIVE_NAMES))
def test_the_decision_and_the_plan_borrow_a_native_debt_as_the_wrapped_native(name: str) -> None:
    repay = 10**18
    lender = AaveV3Provider("bsc", LENDER, PREMIUM_BPS, {WBNB: 10**24})
    strategy = VenusLiquidator("bsc", Settings(), 0, providers=lambda: [lender], wrapped_native=WBNB)
    # The decision's loan fee: the wrapped native's lender, whichever name the market's underlying carries.
    assert strategy._loan_fee(name, repay) == percent_mul(repay, PREMIUM_BPS) > 0
    found = VenusLiquidationOpportunity(
        chain="bsc", strategy="venus_liquidation", block=1,
        hops=(Hop("0x" + "c0" * 20, "venus_liquidation", name, USDT),),
        amount_in=repay, amount_out=700 * 10**18, gas_limit=900_000, gas_price=0, builder_payment=0,
        notional_usd=600.0, profit_usd=100.0, gas_cost_usd=0.0, found_ns=0, user="0x" + "b0" * 20,
        borrowed="0x" + "b1" * 20, collateral="0x" + "b2" * 20, seized=10**8,
    )  # fmt: skip
    store = PoolStore("bsc")
    store.add(V2Pool(PAIR, "pancake_v2", USDT, WBNB, 600_000 * 10**18, 1_000 * 10**18, 25, 10_000))
    funded, reason = plan_found(found, store=store, providers=[lender], min_net_usd=0.0, wrapped_native=WBNB)
    assert funded is not None, reason
    assert funded.borrowed_native and not funded.collateral_native and funded.loan is not None
    assert (funded.loan.token, funded.loan.fee, funded.hops[0].token_out) == (
        WBNB,
        strategy._loan_fee(name, repay),
        WBNB,
    )


def test_the_native_to_wrapped_mapping_of_the_eight_chains_is_pinned() -> None:
    reg = registry()
    wrapped = {
        chain: next(
            t.address
            for t in reg.tokens.values()
            if t.chain == chain and t.variant == "wrapped" and t.asset == reg.natives[chain].asset
        )
        for chain in reg.catalog.chains
    }
    assert wrapped == {
        "ethereum": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",  # WETH
        "arbitrum": "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1",  # WETH
        "optimism": "0x4200000000000000000000000000000000000006",  # WETH (predeploy)
        "base": "0x4200000000000000000000000000000000000006",  # WETH (predeploy)
        "polygon": "0x0d500B1d8E8eF31E21C99d1Db9A6444d3ADf1270",  # WPOL
        "avalanche": "0xB31f66AA3C1e785363F0875A1B74E27b85FD66c7",  # WAVAX
        "bsc": "0xbb4CdB9CBd36B01bD1cBaEBF2De08d9173bc095c",  # WBNB: what a vBNB leg trades as
        "solana": "So11111111111111111111111111111111111111112",  # wSOL
    }
    assert {chain: reg.natives[chain].symbol for chain in wrapped} == {
        "ethereum": "ETH", "arbitrum": "ETH", "optimism": "ETH", "base": "ETH",
        "polygon": "POL", "avalanche": "AVAX", "bsc": "BNB", "solana": "SOL",
    }  # fmt: skip
    assert traded_as(NATIVE, wrapped["bsc"]) == WBNB
