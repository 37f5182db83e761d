"""Applying one log to the pool store exactly as the contract changed its storage, with an undo.

Every mutation first appends the closure that reverts it to `undo`; running a block's undo list
backwards puts the store back to the previous block exactly (reorg rollback). A V3 tick's
liquidityGross is kept beside the store (`gross`): only it tells when a Burn uninitializes a tick,
which the swap must then stop treating as a step boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mevagent.amm.v2 import fork_fees
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3_forks import v3_forks
from mevagent.state import abi
from mevagent.state.config import FactoryConfig
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

_log = logging.getLogger(__name__)

Undo = Callable[[], None]
# liquidityGross of every initialized tick, per V3 pool.
GrossTicks = dict[str, dict[int, int]]


def apply_log(
    store: PoolStore, gross: GrossTicks, factories: dict[str, FactoryConfig], log: dict[str, Any], undo: list[Undo]
) -> str | None:
    """Apply `log`; the address of the pool it changed or created, or None when it changes nothing tracked."""
    address = log["address"].lower()
    topics = log["topics"]
    if not topics:
        return None
    event = topics[0]
    pool = store.pools.get(address)
    if pool is None:
        factory = factories.get(address)
        if factory is None:
            return None
        if factory.kind == "v2" and event == abi.PAIR_CREATED:
            return _pair_created(store, factory, topics, log["data"], undo)
        if factory.kind == "v3" and event == abi.POOL_CREATED:
            return _pool_created(store, gross, factory, topics, log["data"], undo)
        return None
    if isinstance(pool, V2Pool):
        if event == abi.SYNC:
            reserve0, reserve1 = abi.words(log["data"])[:2]
            undo.append(_restore_reserves(pool, pool.reserve0, pool.reserve1))
            pool.reserve0, pool.reserve1 = reserve0, reserve1
            return address
        if fork_fees()[pool.fork].pool_fee != "token_fee_percent":
            return None
        if event == abi.FEE_PERCENT_UPDATED:
            fee0, fee1 = abi.words(log["data"])[:2]
            undo.append(_restore_fields(pool, fee=pool.fee, fee1=pool.fee1))
            pool.fee, pool.fee1 = fee0, fee1
            return address
        if event == abi.SET_STABLE_SWAP:
            stable = abi.words(log["data"])[1] != 0
            undo.append(_restore_fields(pool, stable=pool.stable))
            pool.stable = stable
            _log.info("%s pair %s switched to the %s curve", pool.fork, address, "stable" if stable else "x·y")
            return address
        return None
    state = pool.state
    if event == abi.V3_SWAP_BY_FORK.get(pool.fork):
        data = abi.words(log["data"])
        undo.append(_restore_slot(state))
        state.sqrt_price_x96 = data[2]
        state.liquidity = data[3]
        state.tick = abi.signed(data[4], 24)
        return address
    if event == abi.V3_MINT:
        amount = abi.words(log["data"])[1]
        _modify_position(state, gross[address], topics, amount, undo)
        return address
    if event == abi.V3_BURN:
        amount = abi.words(log["data"])[0]
        if amount:  # a zero burn only "pokes" the position's fees: no tick or liquidity changes
            _modify_position(state, gross[address], topics, -amount, undo)
        return address
    if event == abi.V3_INITIALIZE:
        data = abi.words(log["data"])
        undo.append(_restore_slot(state))
        state.sqrt_price_x96 = data[0]
        state.tick = abi.signed(data[1], 24)
        return address
    return None


def check_fee_tier(fork: str, address: str, fee: int, tick_spacing: int) -> None:
    """Log a V3 pool whose fee and spacing are not a tier of its fork (still tracked: its event says)."""
    if v3_forks()[fork].fee_tiers.get(fee) != tick_spacing:
        _log.warning(
            "%s pool %s has fee %d at spacing %d, not a tier of amm/v3_forks.yml", fork, address, fee, tick_spacing
        )


def _modify_position(
    state: V3PoolState, gross: dict[int, int], topics: list[str], delta: int, undo: list[Undo]
) -> None:
    """UniswapV3Pool._modifyPosition: both ticks, then the in-range liquidity if the price is inside."""
    lower = abi.topic_int(topics[2], 24)
    upper = abi.topic_int(topics[3], 24)
    _update_tick(state, gross, lower, delta, delta, undo)
    _update_tick(state, gross, upper, delta, -delta, undo)
    if lower <= state.tick < upper:
        undo.append(_restore_slot(state))
        state.liquidity += delta


def _update_tick(
    state: V3PoolState, gross: dict[int, int], tick: int, gross_delta: int, net_delta: int, undo: list[Undo]
) -> None:
    old_gross = gross.get(tick, 0)
    old_net = state.ticks.get(tick)
    undo.append(_restore_tick(state, gross, tick, old_gross, old_net))
    new_gross = old_gross + gross_delta
    if new_gross == 0:
        # Tick.clear: the tick is no longer initialized, so a swap no longer stops at it.
        gross.pop(tick, None)
        state.ticks.pop(tick, None)
    else:
        gross[tick] = new_gross
        state.ticks[tick] = (old_net or 0) + net_delta


def _pair_created(store: PoolStore, factory: FactoryConfig, topics: list[str], data: str, undo: list[Undo]) -> str:
    token0 = abi.address(int(topics[1], 16))
    token1 = abi.address(int(topics[2], 16))
    pair = abi.address(abi.words(data)[0])
    if pair in store.pools:
        return pair
    fee = fork_fees()[factory.fork]
    # A new pair holds nothing until its first Sync, which the same or a later log carries.
    store.add(V2Pool(pair, factory.fork, token0, token1, 0, 0, fee.fee, fee.fee_denominator))
    undo.append(_remove_pool(store, None, pair))
    return pair


def _pool_created(
    store: PoolStore, gross: GrossTicks, factory: FactoryConfig, topics: list[str], data: str, undo: list[Undo]
) -> str:
    token0 = abi.address(int(topics[1], 16))
    token1 = abi.address(int(topics[2], 16))
    fee = int(topics[3], 16)
    words = abi.words(data)
    tick_spacing = abi.signed(words[0], 24)
    pool = abi.address(words[1])
    if pool in store.pools:
        return pool
    check_fee_tier(factory.fork, pool, fee, tick_spacing)
    # Until Initialize the pool has no price (slot0 is all zero), exactly like the contract.
    store.add(V3Pool(pool, factory.fork, token0, token1, V3PoolState(0, 0, 0, fee, tick_spacing)))
    gross[pool] = {}
    undo.append(_remove_pool(store, gross, pool))
    return pool


def _restore_reserves(pool: V2Pool, reserve0: int, reserve1: int) -> Undo:
    def undo() -> None:
        pool.reserve0, pool.reserve1 = reserve0, reserve1

    return undo


def _restore_fields(pool: V2Pool, **values: object) -> Undo:
    def undo() -> None:
        for name, value in values.items():
            setattr(pool, name, value)

    return undo


def _restore_slot(state: V3PoolState) -> Undo:
    sqrt_price, tick, liquidity = state.sqrt_price_x96, state.tick, state.liquidity

    def undo() -> None:
        state.sqrt_price_x96, state.tick, state.liquidity = sqrt_price, tick, liquidity

    return undo


def _restore_tick(state: V3PoolState, gross: dict[int, int], tick: int, old_gross: int, old_net: int | None) -> Undo:
    def undo() -> None:
        if old_net is None:
            state.ticks.pop(tick, None)
            gross.pop(tick, None)
        else:
            state.ticks[tick] = old_net
            gross[tick] = old_gross

    return undo


def _remove_pool(store: PoolStore, gross: GrossTicks | None, address: str) -> Undo:
    def undo() -> None:
        store.pools.pop(address, None)
        if gross is not None:
            gross.pop(address, None)

    return undo
