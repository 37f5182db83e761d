"""The block classifier on scripted anvil blocks whose answer is known (real Uniswap V2/V3 contracts).

Every scenario is classified from receipt logs only, Parity traces only (trace_block), geth
callTracer frames only, receipts without logs plus traces, and both; all must give the same
answer, and the numbers are checked against the chain's own balances and events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from web3.logs import DISCARD

from mevagent.analytics import BlockClassification, classify_block
from testbed.analytics import (
    DEADLINE,
    World,
    build_world,
    fetch_block,
    narrow_mint,
    next_token_id,
    source_variants,
)
from testbed.balancer import deploy_vault
from testbed.evm import MAX_UINT256, Chain

ALL_SOURCES = ("logs", "traces", "geth", "logless", "both")
TRACE_SOURCES = ("traces", "geth", "logless", "both")


@pytest.fixture(scope="module")
def world(chain: Chain) -> Iterator[World]:
    yield build_world(chain)


def classify_all(world: World, number: int) -> dict[str, BlockClassification]:
    raw = fetch_block(world.chain, number)
    return {name: classify_block(variant) for name, variant in source_variants(raw).items()}


def mev(result: BlockClassification) -> dict[str, Any]:
    """What must not depend on the source."""
    return result.model_dump(mode="json", include={"sandwiches", "arbitrages", "liquidations", "jit", "swaps"})


def assert_same_everywhere(results: dict[str, BlockClassification], sources: tuple[str, ...] = ALL_SOURCES) -> None:
    reference = mev(results[sources[0]])
    for name in sources[1:]:
        assert mev(results[name]) == reference, name


def tx(receipt: Any) -> str:
    return "0x" + receipt["transactionHash"].hex().removeprefix("0x")


def low(address: str) -> str:
    return address.lower()


def test_sandwich_with_several_victims(world: World) -> None:
    w, s = world, world.actors["searcher"]
    v1, v2, other = w.actors["victim1"], w.actors["victim2"], w.actors["user1"]
    front_in = 3 * 10**20
    # The back-run sells exactly what the front-run buys: quoted on the pair as it is now.
    bought = w.router02.functions.getAmountsOut(front_in, [w.a.address, w.b.address]).call()[-1]
    before = w.balance(w.a, s)
    number, receipts = w.mine(
        [
            (w.v2_path_swap(s, [w.a, w.b], front_in), s),
            (w.v2_path_swap(v1, [w.a, w.b], 10**21), v1),
            (w.v2_path_swap(other, [w.b, w.c], 10**20), other),  # another pool: not a victim
            (w.v2_path_swap(v2, [w.a, w.b], 4 * 10**20), v2),
            (w.v2_path_swap(s, [w.b, w.a], bought), s),
        ]
    )
    profit = w.balance(w.a, s) - before
    assert profit > 0
    results = classify_all(w, number)
    assert_same_everywhere(results)
    expected = {
        "frontrun_tx": tx(receipts[0]),
        "backrun_tx": tx(receipts[4]),
        "victim_txs": [tx(receipts[1]), tx(receipts[3])],
        "sandwicher": low(s),
        "profit_token": w.addr(w.a),
        "profit_amount": str(profit),
    }
    for name, result in results.items():
        assert [x.model_dump(mode="json") for x in result.sandwiches] == [expected], name
        assert result.arbitrages == [] and result.jit == [], name
        assert len(result.swaps) == 5 and result.unresolved_swaps == 0, name


def profitable_cycle(world: World, amount_in: int) -> list[Any]:
    """A -> B -> C -> A or the other way round, whichever pays on the pairs as earlier tests left them."""
    for path in ([world.a, world.b, world.c, world.a], [world.a, world.c, world.b, world.a]):
        if world.router02.functions.getAmountsOut(amount_in, [t.address for t in path]).call()[-1] > amount_in:
            return path
    raise AssertionError("the fixture's pairs must keep a price gap")


def test_multi_hop_arbitrage(world: World) -> None:
    w, arber = world, world.actors["arber"]
    path = profitable_cycle(w, 10**20)
    before = w.balance(w.a, arber)
    number, receipts = w.mine([(w.v2_path_swap(arber, path, 10**20), arber)])
    profit = w.balance(w.a, arber) - before
    assert profit > 0
    results = classify_all(w, number)
    assert_same_everywhere(results)
    for name, result in results.items():
        assert [x.model_dump(mode="json") for x in result.arbitrages] == [
            {
                "tx": tx(receipts[0]),
                "account": low(arber),
                "profit_token": w.addr(w.a),
                "profit_amount": str(profit),
                "path": [w.addr(t) for t in path],
                "reverted": False,
            }
        ], name
        assert result.sandwiches == [], name
        assert [(s.token_in, s.token_out) for s in result.swaps] == [
            (w.addr(x), w.addr(y)) for x, y in itertools.pairwise(path)
        ], name


def test_reverted_arbitrage_is_seen_in_traces_only(world: World) -> None:
    w, arber = world, world.actors["arber"]
    amount_in = 10**20
    # The previous test took the gap: like a bot beaten to it, this one's minimum is out of reach.
    path = [w.a, w.b, w.c, w.a]
    would_get = w.router02.functions.getAmountsOut(amount_in, [t.address for t in path]).call()[-1]
    # The fee-on-transfer variant swaps first and checks the output last: the swaps are in the trace.
    fn = w.router02.functions.swapExactTokensForTokensSupportingFeeOnTransferTokens(
        amount_in, would_get + 1, [t.address for t in path], arber, DEADLINE
    )
    number, receipts = w.mine([(fn, arber)])
    assert receipts[0]["status"] == 0
    results = classify_all(w, number)
    assert_same_everywhere(results, TRACE_SOURCES)
    for name in TRACE_SOURCES:
        result = results[name]
        assert [x.model_dump(mode="json") for x in result.arbitrages] == [
            {
                "tx": tx(receipts[0]),
                "account": low(arber),
                "profit_token": w.addr(w.a),
                "profit_amount": str(would_get - amount_in),
                "path": [w.addr(t) for t in path],
                "reverted": True,
            }
        ], name
        assert result.swaps == [], name  # nothing was swapped
    # A reverted transaction leaves no logs: from receipts alone there is nothing to classify.
    assert results["logs"].arbitrages == [] and results["logs"].swaps == []


def test_balancer_v2_arbitrage_and_a_reverted_one(world: World) -> None:
    """A cycle through two pools of the published Balancer V2 Vault in one batchSwap (A -> B where B is dear,
    B -> A where it is cheap): from every source the same two swaps (the Vault's Swap events, or the Vault's
    onSwap calls to the pools in traces) and the arbitrage, its profit the account's balance change. The same
    batchSwap asking for one unit more than it pays reverts: from traces an attempted arbitrage, from logs
    nothing."""
    w, arber = world, world.actors["arber"]
    balancer = deploy_vault(w.chain)
    vault = balancer.vault
    cheap, dear = balancer.deploy_pool(w.a, w.b, 30), balancer.deploy_pool(w.a, w.b, 30)
    for token in (w.a, w.b):
        w.chain.transact(token.functions.approve(vault.address, MAX_UINT256))
        w.send(token.functions.approve(vault.address, MAX_UINT256), arber)
    balancer.join(cheap, w.chain.account, {w.a.address: 10**22, w.b.address: 2 * 10**22})
    balancer.join(dear, w.chain.account, {w.a.address: 10**22, w.b.address: 24 * 10**21})
    amount = 10**20
    steps = [
        (dear.functions.poolId().call(), 0, 1, amount, b""),
        (cheap.functions.poolId().call(), 1, 0, 0, b""),  # 0: all of the previous step's output
    ]
    assets, funds = [w.a.address, w.b.address], (arber, False, arber, False)
    deltas = vault.functions.queryBatchSwap(0, steps, assets, funds).call({"from": arber})
    profit = -deltas[0]
    assert profit > 0 and deltas[1] == 0
    greedy = vault.functions.batchSwap(0, steps, assets, funds, [-(profit + 1), 0], DEADLINE)
    failed_block, failed = w.mine([(greedy, arber)])
    assert failed[0]["status"] == 0
    before = w.balance(w.a, arber)
    number, receipts = w.mine([(vault.functions.batchSwap(0, steps, assets, funds, [amount, 0], DEADLINE), arber)])
    assert w.balance(w.a, arber) - before == profit
    events = vault.events.Swap().process_receipt(receipts[0], errors=DISCARD)
    pools = [low(dear.address), low(cheap.address)]
    expected_swaps = [
        {
            "tx": tx(receipts[0]),
            "pool": pool,
            "protocol": "balancer_v2",
            "sender": low(arber),
            "recipient": low(arber),
            "token_in": low(e["args"]["tokenIn"]),
            "amount_in": str(e["args"]["amountIn"]),
            "token_out": low(e["args"]["tokenOut"]),
            "amount_out": str(e["args"]["amountOut"]),
        }
        for pool, e in zip(pools, events, strict=True)
    ]
    results = classify_all(w, number)
    assert_same_everywhere(results)
    for name, result in results.items():
        assert [x.model_dump(mode="json") for x in result.swaps] == expected_swaps, name
        assert [x.model_dump(mode="json") for x in result.arbitrages] == [
            {
                "tx": tx(receipts[0]),
                "account": low(arber),
                "profit_token": w.addr(w.a),
                "profit_amount": str(profit),
                "path": [w.addr(w.a), w.addr(w.b), w.addr(w.a)],
                "reverted": False,
            }
        ], name
    reverted = classify_all(w, failed_block)
    for name in TRACE_SOURCES:
        assert [(a.tx, a.profit_amount, a.reverted) for a in reverted[name].arbitrages] == [
            (tx(failed[0]), profit, True)
        ], name
    assert reverted["logs"].arbitrages == [] and reverted["logs"].swaps == []


def test_jit_liquidity(world: World) -> None:
    w, jit, victim = world, world.actors["jit"], world.actors["victim3"]
    token_id = next_token_id(w)
    mint, (lower, upper, liquidity, amount0, amount1) = narrow_mint(w, jit, 10**23)
    burn = w.npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, DEADLINE))
    number, receipts = w.mine([(mint, jit), (w.v3_single_swap(victim, w.a, w.b, 2 * 10**20), victim), (burn, jit)])
    assert all(r["status"] == 1 for r in receipts)
    (decreased,) = w.npm.events.DecreaseLiquidity().process_receipt(receipts[2], errors=DISCARD)
    results = classify_all(w, number)
    assert_same_everywhere(results)
    expected = {
        "mint_tx": tx(receipts[0]),
        "burn_tx": tx(receipts[2]),
        "victim_txs": [tx(receipts[1])],
        "provider": low(jit),
        "pool": low(w.v3_pool.address),
        "tick_lower": lower,
        "tick_upper": upper,
        "liquidity": str(liquidity),
        "mint_amounts": [str(amount0), str(amount1)],
        "burn_amounts": [str(decreased["args"]["amount0"]), str(decreased["args"]["amount1"])],
    }
    for name, result in results.items():
        assert [x.model_dump(mode="json") for x in result.jit] == [expected], name
        assert result.sandwiches == [] and result.arbitrages == [], name


def test_look_alikes_are_not_mev(world: World) -> None:
    """Swaps that share a shape with MEV and are not: nothing but swaps may come out."""
    w = world
    u1, u2, jit, v2 = w.actors["user1"], w.actors["user2"], w.actors["jit"], w.actors["victim2"]
    bought = w.router02.functions.getAmountsOut(10**20, [w.a.address, w.b.address]).call()[-1]
    token_id = next_token_id(w)
    mint, (_lower, _upper, liquidity, _a0, _a1) = narrow_mint(w, jit, 10**22)
    number, receipts = w.mine(
        [
            (w.v2_path_swap(u1, [w.a, w.b], 10**20), u1),  # buys, then sells with nobody between
            (w.v3_single_swap(u2, w.a, w.b, 10**20), u2),  # same direction, other pool
            (w.v2_path_swap(u1, [w.b, w.a], bought), u1),
            (w.v2_path_swap(u2, [w.a, w.b, w.c], 10**20), u2),  # multi-hop, not a cycle
            (mint, jit),  # liquidity in and out with no swap of anyone else between
            (w.npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, DEADLINE)), jit),
            (w.v2_path_swap(v2, [w.b, w.a], 10**20), v2),  # the other direction, alone
        ]
    )
    assert all(r["status"] == 1 for r in receipts)
    results = classify_all(w, number)
    assert_same_everywhere(results)
    for name, result in results.items():
        assert (result.sandwiches, result.arbitrages, result.jit, result.liquidations) == ([], [], [], []), name
        assert [s.tx for s in result.swaps] == [tx(receipts[i]) for i in (0, 1, 2, 3, 3, 6)], name
        assert result.unresolved_swaps == 0, name


def test_transfers_and_payments_from_each_source(world: World) -> None:
    """ERC-20 transfers agree across sources; native value (a coinbase tip) is only in traces."""
    w, s = world, world.actors["searcher"]
    coinbase = w.chain.w3.eth.get_block("latest")["miner"]
    tip = w.chain.w3.eth.send_transaction({"from": s, "to": coinbase, "value": 12345, "gas": 21000, "gasPrice": 0})
    number = w.chain.w3.eth.wait_for_transaction_receipt(tip)["blockNumber"]
    results = classify_all(w, number)
    for name in TRACE_SOURCES:
        assert [(p.tx, p.coinbase_transfer) for p in results[name].payments] == [
            ("0x" + tip.hex().removeprefix("0x"), 12345)
        ]
    assert results["logs"].payments == []  # zero gas price: no priority fee, and logs carry no value
