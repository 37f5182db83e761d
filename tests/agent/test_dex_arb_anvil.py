"""The arbitrage strategy against real Uniswap V2 pairs and a V3 pool on anvil.

A trader's swap knocks one pool off the common price; the pools' state is read back from the
chain, the strategy is told which pool changed, and whatever it emits for that block is traded on
chain hop by hop from the test account: the chain must pay out exactly the predicted amount.
"""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mevagent.core import Head, Opportunity, PoolUpdate
from mevagent.pricing import Pricer, PricingConfig
from mevagent.state.pools import PoolStore
from mevagent.strategies.dex_arb import DexArbConfig, DexArbStrategy
from testbed.evm import Chain
from testbed.strategy import E18, Dex, deploy_dex, execute_hop_by_hop, move_price, read_store, refresh


@pytest.fixture(scope="module")
def dex(chain: Chain) -> Dex:
    return deploy_dex(chain)


@pytest.fixture
def clean(dex: Dex) -> Iterator[Dex]:
    """Every test starts from the aligned pools and leaves them so."""
    snapshot = dex.chain.snapshot()
    try:
        yield dex
    finally:
        dex.chain.revert(snapshot)


def _strategy(dex: Dex, store: PoolStore, **config: object) -> DexArbStrategy:
    # W and U have reference prices; T is valued through pair A, at the price of the block.
    pricing = PricingConfig(
        native_token=dex.base,
        tokens={
            dex.base: {"usd": 2000.0, "decimals": 18},
            dex.u.address: {"usd": 1.0, "decimals": 18},
            dex.t.address: {"reference_pool": dex.pairs["A"].address},
        },
    )
    strategy = DexArbStrategy(store, DexArbConfig(base_tokens=(dex.base,), **config), Pricer(pricing, store))
    block = dex.chain.w3.eth.get_block("latest")
    strategy.on_head(Head("anvil", block["number"], "0x", "0x", block["timestamp"], block.get("baseFeePerGas", 0)))
    return strategy


def _gap(
    dex: Dex, store: PoolStore, strategy: DexArbStrategy, pool: str, token_in: str, amount: int
) -> list[Opportunity]:
    """Move `pool` with a trader's swap, sync the store as the collector would, ask the strategy."""
    move_price(dex, pool, token_in, amount)
    refresh(dex, store, pool)
    return strategy.on_pool_updates([PoolUpdate("anvil", pool, store.block, 0)])


def _assert_chain_pays(dex: Dex, opportunity: Opportunity) -> None:
    base_before = dex.balance(opportunity.token)
    paid = execute_hop_by_hop(dex, opportunity)
    assert paid[-1] == opportunity.amount_out
    assert dex.balance(opportunity.token) - base_before == opportunity.gross_profit > 0


def test_aligned_pools_offer_nothing(clean: Dex) -> None:
    store = read_store(clean)
    strategy = _strategy(clean, store)
    # W/T has three pools (A, B, V): 6 two-hop cycles; W->T->U->W through each of them, both ways: 6.
    assert len(strategy.cycles) == 12
    updates = [PoolUpdate("anvil", pool, store.block, 0) for pool in store.pools]
    assert strategy.on_pool_updates(updates) == []
    # Every cycle was checked, and none got past the pre-filter: aligned prices lose the fees.
    assert strategy.stats.cycles_checked >= len(strategy.cycles)
    assert strategy.stats.cycles_sized == 0


def test_v2_gap_is_found_in_that_block_and_the_chain_pays_exactly(clean: Dex) -> None:
    store = read_store(clean)
    strategy = _strategy(clean, store)
    pair_a = clean.pairs["A"].address.lower()
    # Someone buys T with 8 W in pair A: T is dearer there than anywhere else.
    found = _gap(clean, store, strategy, pair_a, clean.base, 8 * E18)
    assert found, "the gap the swap opened was not found"
    best = found[0]
    assert best.block == clean.chain.w3.eth.block_number
    assert pair_a in {hop.pool for hop in best.hops}
    assert best.hops[0].token_in == best.hops[-1].token_out == clean.base
    assert best.net_profit_usd == max(o.net_profit_usd for o in found)
    assert len({o.id for o in found}) == len(found)
    _assert_chain_pays(clean, best)


def test_v3_gap_is_found_and_the_chain_pays_exactly(clean: Dex) -> None:
    store = read_store(clean)
    strategy = _strategy(clean, store)
    v3 = clean.v3.address.lower()
    # Someone sells 20,000 T for W on the V3 pool: W is dearer there, the price crosses ticks.
    found = _gap(clean, store, strategy, v3, clean.t.address.lower(), 20_000 * E18)
    assert found
    best = found[0]
    assert any(hop.kind == "v3" for hop in best.hops)
    _assert_chain_pays(clean, best)


def test_min_profit_filters(clean: Dex) -> None:
    store = read_store(clean)
    pair_b = clean.pairs["B"].address.lower()
    snapshot = clean.chain.snapshot()
    baseline = _strategy(clean, store)
    (best, *_) = _gap(clean, store, baseline, pair_b, clean.t.address.lower(), 6000 * E18)
    net, bps = best.net_profit_usd, best.net_profit_usd / best.notional_usd * 10_000
    assert net > 0

    def best_net(**config: object) -> float | None:
        # The same state, the same update, a strategy with other settings.
        strategy = _strategy(clean, store, **config)
        found = strategy.on_pool_updates([PoolUpdate("anvil", pair_b, store.block, 0)])
        matching = [o for o in found if o.hops == best.hops]
        return matching[0].net_profit_usd if matching else None

    assert best_net(min_profit_threshold=net * 0.99) == pytest.approx(net)
    assert best_net(min_profit_threshold=net * 1.01) is None
    assert best_net(min_profit_bps=bps * 0.99) == pytest.approx(net)
    assert best_net(min_profit_bps=bps * 1.01) is None
    # Gas: a priority fee that costs more than the gross profit leaves nothing.
    gross_wei = best.gross_profit  # the base token is the native token here
    assert best_net(priority_fee_wei=gross_wei // best.gas_limit // 2) is not None
    assert best_net(priority_fee_wei=gross_wei // best.gas_limit + 1) is None
    # The builder's share comes off the gross profit.
    half = best_net(builder_share_bps=5000)
    assert half is not None and half == pytest.approx(net / 2)
    assert best_net(builder_share_bps=10_000) is None
    clean.chain.revert(snapshot)


_POOLS = ["A", "B", "C", "D", "V"]


def test_any_gap_found_is_what_the_chain_pays(dex: Dex) -> None:
    seen = {"found": 0, "none": 0}

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        pool=st.sampled_from(_POOLS),
        forward=st.booleans(),
        # Share of the pool's input-side reserve the trader swaps, in thousandths.
        share=st.integers(1, 300),
    )
    def check(pool: str, forward: bool, share: int) -> None:
        snapshot = dex.chain.snapshot()
        try:
            store = read_store(dex)
            strategy = _strategy(dex, store)
            address = dex.v3.address.lower() if pool == "V" else dex.pairs[pool].address.lower()
            entry = store.pools[address]
            token_in = entry.token0 if forward else entry.token1
            reserve = dex.tokens[token_in].functions.balanceOf(dex.contract_of(address).address).call()
            found = _gap(dex, store, strategy, address, token_in, max(1, reserve * share // 1000))
            seen["found" if found else "none"] += 1
            if found:
                _assert_chain_pays(dex, found[0])
        finally:
            dex.chain.revert(snapshot)

    check()
    assert seen["found"] > 0
