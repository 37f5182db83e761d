"""simulate_swap against deployed UniswapV3Pools on anvil, exactly.

Three pools from the published v3-core artifacts, each with overlapping positions over distinct
tick ranges, a gap with no liquidity, an initialized tick whose liquidityNet is zero, and ranges
that span several 256-tick bitmap words. The pool state the simulator starts from is read back
from the chain (slot0, liquidity, TickLens), not from what the test meant to create. Each example
runs a short sequence of swaps through SwapRouter and compares every figure the pool reports
(amount0, amount1, sqrtPriceX96, tick, liquidity) with the simulation, and checks that whatever
the simulator rejects the chain rejects too.
"""

import dataclasses
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.logs import DISCARD

from mevagent.amm import Revert, V2Hop, V3Hop, V3PoolState, simulate_swap, size_cycle
from mevagent.amm.v3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    default_sqrt_price_limit,
    get_amount0_delta,
    get_amount1_delta,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from testbed.evm import (
    DEADLINE,
    MAX_UINT256,
    V3_CORE,
    Chain,
    deploy_token,
    deploy_v2_pair,
    deploy_v3_stack,
    read_v3_pool,
    set_v2_reserves,
)


@dataclass(frozen=True)
class PoolSpec:
    fee: int
    tick_spacing: int
    sqrt_price_x96: int
    # (lower, upper): positions minted through NonfungiblePositionManager.
    positions: tuple[tuple[int, int], ...]
    # (i, j): position j is trimmed to position i's liquidity, and they share a tick, so that tick
    # is initialized with liquidityNet 0 and must still stop the swap step.
    equal_liquidity: tuple[int, int]
    # Narrow, shallow positions around the starting price (10^19 of each token desired instead of
    # 10^22), so that even middling swaps cross several initialized ticks.
    ladder: tuple[tuple[int, int], ...]


POOL_SPECS = (
    # 0.3%, spacing 60: a bitmap word is 15360 ticks; the wide position crosses the words at ±15360.
    PoolSpec(
        fee=3000,
        tick_spacing=60,
        sqrt_price_x96=get_sqrt_ratio_at_tick(0),
        positions=((-600, 600), (600, 1200), (-1200, -60), (60, 1800), (-18000, 18000), (-120, 120)),
        equal_liquidity=(0, 1),
        ladder=tuple((lower, lower + 120) for lower in range(-900, 900, 180)),
    ),
    # 0.05%, spacing 10, a price like WETH/USDC's (tick about -201234), between two ticks.
    PoolSpec(
        fee=500,
        tick_spacing=10,
        sqrt_price_x96=get_sqrt_ratio_at_tick(-201234) + 123456789,
        positions=(
            (-203000, -199000),
            (-201500, -201000),
            (-210000, -195000),
            (-201240, -201230),
            (-200000, -198000),
            (-205000, -201500),
        ),
        equal_liquidity=(1, 5),
        ladder=tuple((lower, lower + 30) for lower in range(-201480, -201000, 50)),
    ),
    # 0.01% with spacing 1 (enabled by the factory owner): 256-tick words, so most swaps cross
    # several word boundaries, and there is a liquidity gap between -400 and -300.
    PoolSpec(
        fee=100,
        tick_spacing=1,
        sqrt_price_x96=get_sqrt_ratio_at_tick(5) + 1,
        positions=((-300, 300), (300, 301), (-50, 40), (10, 700), (-1000, -400), (800, 900)),
        equal_liquidity=(0, 1),
        ladder=tuple((lower, lower + 5) for lower in range(-60, 60, 8)),
    ),
)


@dataclass(frozen=True)
class LiquidityChange:
    """One mint or burn through the position manager, as its event reported it."""

    lower: int
    upper: int
    liquidity: int  # > 0 added, < 0 removed
    amount0: int
    amount1: int


@dataclass(frozen=True)
class DeployedPool:
    spec: PoolSpec
    contract: Contract
    state: V3PoolState
    liquidity_changes: tuple[LiquidityChange, ...]


@dataclass(frozen=True)
class V3Env:
    chain: Chain
    token0: Contract
    token1: Contract
    factory: Contract
    router: Contract
    pools: tuple[DeployedPool, ...]
    uninitialized_pool: Contract
    # A V2 pair of the same tokens, the other leg of V3/V2 cycles.
    v2_pair: Contract


def _mint(
    chain: Chain, npm: Contract, tokens: tuple[str, str], fee: int, ticks: tuple[int, int], desired: int
) -> tuple[int, LiquidityChange]:
    lower, upper = ticks
    params = (*tokens, fee, lower, upper, desired, desired, 0, 0, chain.account, DEADLINE)
    receipt = chain.transact(npm.functions.mint(params))
    (event,) = npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
    args = event["args"]
    return args["tokenId"], LiquidityChange(lower, upper, args["liquidity"], args["amount0"], args["amount1"])


def _burn(chain: Chain, npm: Contract, token_id: int, lower: int, upper: int, liquidity: int) -> LiquidityChange:
    receipt = chain.transact(npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, DEADLINE)))
    (event,) = npm.events.DecreaseLiquidity().process_receipt(receipt, errors=DISCARD)
    return LiquidityChange(lower, upper, -liquidity, event["args"]["amount0"], event["args"]["amount1"])


def _read_state(lens: Contract, pool: Contract, spec: PoolSpec) -> V3PoolState:
    ranges = spec.positions + spec.ladder
    return read_v3_pool(lens, pool, min(lower for lower, _ in ranges), max(upper for _, upper in ranges))


@pytest.fixture(scope="module")
def v3(chain: Chain) -> V3Env:
    token_a, token_b = deploy_token(chain), deploy_token(chain)
    token0, token1 = sorted((token_a, token_b), key=lambda token: int(token.address, 16))
    factory, npm, router, lens = deploy_v3_stack(chain, (token0, token1))
    chain.transact(factory.functions.enableFeeAmount(100, 1))

    pool_artifact = f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json"
    pools = []
    for spec in POOL_SPECS:
        chain.transact(factory.functions.createPool(token0.address, token1.address, spec.fee))
        pool = chain.at(pool_artifact, factory.functions.getPool(token0.address, token1.address, spec.fee).call())
        chain.transact(pool.functions.initialize(spec.sqrt_price_x96))
        tokens = (token0.address, token1.address)
        minted = [_mint(chain, npm, tokens, spec.fee, ticks, 10**22) for ticks in spec.positions]
        laddered = [_mint(chain, npm, tokens, spec.fee, ticks, 10**19) for ticks in spec.ladder]
        keep, trim = spec.equal_liquidity
        token_id, trimmed = minted[trim]
        excess = trimmed.liquidity - minted[keep][1].liquidity
        assert excess > 0, "the position to trim must start with more liquidity than its partner"
        burned = _burn(chain, npm, token_id, trimmed.lower, trimmed.upper, excess)
        state = _read_state(lens, pool, spec)
        shared_tick = set(spec.positions[keep]) & set(spec.positions[trim])
        assert [state.ticks[tick] for tick in shared_tick] == [0], "the zero-net tick was not set up"
        changes = (*(change for _, change in minted + laddered), burned)
        pools.append(DeployedPool(spec, pool, state, changes))

    chain.transact(factory.functions.createPool(token0.address, token1.address, 10000))
    uninitialized = chain.at(pool_artifact, factory.functions.getPool(token0.address, token1.address, 10000).call())
    v2_pair = deploy_v2_pair(chain, token0, token1)
    return V3Env(chain, token0, token1, factory, router, tuple(pools), uninitialized, v2_pair)


def _swap_on_chain(env: V3Env, pool: DeployedPool, zero_for_one: bool, amount: int, limit: int) -> dict | None:
    """Run the swap through SwapRouter; the pool's Swap event args, or None if it reverted."""
    token_in, token_out = (env.token0, env.token1) if zero_for_one else (env.token1, env.token0)
    if amount > 0:
        params = (
            token_in.address,
            token_out.address,
            pool.spec.fee,
            env.chain.account,
            DEADLINE,
            amount,
            0,
            limit,
        )
        fn = env.router.functions.exactInputSingle(params)
    else:
        params = (
            token_in.address,
            token_out.address,
            pool.spec.fee,
            env.chain.account,
            DEADLINE,
            -amount,
            MAX_UINT256,
            limit,
        )
        fn = env.router.functions.exactOutputSingle(params)
    receipt = env.chain.transact(fn, expect_success=False)
    if receipt["status"] != 1:
        return None
    (event,) = pool.contract.events.Swap().process_receipt(receipt, errors=DISCARD)
    return dict(event["args"])


# Dust that only pays fee (one draw in three), and 10^15..10^25 log-uniform: swaps inside one
# range, swaps across several positions, and swaps that drain every range on one side and run on
# to the price limit.
_large_amounts = st.integers(min_value=15, max_value=24).flatmap(
    lambda digits: st.integers(min_value=10**digits, max_value=10 ** (digits + 1) - 1)
)
amounts = st.one_of(st.integers(min_value=1, max_value=10**6), _large_amounts, _large_amounts)


# (zero_for_one, amount_specified: > 0 exact input, < 0 exact output, limit), where limit is
# ("default", 0, 0) or ("tick", n, nudge): the price n tick spacings from the tick at the time of
# the swap, plus `nudge` wei.
SwapRequest = tuple[bool, int, tuple[str, int, int]]


@st.composite
def swap_requests(draw: st.DrawFn) -> SwapRequest:
    zero_for_one = draw(st.booleans(), label="zero_for_one")
    exact_in = draw(st.booleans(), label="exact_in")
    amount = draw(amounts, label="amount")
    # Mostly in the direction of travel, one time in five on the wrong side: both sides must then
    # revert with SPL.
    ahead = -1 if zero_for_one else 1
    direction = draw(st.integers(0, 4).map(lambda wrong: -ahead if wrong == 0 else ahead), label="direction")
    limit = draw(
        st.one_of(
            st.tuples(st.just("default"), st.just(0), st.just(0)),
            st.tuples(st.just("tick"), st.integers(0, 400).map(lambda n: n * direction), st.integers(-1, 1)),
        ),
        label="limit",
    )
    return zero_for_one, amount if exact_in else -amount, limit


def _limit_price(state: V3PoolState, zero_for_one: bool, limit: tuple[str, int, int]) -> int:
    kind, spacings, nudge = limit
    if kind == "default":
        return default_sqrt_price_limit(zero_for_one)
    tick = max(MIN_TICK, min(MAX_TICK, state.tick + spacings * state.tick_spacing))
    return get_sqrt_ratio_at_tick(tick) + nudge


def _check_swap_sequence(v3: V3Env, stats: Counter[str], pool: DeployedPool, requests: list[SwapRequest]) -> None:
    state = pool.state
    snapshot = v3.chain.snapshot()
    try:
        for zero_for_one, amount, limit in requests:
            sqrt_price_limit = _limit_price(state, zero_for_one, limit)
            try:
                expected = simulate_swap(state, zero_for_one, amount, sqrt_price_limit)
            except Revert:
                expected = None
            actual = _swap_on_chain(v3, pool, zero_for_one, amount, sqrt_price_limit)
            # SwapRouter's callback refuses a swap that moved no tokens at all (it ran only through
            # ranges without liquidity): the pool computed it, the router then reverts.
            if expected is None or (expected.amount0 <= 0 and expected.amount1 <= 0):
                assert actual is None, f"the chain accepted a swap the simulator rejects: {actual}"
                stats["reverted on both sides"] += 1
                continue
            assert actual is not None, f"the chain reverted a swap the simulator accepts: {expected}"
            assert (
                actual["amount0"],
                actual["amount1"],
                actual["sqrtPriceX96"],
                actual["tick"],
                actual["liquidity"],
            ) == expected[:5]
            slot0 = pool.contract.functions.slot0().call()
            assert (slot0[0], slot0[1]) == (expected.sqrt_price_x96, expected.tick)
            assert pool.contract.functions.liquidity().call() == expected.liquidity

            kind = "exact input" if amount > 0 else "exact output"
            stats["swaps compared"] += 1
            stats[kind] += 1
            stats["initialized ticks crossed"] += expected.ticks_crossed
            stats["most ticks crossed by one swap"] = max(
                stats["most ticks crossed by one swap"], expected.ticks_crossed
            )
            if expected.ticks_crossed >= 2:
                stats[f"{kind} crossing 2+ ticks"] += 1
            if expected.sqrt_price_x96 == sqrt_price_limit:
                stats["stopped at the price limit"] += 1
            state = dataclasses.replace(
                state,
                sqrt_price_x96=expected.sqrt_price_x96,
                tick=expected.tick,
                liquidity=expected.liquidity,
            )
    finally:
        v3.chain.revert(snapshot)


_NO_LIMIT = ("default", 0, 0)
# Always run, whatever hypothesis draws: in every pool, drain one side and swing back across the
# whole book (10^24 is more than any pool holds, so each swap runs to its price limit), with exact
# input and with exact output. Hypothesis explores everything in between.
_SWEEPS = [(pool, [(True, 10**24, _NO_LIMIT), (False, 10**24, _NO_LIMIT)]) for pool in range(len(POOL_SPECS))] + [
    (pool, [(False, -(10**24), _NO_LIMIT), (True, -(10**24), _NO_LIMIT)]) for pool in range(len(POOL_SPECS))
]


# Pool 2 (spacing 1, starting at tick 5) has no liquidity below -1000 or above 900: drain it onto
# a limit at exactly a bitmap word start (-1024, 1024), where the tick the pool leaves depends on
# how its zero-liquidity walk meets the limit, and one wei either side of it.
_WORD_START_LIMITS = [
    (2, [(True, amount, ("tick", -1029, nudge))]) for amount in (10**24, -(10**24)) for nudge in (-1, 0, 1)
] + [(2, [(False, 10**24, ("tick", 1019, nudge))]) for nudge in (-1, 0, 1)]


def test_simulate_swap_matches_the_pool(v3: V3Env) -> None:
    stats: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        pool=st.integers(0, len(POOL_SPECS) - 1),
        requests=st.lists(swap_requests(), min_size=1, max_size=4),
    )
    def swap_sequences_match(pool: int, requests: list[SwapRequest]) -> None:
        _check_swap_sequence(v3, stats, v3.pools[pool], requests)

    for pool, requests in _SWEEPS + _WORD_START_LIMITS:
        swap_sequences_match = example(pool=pool, requests=requests)(swap_sequences_match)
    swap_sequences_match()
    print(f"\nV3 swap property test coverage: {dict(sorted(stats.items()))}")
    # The property only means something if it was exercised on the hard cases, in both modes.
    assert stats["exact input crossing 2+ ticks"] >= 2 * len(POOL_SPECS)
    assert stats["exact output crossing 2+ ticks"] >= 2 * len(POOL_SPECS)


sqrt_prices = st.one_of(
    st.integers(min_value=MIN_SQRT_RATIO, max_value=MAX_SQRT_RATIO - 1),
    st.integers(min_value=MIN_TICK, max_value=MAX_TICK).flatmap(
        lambda tick: st.integers(-1, 1).map(lambda nudge: get_sqrt_ratio_at_tick(tick) + nudge)
    ),
    st.sampled_from([MIN_SQRT_RATIO - 1, MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1, MAX_SQRT_RATIO]),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sqrt_price_x96=sqrt_prices)
def test_get_tick_at_sqrt_ratio_matches_pool_initialize(v3: V3Env, sqrt_price_x96: int) -> None:
    """UniswapV3Pool.initialize stores TickMath.getTickAtSqrtRatio(price) in slot0: read it back."""
    try:
        expected = get_tick_at_sqrt_ratio(sqrt_price_x96)
    except Revert:
        expected = None
    snapshot = v3.chain.snapshot()
    try:
        receipt = v3.chain.transact(v3.uninitialized_pool.functions.initialize(sqrt_price_x96), expect_success=False)
        if expected is None:
            assert receipt["status"] == 0
        else:
            assert receipt["status"] == 1
            assert v3.uninitialized_pool.functions.slot0().call()[1] == expected
    finally:
        v3.chain.revert(snapshot)


def test_amount_deltas_match_what_mints_and_burns_moved(v3: V3Env) -> None:
    """UniswapV3Pool.mint charges getAmount{0,1}Delta rounded up, burn pays them rounded down.

    Every mint and burn of the fixture happened at the initial price, so the pool's figures can be
    recomputed from the position's ticks and liquidity alone.
    """
    for pool in v3.pools:
        sqrt_price = pool.spec.sqrt_price_x96
        tick = get_tick_at_sqrt_ratio(sqrt_price)
        for change in pool.liquidity_changes:
            sqrt_lower = get_sqrt_ratio_at_tick(change.lower)
            sqrt_upper = get_sqrt_ratio_at_tick(change.upper)
            liquidity, round_up = abs(change.liquidity), change.liquidity > 0
            if tick < change.lower:
                expected = (get_amount0_delta(sqrt_lower, sqrt_upper, liquidity, round_up), 0)
            elif tick < change.upper:
                expected = (
                    get_amount0_delta(sqrt_price, sqrt_upper, liquidity, round_up),
                    get_amount1_delta(sqrt_lower, sqrt_price, liquidity, round_up),
                )
            else:
                expected = (0, get_amount1_delta(sqrt_lower, sqrt_upper, liquidity, round_up))
            assert (change.amount0, change.amount1) == expected, change


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pool_index=st.integers(0, len(POOL_SPECS) - 1),
    zero_for_one=st.booleans(),
    premium_percent=st.integers(1, 20),
    depth=st.integers(18, 24),
)
def test_a_sized_v3_v2_cycle_earns_exactly_its_predicted_profit(
    v3: V3Env, pool_index: int, zero_for_one: bool, premium_percent: int, depth: int
) -> None:
    """Swap on the V3 pool through the router straight into the V2 pair, then back out of it.

    The V2 pair is priced 1-20% better than the V3 pool for the way back, and 10^depth deep in the
    token the V3 leg pays out; the concavity search sizes the cycle and the chain must pay exactly
    the profit it predicted.
    """
    pool = v3.pools[pool_index]
    price_q192 = pool.state.sqrt_price_x96**2  # token1 per token0, times 2^192
    if zero_for_one:  # token0 -> token1 on V3, token1 -> token0 on V2
        reserve1 = 10**depth
        reserve0 = reserve1 * (1 << 192) * (100 + premium_percent) // (price_q192 * 100)
        v2_hop = V2Hop(reserve1, reserve0, 3, 1000)
    else:  # token1 -> token0 on V3, token0 -> token1 on V2
        reserve0 = 10**depth
        reserve1 = reserve0 * price_q192 * (100 + premium_percent) // ((1 << 192) * 100)
        v2_hop = V2Hop(reserve0, reserve1, 3, 1000)
    result = size_cycle([V3Hop(pool.state, zero_for_one), v2_hop])
    assert result is not None
    _, v3_out, v2_out = result.hop_amounts
    token_in, token_out = (v3.token0, v3.token1) if zero_for_one else (v3.token1, v3.token0)
    snapshot = v3.chain.snapshot()
    try:
        set_v2_reserves(v3.chain, v3.v2_pair, v3.token0, v3.token1, reserve0, reserve1)
        before = token_in.functions.balanceOf(v3.chain.account).call()
        limit = default_sqrt_price_limit(zero_for_one)
        params = (token_in.address, token_out.address, pool.spec.fee, v3.v2_pair.address, DEADLINE)
        v3.chain.transact(v3.router.functions.exactInputSingle((*params, result.amount_in, v3_out, limit)))
        amounts_out = (v2_out, 0) if zero_for_one else (0, v2_out)
        v3.chain.transact(v3.v2_pair.functions.swap(*amounts_out, v3.chain.account, b""))
        assert token_in.functions.balanceOf(v3.chain.account).call() - before == result.profit > 0
    finally:
        v3.chain.revert(snapshot)
