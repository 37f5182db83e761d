"""The rebalancing planner (mevcontrol.rebalance) over the shipped token registry and bridge catalog: which
bridge moves how much of an asset from the chains that hold more than their target to the ones below their
band, exact in base units; a bridge the monitor finds unhealthy is avoided by the next plan; bad targets are
refused naming the token. End to end (agents' balances read from anvil, through Redis, served on :8906):
tests/agent/control/test_crosschain_anvil.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from mevcontrol.crosschain import CrossChainConfig, CrossChainEngine
from mevcontrol.metrics import ControlMetrics
from mevcontrol.rebalance import RebalanceConfig, RebalancePlanner
from pydantic import ValidationError

from mevagent.bus.events import InventoryBalances
from mevagent.crosschain.registry import registry

USDC = 10**6
TREASURY, OTHER = "0x" + "7e" * 20, "0x" + "0a" * 20


def address(token: str) -> str:
    return registry().tokens[token].address.lower()


def engine(**rebalance: Any) -> CrossChainEngine:
    targets = {"arbitrum:USDC": "100000", "base:USDC": "100000", "optimism:USDC": "100000", "ethereum:USDC": "50000"}
    config = CrossChainConfig.model_validate(
        {"usd": {"usdc": "1", "eth": "3000"}, "rebalance": {"targets": targets, **rebalance}}
    )
    return CrossChainEngine(config)


def held(e: CrossChainEngine, chain: str, units: int, block: int = 10, account: str = TREASURY, **more: int) -> None:
    balances = {address(f"{chain}:USDC"): units * USDC, **{address(t): v for t, v in more.items()}}
    e.inventory(InventoryBalances(agent="a1", chain=chain, block=block, account=account, balances=balances))


def test_a_short_chain_is_filled_to_its_target_from_the_long_one_by_the_cheapest_route() -> None:
    e = engine()
    held(e, "arbitrum", 160_000)  # 60,000 over its target
    held(e, "base", 70_000)  # below 80,000 (the 20 % band): 30,000 short
    held(e, "optimism", 85_000)  # below target but inside the band: left alone
    plan = e.rebalance_plan()
    [move] = plan.moves
    # CCTP (0.5 USD, no bps, ~18 min) is cheaper than Across (1 USD + 5 bps) and Stargate (1 USD + 6 bps).
    assert (move.src, move.dst, move.amount, move.bridge) == ("arbitrum:USDC", "base:USDC", 30_000 * USDC, "cctp")
    assert (move.amount_usd, move.fee_usd, move.challenge_period) == (Decimal("30000.00"), Decimal("0.50"), False)
    states = {h["token"]: (h["state"], h["held"]) for h in plan.holdings}
    assert states == {
        "arbitrum:USDC": ("long", str(160_000 * USDC)), "base:USDC": ("short", str(70_000 * USDC)),
        "optimism:USDC": ("within band", str(85_000 * USDC)), "ethereum:USDC": ("unreported", None),
    }  # fmt: skip
    assert plan.not_planned == []


def test_an_unhealthy_bridge_is_avoided_by_the_next_plan_and_max_bridge_time_bounds_the_route() -> None:
    e = engine()
    held(e, "arbitrum", 160_000)
    held(e, "base", 70_000)
    assert [m.bridge for m in e.rebalance_plan().moves] == ["cctp"]
    e.set_healthy("cctp", False)  # what BridgeMonitor.check_health does on a stuck transfer or slow fills
    [move] = e.rebalance_plan().moves
    assert (move.bridge, move.amount, move.fee_usd) == ("across", 30_000 * USDC, Decimal("16.00"))  # 1 + 5 bps
    e.set_healthy("cctp", True)
    assert [m.bridge for m in e.rebalance_plan().moves] == ["cctp"]
    # A plan that may not wait the ~18 minutes of CCTP's attestation takes Across.
    quick = engine(max_bridge_time=600)
    held(quick, "arbitrum", 160_000)
    held(quick, "base", 70_000)
    assert [m.bridge for m in quick.rebalance_plan().moves] == ["across"]


def test_two_sources_are_drawn_only_down_to_their_targets_and_accounts_add_up() -> None:
    e = engine()
    held(e, "arbitrum", 110_000)  # 10,000 spare
    held(e, "optimism", 95_000, account=TREASURY)
    held(e, "optimism", 30_000, account=OTHER)  # two accounts: 125,000 on optimism, 25,000 spare
    held(e, "base", 60_000)  # 40,000 short: more than either source alone can give
    plan = e.rebalance_plan()
    assert [(m.src, m.dst, m.amount) for m in plan.moves] == [
        ("optimism:USDC", "base:USDC", 25_000 * USDC), ("arbitrum:USDC", "base:USDC", 10_000 * USDC),
    ]  # fmt: skip
    assert plan.not_planned == [
        {"token": "base:USDC", "reason": f"{5_000 * USDC} base units short: no long token of the same decimals "
                                         "reaches it by a healthy route within max_bridge_time"}
    ]  # fmt: skip
    # A late event of an older block does not replace a newer one.
    held(e, "base", 100_000, block=9)
    assert [h["held"] for h in e.rebalance_plan().holdings if h["token"] == "base:USDC"] == [str(60_000 * USDC)]


def test_small_or_expensive_moves_are_named_not_planned() -> None:
    e = engine(min_move_usd="50000")
    held(e, "arbitrum", 160_000)
    held(e, "base", 70_000)
    plan = e.rebalance_plan()
    assert plan.moves == [] and plan.not_planned == [
        {"token": "base:USDC", "reason": "a move of 30000.00 USD from arbitrum:USDC is below min_move_usd 50000"}
    ]
    e = engine(max_fee_bps="0.1")  # CCTP's 0.5 USD on 30,000 is 0.17 bps
    held(e, "arbitrum", 160_000)
    held(e, "base", 70_000)
    [skip] = e.rebalance_plan().not_planned
    assert skip["reason"] == "cctp from arbitrum:USDC costs 0.50 USD on 30000.00 USD, above max_fee_bps 0.1"


def test_a_canonical_withdrawal_is_planned_where_nothing_faster_exists() -> None:
    # USDC.e on Arbitrum goes home only through the canonical bridge's 7-day withdrawal.
    config = RebalanceConfig.model_validate({"targets": {"arbitrum:USDC.e": "1000", "ethereum:USDC": "5000"}})
    planner = RebalancePlanner(config, registry(), {"usdc": Decimal(1)})
    for chain, token, units in (("arbitrum", "arbitrum:USDC.e", 3_000), ("ethereum", "ethereum:USDC", 1_000)):
        planner.book.absorb(InventoryBalances(agent="a", chain=chain, block=1, account=TREASURY,
                                              balances={address(token): units * USDC}))  # fmt: skip
    [move] = planner.plan().moves
    assert (move.src, move.dst, move.amount, move.bridge) == (
        "arbitrum:USDC.e", "ethereum:USDC", 2_000 * USDC, "arbitrum_canonical",
    )  # fmt: skip
    assert move.challenge_period and move.fill_s == 604_800


@pytest.mark.parametrize(
    ("targets", "usd", "named"),
    [
        ({"arbitrum:USDX": "1"}, {"usdc": "1"}, "arbitrum:USDX: not in the token registry"),
        ({"arbitrum:ETH": "1"}, {"eth": "1"}, "arbitrum:ETH: the chain's native coin"),
        ({"solana:USDC": "1"}, {"usdc": "1"}, "solana:USDC: not an EVM token"),
        ({"arbitrum:WETH": "1"}, {"usdc": "1"}, "arbitrum:WETH: no USD price for asset eth"),
    ],
)
def test_bad_targets_are_refused_naming_the_token(targets: dict[str, str], usd: dict[str, str], named: str) -> None:
    config = CrossChainConfig.model_validate({"usd": usd, "rebalance": {"targets": targets}})
    with pytest.raises(ValueError, match=r"crosschain\.rebalance\.targets: ") as caught:
        CrossChainEngine(config)
    assert named in str(caught.value)
    with pytest.raises(ValidationError, match="band"):
        RebalanceConfig.model_validate({"targets": {"arbitrum:USDC": "1"}, "band": "1.5"})


def test_metrics_say_which_bridge_is_unhealthy_and_how_many_moves_wait() -> None:
    e = engine()
    held(e, "arbitrum", 160_000)
    held(e, "base", 70_000)
    e.set_healthy("cctp", False)
    metrics = ControlMetrics()
    metrics.crosschain_bridges(e, 0.0)
    text = metrics.render().decode()
    assert 'mevcontrol_crosschain_bridge_healthy{bridge="cctp"} 0.0' in text
    assert 'mevcontrol_crosschain_bridge_healthy{bridge="across"} 1.0' in text
    assert 'mevcontrol_crosschain_rebalance_moves{asset="usdc"} 1.0' in text
    held(e, "base", 100_000, block=11)  # the short chain got its inventory back: nothing to move
    metrics.crosschain_bridges(e, 0.0)
    assert 'mevcontrol_crosschain_rebalance_moves{asset="usdc"} 0.0' in metrics.render().decode()
