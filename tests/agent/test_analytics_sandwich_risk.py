"""Pending-swap sandwich risk: the predicted value equals a sandwich actually executed on anvil, to the wei.

The sandwich is built inside the test only, against the test's own accounts, to prove the number
(the agent has no code path that front-runs anyone). Router calldata is decoded from what web3
encodes for the published Router02 and SwapRouter ABIs, and from eth_abi encodings of
SwapRouter02 and Universal Router calls (no deployment of those two here).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import encode
from eth_abi.packed import encode_packed

from mevagent.analytics import classify_block
from mevagent.analytics import sandwich_risk as SR
from mevagent.analytics.abi import selector
from mevagent.analytics.protection import execution_exposure
from mevagent.analytics.routers import PendingSwap, decode_swaps
from mevagent.analytics.sandwich_risk import PoolIndex, SandwichRisk, score_swap
from mevagent.analytics.v3_walk import cap_guess
from mevagent.core import Hop, Opportunity
from testbed.analytics import DEADLINE, World, build_world, fetch_block, pool_store, v3_pool_bc
from testbed.evm import Chain


@pytest.fixture(scope="module")
def world(chain: Chain) -> Iterator[World]:
    yield build_world(chain)


def calldata(fn: Any) -> str:
    return str(fn._encode_transaction_data())


def score(world: World, fn: Any) -> SandwichRisk:
    (swap,) = decode_swaps(calldata(fn))
    risk = score_swap(PoolIndex(pool_store(world)), swap)
    assert risk is not None
    return risk


def execute_sandwich(world: World, front: Any, victim: tuple[Any, str], back: Any) -> tuple[int, int, list[Any]]:
    """Front-run, victim, back-run in one block: (searcher's realized profit in A, block, receipts)."""
    searcher = world.actors["searcher"]
    before = world.balance(world.a, searcher)
    number, receipts = world.mine([(front, searcher), victim, (back, searcher)])
    assert [r["status"] for r in receipts] == [1, 1, 1]
    return world.balance(world.a, searcher) - before, number, receipts


def test_v2_router_victim_score_equals_executed_sandwich(world: World) -> None:
    w, victim, searcher = world, world.actors["victim1"], world.actors["searcher"]
    amount = 2 * 10**21
    quote = w.router02.functions.getAmountsOut(amount, [w.a.address, w.b.address]).call()[-1]
    pending = w.v2_path_swap(victim, [w.a, w.b], amount, quote * 995 // 1000)  # 0.5% slippage allowed
    risk = score(w, pending)
    assert (risk.amount_out, risk.limit, risk.pool) == (quote, quote * 995 // 1000, w.pairs["ab"].address.lower())
    assert risk.max_profit > 0 and 49.9 < risk.slippage_bps < 50.1 and risk.price_impact_bps > 30
    profit, number, _ = execute_sandwich(
        w,
        w.v2_path_swap(searcher, [w.a, w.b], risk.frontrun_amount_in),
        (pending, victim),
        w.v2_path_swap(searcher, [w.b, w.a], risk.backrun_amount_in),
    )
    assert profit == risk.max_profit
    # The victim got exactly its limit: the front-run was the largest it tolerates.
    assert w.balance(w.b, victim, number) - w.balance(w.b, victim, number - 1) == risk.victim_amount_out
    assert risk.victim_amount_out - risk.limit < risk.amount_out // 10**12
    (sandwich,) = classify_block(fetch_block(w.chain, number)).sandwiches
    assert sandwich.profit_amount == risk.max_profit


def test_v3_swaprouter_victim_score_equals_executed_sandwich(world: World) -> None:
    w, victim, searcher = world, world.actors["victim2"], world.actors["searcher"]
    amount = 3 * 10**21
    quote = w.swap_router.functions.exactInputSingle(
        (w.a.address, w.b.address, 3000, victim, DEADLINE, amount, 0, 0)
    ).call({"from": victim})
    pending = w.v3_single_swap(victim, w.a, w.b, amount, quote * 99 // 100)
    risk = score(w, pending)
    assert risk.amount_out == quote and risk.pool == w.v3_pool.address.lower() and risk.max_profit > 0
    profit, number, _ = execute_sandwich(
        w,
        w.v3_single_swap(searcher, w.a, w.b, risk.frontrun_amount_in),
        (pending, victim),
        w.v3_single_swap(searcher, w.b, w.a, risk.backrun_amount_in),
    )
    assert profit == risk.max_profit
    (sandwich,) = classify_block(fetch_block(w.chain, number)).sandwiches
    assert sandwich.profit_amount == risk.max_profit


def test_tight_limit_is_not_sandwichable(world: World) -> None:
    w, victim, searcher = world, world.actors["victim3"], world.actors["searcher"]
    amount = 10**21
    quote = w.router02.functions.getAmountsOut(amount, [w.a.address, w.b.address]).call()[-1]
    pending = w.v2_path_swap(victim, [w.a, w.b], amount, quote)
    risk = score(w, pending)
    assert (risk.max_profit, risk.frontrun_amount_in, risk.pool) == (0, 0, "")
    # Any front-run at all makes such a victim revert.
    _number, receipts = w.mine([(w.v2_path_swap(searcher, [w.a, w.b], 10**15), searcher), (pending, victim)])
    assert [r["status"] for r in receipts] == [1, 0]


def test_own_execution_exposure_equals_executed_sandwich(world: World) -> None:
    """Protection: what a sandwich could have taken from one of our cycles had it been sent publicly.

    The cycle runs through Router02 here (the executor's contract enforces the same limit: at least
    amount_in + min_profit back, or revert).
    """
    w, ours, searcher = world, world.actors["arber"], world.actors["searcher"]
    store = pool_store(w)
    amount_in = 2 * 10**20
    # Whichever way round the cycle pays on the pairs as the earlier tests left them.
    path, amounts = max(
        (
            (p, w.router02.functions.getAmountsOut(amount_in, [t.address for t in p]).call())
            for p in ([w.a, w.b, w.c, w.a], [w.a, w.c, w.b, w.a])
        ),
        key=lambda pa: pa[1][-1],
    )
    assert amounts[-1] > amount_in
    hops = tuple(Hop(_pair(w, x, y), "v2", w.addr(x), w.addr(y)) for x, y in itertools.pairwise(path))
    opportunity = Opportunity(
        chain="anvil",
        strategy="dex_arb",
        block=store.block,
        hops=hops,
        amount_in=amount_in,
        amount_out=amounts[-1],
        gas_limit=0,
        gas_price=0,
        builder_payment=0,
        notional_usd=0.0,
        profit_usd=0.0,
        gas_cost_usd=0.0,
        found_ns=0,
    )
    min_profit = (amounts[-1] - amount_in) // 2
    risk = execution_exposure(store, opportunity, min_profit)
    assert risk is not None and risk.max_profit > 0 and risk.profit_token == w.addr(w.a)
    attacked = next(i for i, h in enumerate(hops) if h.pool == risk.pool)
    token_in, token_out = path[attacked], path[attacked + 1]
    cycle = w.v2_path_swap(ours, path, amount_in, amount_in + min_profit)
    front = w.v2_path_swap(searcher, [token_in, token_out], risk.frontrun_amount_in)
    back = w.v2_path_swap(searcher, [token_out, token_in], risk.backrun_amount_in)
    before = w.balance(token_in, searcher)
    number, receipts = w.mine([(front, searcher), (cycle, ours), (back, searcher)])
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert w.balance(token_in, searcher) - before == risk.max_profit
    assert w.balance(w.a, ours, number) - w.balance(w.a, ours, number - 1) == risk.victim_amount_out - amount_in


def _pair(world: World, x: Any, y: Any) -> str:
    return str(world.v2_factory.functions.getPair(x.address, y.address).call()).lower()


A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
ME = "0x" + "11" * 20


def _v3_path(*parts: str | int) -> bytes:
    out = b""
    for part in parts:
        out += bytes.fromhex(part[2:]) if isinstance(part, str) else part.to_bytes(3, "big")
    return out


def test_router_calldata_decodes() -> None:
    """SwapRouter02 (single, multi-hop, V2 calls, multicall) and Universal Router commands."""
    single = (
        selector("exactInputSingle((address,address,uint24,address,uint256,uint256,uint160))")
        + encode(["(address,address,uint24,address,uint256,uint256,uint160)"], [(A, B, 500, ME, 10**18, 99, 0)]).hex()
    )
    multi_out = (
        selector("exactOutput((bytes,address,uint256,uint256))")
        + encode(["(bytes,address,uint256,uint256)"], [(_v3_path(C, 3000, B, 500, A), ME, 7, 10**19)]).hex()
    )
    v2 = (
        selector("swapExactTokensForTokens(uint256,uint256,address[],address)")
        + encode(["uint256", "uint256", "address[]", "address"], [5, 4, [A, C], ME]).hex()
    )
    multicall = (
        selector("multicall(uint256,bytes[])")
        + encode(["uint256", "bytes[]"], [DEADLINE, [bytes.fromhex(x[2:]) for x in (single, multi_out, v2)]]).hex()
    )
    assert decode_swaps(multicall) == [
        PendingSwap("v3", True, (A, B), (500,), 10**18, 99, ME),
        PendingSwap("v3", False, (A, B, C), (500, 3000), 7, 10**19, ME),
        PendingSwap("v2", True, (A, C), None, 5, 4, ME),
    ]
    commands = bytes([0x00, 0x08, 0x0C])  # V3 exact in, V2 exact in, UNWRAP_WETH (ignored)
    inputs = [
        encode(["address", "uint256", "uint256", "bytes", "bool"], [ME, 10, 9, _v3_path(A, 3000, B), True]),
        encode(["address", "uint256", "uint256", "address[]", "bool"], [ME, 20, 19, [B, C], True]),
        encode(["address", "uint256"], [ME, 0]),
    ]
    execute = (
        selector("execute(bytes,bytes[],uint256)")
        + encode(["bytes", "bytes[]", "uint256"], [commands, inputs, DEADLINE]).hex()
    )
    assert decode_swaps(execute) == [
        PendingSwap("v3", True, (A, B), (3000,), 10, 9, ME),
        PendingSwap("v2", True, (B, C), None, 20, 19, ME),
    ]
    eth_in = (
        selector("swapExactETHForTokens(uint256,address[],address,uint256)")
        + encode(["uint256", "address[]", "address", "uint256"], [3, [A, B], ME, DEADLINE]).hex()
    )
    assert decode_swaps(eth_in, value=10**18) == [PendingSwap("v2", True, (A, B), None, 10**18, 3, ME)]
    assert decode_swaps("0xa9059cbb" + "00" * 64) == [] and decode_swaps("0x38ed1739") == []


def test_exact_output_victim_score_equals_executed_sandwich(world: World) -> None:
    """swapTokensForExactTokens: the victim's limit is amountInMax; the sandwich makes it pay up to it."""
    w, victim, searcher = world, world.actors["victim1"], world.actors["searcher"]
    amount_out = 10**21
    needed = w.router02.functions.getAmountsIn(amount_out, [w.a.address, w.b.address]).call()[0]
    pending = w.router02.functions.swapTokensForExactTokens(
        amount_out, needed * 1005 // 1000, [w.a.address, w.b.address], victim, DEADLINE
    )
    risk = score(w, pending)
    assert (risk.amount_in, risk.amount_out, risk.limit) == (needed, amount_out, needed * 1005 // 1000)
    assert risk.max_profit > 0
    before = w.balance(w.a, victim)
    profit, _number, _ = execute_sandwich(
        w,
        w.v2_path_swap(searcher, [w.a, w.b], risk.frontrun_amount_in),
        (pending, victim),
        w.v2_path_swap(searcher, [w.b, w.a], risk.backrun_amount_in),
    )
    assert profit == risk.max_profit
    assert before - w.balance(w.a, victim) == risk.victim_amount_out  # what it paid, at most its limit


def test_multi_hop_victim_is_sandwiched_on_the_hop_that_pays(world: World) -> None:
    w, victim, searcher = world, world.actors["victim2"], world.actors["searcher"]
    path = [w.a, w.b, w.c]
    amount = 2 * 10**21
    quote = w.router02.functions.getAmountsOut(amount, [t.address for t in path]).call()[-1]
    pending = w.v2_path_swap(victim, path, amount, quote * 99 // 100)
    risk = score(w, pending)
    assert risk.amount_out == quote and risk.max_profit > 0
    hop = next(i for i in range(2) if _pair(w, path[i], path[i + 1]) == risk.pool)
    token_in, token_out = path[hop], path[hop + 1]
    assert risk.profit_token == w.addr(token_in)
    before = w.balance(token_in, searcher)
    number, receipts = w.mine(
        [
            (w.v2_path_swap(searcher, [token_in, token_out], risk.frontrun_amount_in), searcher),
            (pending, victim),
            (w.v2_path_swap(searcher, [token_out, token_in], risk.backrun_amount_in), searcher),
        ]
    )
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert w.balance(token_in, searcher) - before == risk.max_profit
    assert w.balance(w.c, victim, number) - w.balance(w.c, victim, number - 1) == risk.victim_amount_out


def test_v3_exact_output_victim_score_equals_executed_sandwich(world: World) -> None:
    w, victim, searcher = world, world.actors["victim3"], world.actors["searcher"]
    amount_out = 2 * 10**21
    params = (w.a.address, w.b.address, 3000, victim, DEADLINE, amount_out, 2**255, 0)
    needed = w.swap_router.functions.exactOutputSingle(params).call({"from": victim})
    pending = w.swap_router.functions.exactOutputSingle((*params[:6], needed * 101 // 100, 0))
    risk = score(w, pending)
    assert (risk.amount_in, risk.amount_out) == (needed, amount_out) and risk.max_profit > 0
    before = w.balance(w.a, victim)
    profit, _number, _ = execute_sandwich(
        w,
        w.v3_single_swap(searcher, w.a, w.b, risk.frontrun_amount_in),
        (pending, victim),
        w.v3_single_swap(searcher, w.b, w.a, risk.backrun_amount_in),
    )
    assert profit == risk.max_profit
    assert before - w.balance(w.a, victim) == risk.victim_amount_out


def test_multi_hop_v3_victim_is_scored_by_the_single_hop_walk_and_equals_the_executed_sandwich(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SwapRouter exactInput A -> B -> C through two V3 pools: the hop attacked is reduced to one hop (the limit
    carried back through the other), so the segment walk sizes it; the sandwich executed on that hop realizes
    the score to the wei, and the victim receives exactly the predicted amount."""
    w, victim, searcher = world, world.actors["victim1"], world.actors["searcher"]
    bc = v3_pool_bc(w)
    store = pool_store(w, [bc])
    path = encode_packed(["address", "uint24", "address", "uint24", "address"],
                         [w.a.address, 3000, w.b.address, 3000, w.c.address])  # fmt: skip
    amount = 3 * 10**21
    quote = w.swap_router.functions.exactInput((path, victim, DEADLINE, amount, 0)).call({"from": victim})
    pending = w.swap_router.functions.exactInput((path, victim, DEADLINE, amount, quote * 99 // 100))
    walks = []
    monkeypatch.setattr(SR, "cap_guess", lambda *args: walks.append(args) or cap_guess(*args))
    (swap,) = decode_swaps(calldata(pending))
    risk = score_swap(PoolIndex(store), swap)
    assert risk is not None and risk.amount_out == quote and risk.max_profit > 0
    assert walks  # the single-hop segment walk sized it (no regula falsi over the whole route)
    hop = 0 if risk.pool == w.v3_pool.address.lower() else 1
    token_in, token_out = [(w.a, w.b), (w.b, w.c)][hop]
    assert risk.pool == [w.v3_pool, bc][hop].address.lower() and risk.profit_token == w.addr(token_in)
    before = w.balance(token_in, searcher)
    number, receipts = w.mine(
        [
            (w.v3_single_swap(searcher, token_in, token_out, risk.frontrun_amount_in), searcher),
            (pending, victim),
            (w.v3_single_swap(searcher, token_out, token_in, risk.backrun_amount_in), searcher),
        ]
    )
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert w.balance(token_in, searcher) - before == risk.max_profit
    assert w.balance(w.c, victim, number) - w.balance(w.c, victim, number - 1) == risk.victim_amount_out


def test_multi_hop_exact_output_victim_score_equals_executed_sandwich(world: World) -> None:
    """Router02 swapTokensForExactTokens A -> B -> C: the limit (amountInMax) carried to the attacked hop; the
    executed sandwich realizes the score to the wei and the victim pays exactly the predicted amount."""
    w, victim, searcher = world, world.actors["victim3"], world.actors["searcher"]
    path = [w.a, w.b, w.c]
    amount_out = 10**21
    needed = w.router02.functions.getAmountsIn(amount_out, [t.address for t in path]).call()[0]
    pending = w.router02.functions.swapTokensForExactTokens(
        amount_out, needed * 101 // 100, [t.address for t in path], victim, DEADLINE
    )
    risk = score(w, pending)
    assert (risk.amount_in, risk.amount_out) == (needed, amount_out) and risk.max_profit > 0
    hop = next(i for i in range(2) if _pair(w, path[i], path[i + 1]) == risk.pool)
    token_in, token_out = path[hop], path[hop + 1]
    before, paid_before = w.balance(token_in, searcher), w.balance(w.a, victim)
    _number, receipts = w.mine(
        [
            (w.v2_path_swap(searcher, [token_in, token_out], risk.frontrun_amount_in), searcher),
            (pending, victim),
            (w.v2_path_swap(searcher, [token_out, token_in], risk.backrun_amount_in), searcher),
        ]
    )
    assert [r["status"] for r in receipts] == [1, 1, 1]
    assert w.balance(token_in, searcher) - before == risk.max_profit
    assert paid_before - w.balance(w.a, victim) == risk.victim_amount_out <= needed * 101 // 100
