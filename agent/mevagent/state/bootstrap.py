"""Discover every pool of the configured factories and read its full state at one block, in batches.

Everything is read at the same block number, so the store is a consistent snapshot of that block;
the syncer then applies logs from the next block on. V3 pools are read completely: slot0, liquidity,
every tickBitmap word of the pool's tick range, and ticks() of every initialized tick, so a swap
simulated on the store crosses exactly the ticks the contract would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sortedcontainers import SortedDict

from mevagent.amm.v2 import fork_fees
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import MAX_TICK, MIN_TICK
from mevagent.rpc import RpcError
from mevagent.state import abi
from mevagent.state.config import FactoryConfig, SyncConfig
from mevagent.state.logs import GrossTicks, check_fee_tier
from mevagent.state.pools import Pool, V2Pool, V3Pool

log = logging.getLogger(__name__)


class Rpc(Protocol):
    async def call(self, method: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any: ...

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, chunk: int = 1000) -> list[Any]: ...


async def eth_calls(
    rpc: Rpc, calls: Sequence[tuple[str, str]], block: int | str | dict[str, Any], chunk: int
) -> list[list[int]]:
    """(to, data) calls at `block` (a number, a tag such as "latest", or an EIP-1898 object such as
    {"blockHash": ...}), batched; each answer as its 32-byte words. Any error raises."""
    tag = hex(block) if isinstance(block, int) else block
    answers = await rpc.batch([("eth_call", [{"to": to, "data": data}, tag]) for to, data in calls], chunk=chunk)
    out = []
    for (to, data), answer in zip(calls, answers, strict=True):
        if isinstance(answer, RpcError):
            raise RpcError(f"eth_call {to} {data[:10]}", answer.code, answer.message, answer.data)
        out.append(abi.words(answer))
    return out


async def get_logs(
    rpc: Rpc, from_block: int, to_block: int, addresses: Sequence[str], topics: Sequence[str], chunk: int
) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    for start in range(from_block, to_block + 1, chunk):
        end = min(to_block, start + chunk - 1)
        logs += await rpc.call(
            "eth_getLogs",
            [{"fromBlock": hex(start), "toBlock": hex(end), "address": list(addresses), "topics": [list(topics)]}],
        )
    return logs


def fee_calls(fork: str) -> tuple[str, ...]:
    """What a pair of `fork` is asked besides getReserves() to know its fee and curve (amm/forks.yml)."""
    pool_fee = fork_fees()[fork].pool_fee
    if pool_fee == "swap_fee":
        return (abi.SWAP_FEE,)
    if pool_fee == "token_fee_percent":
        return (abi.STABLE_SWAP,)  # the two fees come with getReserves
    return ()


def fee_state(fork: str, reserves: list[int], extra: list[list[int]]) -> dict[str, int]:
    """The pair's own fee fields as the node answered (getReserves words, then each of fee_calls);
    empty for a fork whose fee is fixed: forks.yml is the truth for those."""
    pool_fee = fork_fees()[fork].pool_fee
    if pool_fee == "swap_fee":
        fee = extra[0][0]
        return {"fee": fee, "fee1": fee}
    if pool_fee == "token_fee_percent":
        # CamelotPair.getReserves(): reserve0, reserve1, token0FeePercent, token1FeePercent.
        return {"fee": reserves[2], "fee1": reserves[3], "stable": extra[0][0] != 0}
    return {}


def set_fees(pool: V2Pool, fees: dict[str, int]) -> None:
    """Apply fee_state to a pool (bootstrap or a pair just created), saying why one cannot be priced."""
    for name, value in fees.items():
        setattr(pool, name, value)
    if pool.stable:
        log.info("%s pair %s is on the stable (x³y + y³x) curve: tracked, never priced", pool.fork, pool.address)
    elif not pool.quotable:
        log.warning(
            "%s pair %s charges %d/%d and %d/%d: not priced",
            pool.fork,
            pool.address,
            pool.fee,
            pool.fee_denominator,
            pool.fee_in(pool.token1),
            pool.fee_denominator,
        )


async def read_pair_fees(rpc: Rpc, pools: Sequence[V2Pool], block: int, chunk: int) -> None:
    """Read the own fee of each pool whose fork keeps one per pair, at `block`, and set it."""
    per_pool = [pool for pool in pools if fork_fees()[pool.fork].per_pool]
    if not per_pool:
        return
    calls = [(pool.address, sel) for pool in per_pool for sel in (abi.GET_RESERVES, *fee_calls(pool.fork))]
    try:
        answers = iter(await eth_calls(rpc, calls, block, chunk))
    except RpcError as exc:
        # A long catch-up reaches blocks whose state a full node has pruned. The current fee is the
        # best left; the reconcile compares it with the node at the store's block anyway.
        log.info("pair fees at block %d unavailable (%s): reading the latest", block, exc)
        answers = iter(await eth_calls(rpc, calls, "latest", chunk))
    for pool in per_pool:
        reserves = next(answers)
        set_fees(pool, fee_state(pool.fork, reserves, [next(answers) for _ in fee_calls(pool.fork)]))


async def discover_pools(rpc: Rpc, config: SyncConfig, block: int) -> list[tuple[FactoryConfig, str, dict[str, Any]]]:
    """(factory, pool address, what the creation told: tokens, fee, spacing) of every pool at `block`."""
    found: list[tuple[FactoryConfig, str, dict[str, Any]]] = []
    v2 = [f for f in config.factories if f.kind == "v2"]
    lengths = await eth_calls(rpc, [(f.address, abi.ALL_PAIRS_LENGTH) for f in v2], block, config.batch_size)
    pair_calls = [
        (f, (f.address, abi.ALL_PAIRS + abi.encode_uint(i)))
        for f, (n,) in zip(v2, lengths, strict=True)
        for i in range(n)
    ]
    pairs = await eth_calls(rpc, [call for _, call in pair_calls], block, config.batch_size)
    found += [(f, abi.address(words[0]), {}) for (f, _), words in zip(pair_calls, pairs, strict=True)]
    for factory in (f for f in config.factories if f.kind == "v3"):
        if factory.from_block > block:
            continue
        for log in await get_logs(
            rpc, factory.from_block, block, [factory.address], [abi.POOL_CREATED], config.log_chunk_blocks
        ):
            words = abi.words(log["data"])
            created = {
                "token0": abi.address(int(log["topics"][1], 16)),
                "token1": abi.address(int(log["topics"][2], 16)),
                "fee": int(log["topics"][3], 16),
                "tick_spacing": abi.signed(words[0], 24),
            }
            found.append((factory, abi.address(words[1]), created))
    return found


async def load_pools(rpc: Rpc, config: SyncConfig, block: int) -> tuple[list[Pool], GrossTicks]:
    """Every pool of the configured factories with its exact state at `block`, and its V3 ticks' gross."""
    found = await discover_pools(rpc, config, block)
    v2 = [(f, address) for f, address, _ in found if f.kind == "v2"]
    v3 = [(f, address, created) for f, address, created in found if f.kind == "v3"]
    chunk = config.batch_size

    pools: list[Pool] = []
    calls = [
        (address, sel)
        for factory, address in v2
        for sel in (abi.TOKEN0, abi.TOKEN1, abi.GET_RESERVES, *fee_calls(factory.fork))
    ]
    answers = iter(await eth_calls(rpc, calls, block, chunk))
    for factory, address in v2:
        token0, token1, reserves = next(answers), next(answers), next(answers)
        fee = fork_fees()[factory.fork]
        pool = V2Pool(
            address,
            factory.fork,
            abi.address(token0[0]),
            abi.address(token1[0]),
            reserves[0],
            reserves[1],
            fee.fee,
            fee.fee_denominator,
        )
        extra = [next(answers) for _ in fee_calls(factory.fork)]
        set_fees(pool, fee_state(factory.fork, reserves, extra))
        pools.append(pool)

    answers = await eth_calls(rpc, [(a, sel) for _, a, _ in v3 for sel in (abi.SLOT0, abi.LIQUIDITY)], block, chunk)
    states = []
    for i, (factory, address, created) in enumerate(v3):
        check_fee_tier(factory.fork, address, created["fee"], created["tick_spacing"])
        slot0, (liquidity,) = answers[2 * i], answers[2 * i + 1]
        states.append(
            V3PoolState(slot0[0], abi.signed(slot0[1], 24), liquidity, created["fee"], created["tick_spacing"])
        )

    # Every bitmap word a pool's ticks can live in: 2 * 3466 words at spacing 1, 116 at spacing 60.
    word_calls: list[tuple[int, int]] = []
    for i, state in enumerate(states):
        spacing = state.tick_spacing
        low, high = (MIN_TICK // spacing) >> 8, (MAX_TICK // spacing) >> 8
        word_calls += [(i, word) for word in range(low, high + 1)]
    bitmaps = await eth_calls(
        rpc, [(v3[i][1], abi.TICK_BITMAP + abi.encode_int(word)) for i, word in word_calls], block, chunk
    )
    tick_calls: list[tuple[int, int]] = []
    for (i, word), (bitmap,) in zip(word_calls, bitmaps, strict=True):
        while bitmap:
            bit = (bitmap & -bitmap).bit_length() - 1
            bitmap &= bitmap - 1
            tick_calls.append((i, ((word << 8) + bit) * states[i].tick_spacing))
    ticks = await eth_calls(rpc, [(v3[i][1], abi.TICKS + abi.encode_int(t)) for i, t in tick_calls], block, chunk)
    gross: GrossTicks = {address: {} for _, address, _ in v3}
    nets: list[dict[int, int]] = [{} for _ in v3]
    for (i, tick), answer in zip(tick_calls, ticks, strict=True):
        gross[v3[i][1]][tick] = answer[0]
        nets[i][tick] = abi.signed(answer[1], 128)
    for (factory, address, created), state, net in zip(v3, states, nets, strict=True):
        state.ticks = SortedDict(net)
        pools.append(V3Pool(address, factory.fork, created["token0"], created["token1"], state))
    return pools, gross
