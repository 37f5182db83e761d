"""get_amount_out / get_amount_in against a deployed UniswapV2Pair on anvil, exactly.

The pair itself is the judge: for the agent's figure the swap must go through, and one wei more
output (or one wei less input) must fail the pair's K check. That pins the figure to the exact
boundary the contract enforces, not merely to a value it accepts.
"""

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from mevagent.amm import V2Hop, get_amount_in, get_amount_out, size_v2_cycle
from testbed.evm import Chain, deploy_token, deploy_v2_pair, set_v2_reserves

MAX_UINT112 = (1 << 112) - 1

# Log-uniform over 1..2^112-1, so tiny pools (where rounding dominates) are as likely as huge ones.
uint112 = st.integers(min_value=0, max_value=111).flatmap(
    lambda bits: st.integers(min_value=1 << bits, max_value=min((1 << (bits + 1)) - 1, MAX_UINT112))
)

V2_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class V2Env:
    chain: Chain
    pair: Contract
    # A second pair of the same two tokens, for cycles.
    other_pair: Contract
    token0: Contract
    token1: Contract


@pytest.fixture(scope="module")
def v2(chain: Chain) -> V2Env:
    token_a, token_b = deploy_token(chain), deploy_token(chain)
    pair = deploy_v2_pair(chain, token_a, token_b)
    token0, token1 = (token_a, token_b) if pair.functions.token0().call() == token_a.address else (token_b, token_a)
    return V2Env(chain, pair, deploy_v2_pair(chain, token_a, token_b), token0, token1)


def _set_reserves(env: V2Env, reserve0: int, reserve1: int) -> None:
    set_v2_reserves(env.chain, env.pair, env.token0, env.token1, reserve0, reserve1)


def _swap_fn(env: V2Env, zero_for_one: bool, amount_out: int) -> ContractFunction:
    amounts = (0, amount_out) if zero_for_one else (amount_out, 0)
    return env.pair.functions.swap(*amounts, env.chain.account, b"")


@V2_SETTINGS
@given(reserve0=uint112, reserve1=uint112, amount_in=uint112, zero_for_one=st.booleans())
def test_get_amount_out_is_the_pairs_exact_maximum(
    v2: V2Env, reserve0: int, reserve1: int, amount_in: int, zero_for_one: bool
) -> None:
    reserve_in, reserve_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
    if reserve_in + amount_in > MAX_UINT112:
        amount_in = MAX_UINT112 - reserve_in  # the pair cannot hold more than uint112
    if amount_in == 0:
        return
    expected = get_amount_out(amount_in, reserve_in, reserve_out)
    token_in, token_out = (v2.token0, v2.token1) if zero_for_one else (v2.token1, v2.token0)

    snapshot = v2.chain.snapshot()
    try:
        _set_reserves(v2, reserve0, reserve1)
        v2.chain.transact(token_in.functions.transfer(v2.pair.address, amount_in))
        # One wei more than the agent's figure breaks the invariant (or the pool's depth).
        too_much = v2.chain.revert_reason(_swap_fn(v2, zero_for_one, expected + 1))
        assert too_much is not None
        assert "UniswapV2: K" in too_much or "INSUFFICIENT_LIQUIDITY" in too_much
        if expected == 0:
            return  # the pair rejects a zero-output swap outright; the +1 check above is the proof
        balance_before = token_out.functions.balanceOf(v2.chain.account).call()
        v2.chain.transact(_swap_fn(v2, zero_for_one, expected))
        assert token_out.functions.balanceOf(v2.chain.account).call() - balance_before == expected
        new_reserves = v2.pair.functions.getReserves().call()[:2]
        new_in, new_out = new_reserves if zero_for_one else new_reserves[::-1]
        assert (new_in, new_out) == (reserve_in + amount_in, reserve_out - expected)
    finally:
        v2.chain.revert(snapshot)


@V2_SETTINGS
@given(reserve0=uint112, reserve1=uint112, data=st.data(), zero_for_one=st.booleans())
def test_get_amount_in_is_the_pairs_minimum_plus_the_librarys_wei(
    v2: V2Env, reserve0: int, reserve1: int, data: st.DataObject, zero_for_one: bool
) -> None:
    reserve_in, reserve_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
    if reserve_out < 2:
        return  # nothing can be bought out of a one-wei reserve
    amount_out = data.draw(st.integers(min_value=1, max_value=reserve_out - 1), label="amount_out")
    amount_in = get_amount_in(amount_out, reserve_in, reserve_out)
    if reserve_in + amount_in > MAX_UINT112:
        return  # the pair could not hold that input
    token_in = v2.token0 if zero_for_one else v2.token1
    # The library's "+ 1" overshoots the true minimum by one wei exactly when the division is exact.
    exact_division = (reserve_in * amount_out * 1000) % ((reserve_out - amount_out) * 997) == 0

    snapshot = v2.chain.snapshot()
    try:
        _set_reserves(v2, reserve0, reserve1)
        v2.chain.transact(token_in.functions.transfer(v2.pair.address, amount_in - 1))
        one_wei_short = v2.chain.revert_reason(_swap_fn(v2, zero_for_one, amount_out))
        if exact_division:
            assert one_wei_short is None
        else:
            assert one_wei_short is not None
            # amount_in - 1 is 0 when the library's floor is 0: the pair then rejects the empty input.
            assert "UniswapV2: K" in one_wei_short or "INSUFFICIENT_INPUT_AMOUNT" in one_wei_short
        v2.chain.transact(token_in.functions.transfer(v2.pair.address, 1))
        v2.chain.transact(_swap_fn(v2, zero_for_one, amount_out))
    finally:
        v2.chain.revert(snapshot)


# Pools from 10^6 to 10^30 wei deep, the second 1-30% cheaper in token0: a cycle to size.
deep_reserves = st.integers(min_value=6, max_value=29).flatmap(
    lambda digits: st.integers(min_value=10**digits, max_value=10 ** (digits + 1) - 1)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reserve0=deep_reserves, reserve1=deep_reserves, cheaper_percent=st.integers(1, 30))
def test_a_sized_v2_cycle_earns_exactly_its_predicted_profit(
    v2: V2Env, reserve0: int, reserve1: int, cheaper_percent: int
) -> None:
    """token0 -> token1 on one pair, token1 -> token0 on the other, executed as sized."""
    other_reserve0 = reserve0 * (100 + cheaper_percent) // 100
    hops = [V2Hop(reserve0, reserve1, 3, 1000), V2Hop(reserve1, other_reserve0, 3, 1000)]
    result = size_v2_cycle(hops)
    if result is None:
        return  # a 1% gap on a tiny pool can be all fee and rounding
    _, hop1_out, hop2_out = result.hop_amounts
    snapshot = v2.chain.snapshot()
    try:
        _set_reserves(v2, reserve0, reserve1)
        set_v2_reserves(v2.chain, v2.other_pair, v2.token0, v2.token1, other_reserve0, reserve1)
        before = v2.token0.functions.balanceOf(v2.chain.account).call()
        v2.chain.transact(v2.token0.functions.transfer(v2.pair.address, result.amount_in))
        v2.chain.transact(v2.pair.functions.swap(0, hop1_out, v2.other_pair.address, b""))
        v2.chain.transact(v2.other_pair.functions.swap(hop2_out, 0, v2.chain.account, b""))
        assert v2.token0.functions.balanceOf(v2.chain.account).call() - before == result.profit > 0
    finally:
        v2.chain.revert(snapshot)
