"""The aave_liquidation strategy's profit decision: seized collateral - repaid debt - flashloan premium - gas
- the builder payment on chains that send bundles (the agent's `gas.builder_payment_share` of the profit,
paid as dex_arb pays it: mevagent.strategies.builder_payment). Fed the events the chain's FlashMonitor
emits for a two-reserve market (no node needed): a price drop takes a 10 WETH / 15,000 USDC position to a
health factor of 0.99. The route's plan (with a contract) is held to min_profit_threshold after its loan fee."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from mevagent.config import GasSettings, ProfitSettings
from mevagent.core import LendingEvent, Outcome, Status
from mevagent.engine.settings import LiveSettings
from mevagent.lending.aave_v3 import percent_mul, wad_div
from mevagent.lending.flash import AaveV3Provider
from mevagent.state.pools import PoolStore, V2Pool
from mevagent.strategies import builder_share_bps
from mevagent.strategies.aave_liquidation import PLUGIN, AaveLiquidation, LiquidationOpportunity, Settings

WETH, USDC, OTHER = (f"0x{i:040x}" for i in (0xE7, 0x05DC, 0x0123))
POOL, BORROWER, SOURCE = (f"0x{i:040x}" for i in (0xAA, 0xB0, 0xC0))
RAY, WAD, BASE = 10**27, 10**18, 10**8
T0, BASE_FEE, GAS_LIMIT = 1_700_000_000, 20 * 10**9, 800_000
PREMIUM_BPS = 9


def _event(name: str, user: str = "", **args: int | str) -> LendingEvent:
    return LendingEvent("anvil", "aave_v3", POOL, name, user, 10, -1, 0, tuple(args.items()))


def _market(strategy: AaveLiquidation) -> None:
    for i, (asset, decimals, price) in enumerate(((WETH, 18, 2_000 * BASE), (USDC, 6, BASE))):
        reserve = {
            "asset": asset,
            "id": i,
            "ltv": 8_000,
            "liquidation_threshold": 8_250,
            "liquidation_bonus": 10_500,
            "decimals": decimals,
            "liquidation_protocol_fee": 0,
            "a_token": f"0x{0xA0 + i:040x}",
            "debt_token": f"0x{0xD0 + i:040x}",
            "liquidity_index": RAY,
            "variable_borrow_index": RAY,
            "liquidity_rate": 0,
            "variable_borrow_rate": 0,
            "last_update": T0,
        }
        strategy.on_events([_event("Reserve", **reserve), _event("AssetPrice", asset=asset, price=price)])
    strategy.on_events([_event("MarketLoaded", premium_bps=PREMIUM_BPS, oracle=f"0x{0x0E:040x}")])
    position = {f"collateral:{WETH}": 10 * WAD, f"debt:{USDC}": 15_000 * 10**6, "timestamp": T0, "base_fee": BASE_FEE}
    assert strategy.on_events([_event("PositionLoaded", BORROWER, **position)]) == []


def _found(share_bps: int, *, threshold: float = 0.0, wrapped_native: str = WETH) -> list[LiquidationOpportunity]:
    settings = Settings(min_profit_threshold=threshold, min_profit_bps=0, gas_limit=GAS_LIMIT)
    strategy = AaveLiquidation("anvil", settings, wrapped_native, 0, share_bps)
    _market(strategy)
    drop = {"asset": WETH, "source": SOURCE, "price": 1_800 * BASE, "timestamp": T0, "base_fee": BASE_FEE}
    found = strategy.on_events([_event("AssetSourceUpdated", **drop)])
    assert all(isinstance(o, LiquidationOpportunity) for o in found)
    return found  # type: ignore[return-value]


def test_the_builder_payment_is_the_configured_share_of_the_profit_in_wei_and_counted_as_a_cost() -> None:
    (free,) = _found(0)
    (paying,) = _found(5_000)
    assert (paying.amount_in, paying.amount_out) == (free.amount_in, free.amount_out)
    # Half the debt (health factor 0.99), 105 % of it in WETH at 1,800 USD (the Pool's rounding: 1 wei less).
    assert paying.amount_in == 7_500 * 10**6 and 4_375 * 10**15 - paying.amount_out in (0, 1)
    assert free.builder_payment == 0
    # The profit in the oracle's base currency (8 decimals), in wei at the oracle's WETH price, half of it.
    fee = percent_mul(paying.amount_in, PREMIUM_BPS)
    profit_base = paying.amount_out * 1_800 * BASE // WAD - paying.amount_in * BASE // 10**6 - fee * BASE // 10**6
    assert abs(profit_base - 368_25 * 10**6) <= 1  # 7,875 - 7,500 - 6.75 USD
    assert paying.builder_payment == profit_base * WAD // (1_800 * BASE) // 2 > 0
    gas_wei = GAS_LIMIT * BASE_FEE
    assert free.gas_cost_usd == pytest.approx(gas_wei / WAD * 1_800)
    assert paying.gas_cost_usd == pytest.approx((gas_wei + paying.builder_payment) / WAD * 1_800)
    assert paying.profit_usd == free.profit_usd  # what is seized and repaid does not change
    assert paying.net_profit_usd == pytest.approx(free.net_profit_usd - 368.25 / 2)


def test_a_liquidation_that_pays_only_before_the_builder_payment_is_not_emitted() -> None:
    (free,) = _found(0)
    threshold = free.net_profit_usd - 1.0  # clears the threshold by 1 USD before the builder's 184 USD
    assert len(_found(0, threshold=threshold)) == 1
    assert _found(5_000, threshold=threshold) == []
    assert len(_found(5_000, threshold=free.net_profit_usd - 185.0)) == 1


def test_a_builder_payment_that_cannot_be_valued_stops_the_liquidation() -> None:
    # The market does not price the chain's wrapped native token: gas is valued at 0 as before, but a
    # builder payment in wei has no value to weigh against the profit, so nothing is emitted.
    assert len(_found(0, wrapped_native=OTHER)) == 1
    assert _found(5_000, wrapped_native=OTHER) == []


def test_the_share_is_paid_only_on_chains_that_send_bundles_and_follows_the_live_settings() -> None:
    gas = GasSettings(builder_payment_share=0.4)
    bundles = SimpleNamespace(endpoints=(SimpleNamespace(kind="sequencer"), SimpleNamespace(kind="bundle")))
    sequencer = SimpleNamespace(endpoints=(SimpleNamespace(kind="sequencer"),))
    assert builder_share_bps(bundles, gas) == 4_000  # type: ignore[arg-type]
    assert builder_share_bps(sequencer, gas) == 0  # type: ignore[arg-type]
    live = LiveSettings(gas, ProfitSettings(), {"aave_liquidation": Settings()})
    chain = SimpleNamespace(name="anvil", wrapped_native=WETH, endpoints=bundles.endpoints)
    ctx = SimpleNamespace(name="aave_liquidation", chain=chain, settings=live, section=Settings())
    strategy = PLUGIN.build(ctx)  # type: ignore[arg-type]
    assert isinstance(strategy, AaveLiquidation) and strategy.builder_share_bps == 4_000
    live.replace(gas=GasSettings(builder_payment_share=0.1, priority_fee_gwei=2))
    assert strategy.builder_share_bps == 1_000 and strategy.priority_fee_wei == 2 * 10**9


def _route(threshold: float) -> tuple[Any, list[Any]]:
    """The plug-in's own route (as the agent opens it) over a dry-run executor with a contract: a deep
    WETH/USDC pair at the dropped price and the Aave pool lending the debt at its 9 bps premium."""
    sent: list[Any] = []

    async def execute(funded: Any, head: int | None = None) -> Outcome:
        sent.append(funded)
        return Outcome(funded, Status.DRY_RUN)

    store = PoolStore("anvil")
    store.add(V2Pool(f"0x{0xBB:040x}", "uniswap_v2", WETH, USDC, 10_000 * WAD, 18_000_000 * 10**6, 3, 1000))
    lender = AaveV3Provider("anvil", POOL, PREMIUM_BPS, {USDC: 10**7 * 10**6})
    config = SimpleNamespace(contract=f"0x{0xCC:040x}")
    executor = SimpleNamespace(config=config, store=store, flash_providers=lambda: [lender], execute=execute)
    ctx = SimpleNamespace(section=Settings(min_profit_threshold=threshold), extras={"gate": None, "executor": executor})
    assert PLUGIN.open_route is not None
    return asyncio.run(PLUGIN.open_route(ctx)), sent  # type: ignore[arg-type]


def test_a_plan_whose_loan_fee_eats_the_margin_below_min_profit_threshold_is_refused_before_the_executor() -> None:
    (found,) = _found(0)
    route, sent = _route(0.0)
    assert asyncio.run(route.execute(found)).status is Status.DRY_RUN
    (planned,) = sent
    assert planned.loan is not None and planned.loan.fee == percent_mul(found.amount_in, PREMIUM_BPS) > 0
    fee_usd = planned.loan.fee / 10**6  # USDC at 1 USD
    net = planned.profit_usd - planned.gas_cost_usd  # what the contract keeps after the fee, less gas
    # A threshold the plan clears before the premium (and the strategy's oracle figure clears) but not after.
    threshold = net + fee_usd / 2
    assert found.net_profit_usd > threshold and len(_found(0, threshold=threshold)) == 1
    route, sent = _route(threshold)
    outcome = asyncio.run(route.execute(found))
    assert outcome.status is Status.REJECTED and sent == []
    assert "below the minimum" in outcome.reason and "min_profit_threshold" in outcome.reason
    assert f"after the {planned.loan.fee} loan fee" in outcome.reason
    route, sent = _route(net - 0.01)  # cleared after the fee: planned and handed to the executor
    assert asyncio.run(route.execute(found)).status is Status.DRY_RUN and len(sent) == 1


def test_the_first_market_getters_read_without_adding_a_market() -> None:
    strategy = AaveLiquidation("anvil", Settings(markets=("aave_v3", "radiant")), WETH, 0)
    assert (strategy.book, strategy.pool, strategy.premium_bps, strategy.sources) == (None, "", 0, {})
    assert strategy.states == {}  # a read (an API or a test) adds no empty market the strategy then iterates
    _market(strategy)
    assert list(strategy.states) == ["aave_v3"] and strategy.pool == POOL and strategy.premium_bps == PREMIUM_BPS
    assert strategy.book is strategy.states["aave_v3"].book is not None


def test_a_position_left_liquidatable_by_an_event_is_reported_at_its_blocks_head_once() -> None:
    """No price answer: the monitor's `Head` after a block's events has the strategy report a position an event
    of that block left under 1; a price answer of the same block reporting it too does not report it twice,
    and the next head, with the position still under 1, reports it again (it is still there to take)."""
    strategy = AaveLiquidation("anvil", Settings(min_profit_threshold=0, min_profit_bps=0), WETH, 0)
    _market(strategy)
    at = {"timestamp": T0 + 12, "base_fee": BASE_FEE}
    assert strategy.on_events([_event("Head", **at)]) == []  # health factor 1.1
    # 16,700 USDC against 10 WETH at 2,000 USD, 82.5 %: 0.988.
    borrowed = {f"collateral:{WETH}": 10 * WAD, f"debt:{USDC}": 16_700 * 10**6, **at}
    (found,) = strategy.on_events([_event("Borrow", BORROWER, **borrowed), _event("Head", **at)])
    assert isinstance(found, LiquidationOpportunity) and found.user == BORROWER and found.block == 10
    assert found.health_factor == wad_div(percent_mul(20_000 * BASE, 8_250), 16_700 * BASE)
    drop = {"asset": WETH, "source": SOURCE, "price": 1_900 * BASE, **at}
    assert len(strategy.on_events([_event("AssetSourceUpdated", **drop), _event("Head", **at)])) == 1
    later = LendingEvent("anvil", "aave_v3", POOL, "Head", "", 11, -1, 0, (("timestamp", T0 + 24), ("base_fee", 1)))
    (again,) = strategy.on_events([later])
    assert again.block == 11 and again.id != found.id
