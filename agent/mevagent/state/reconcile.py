"""Compare pools with the node at the store's block, and correct any that drifted.

Log application is exact, so a divergence means a missed or foreign state change (a fork's quirk, a
token that rebases, a bug): it is counted, logged, and fixed from the node, and the fix is journaled
with the block so a reorg rolls it back like any other change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mevagent.amm.v3.tick_math import MAX_TICK, MIN_TICK
from mevagent.state import abi
from mevagent.state.bootstrap import Rpc, eth_calls, fee_calls, fee_state
from mevagent.state.logs import Undo
from mevagent.state.pools import Pool, V2Pool, V3Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Divergence:
    pool: str
    block: int
    field: str
    ours: int
    node: int


def at_block(block: int, block_hash: str | None) -> int | dict[str, Any]:
    """The block to read the node at: by hash when known (EIP-1898). By number, a node that has just
    switched branches answers for the other branch's block of that height, and the pools would be
    "corrected" to a state they never had on ours; by hash it refuses instead (RpcError)."""
    return {"blockHash": block_hash, "requireCanonical": True} if block_hash else block


async def reconcile(
    rpc: Rpc, pools: list[Pool], block: int, undo: list[Undo], chunk: int, block_hash: str | None = None
) -> list[Divergence]:
    """Check `pools` against the node at `block` (reserves and a pair's own fee and curve; V3 price, tick,
    in-range liquidity); fix them. A BiSwap pair's swapFee changes without an event, so this is the only
    place such a change is seen."""
    calls: list[tuple[str, str]] = []
    for pool in pools:
        if isinstance(pool, V2Pool):
            calls += [(pool.address, sel) for sel in (abi.GET_RESERVES, *fee_calls(pool.fork))]
        else:
            calls += [(pool.address, abi.SLOT0), (pool.address, abi.LIQUIDITY)]
    answers = iter(await eth_calls(rpc, calls, at_block(block, block_hash), chunk))
    found: list[Divergence] = []
    for pool in pools:
        if isinstance(pool, V2Pool):
            reserves = next(answers)
            node = {"reserve0": reserves[0], "reserve1": reserves[1]}
            node |= fee_state(pool.fork, reserves, [next(answers) for _ in fee_calls(pool.fork)])
            target: object = pool
        else:
            slot0, (liquidity,) = next(answers), next(answers)
            node = {"sqrt_price_x96": slot0[0], "tick": abi.signed(slot0[1], 24), "liquidity": liquidity}
            target = pool.state
        wrong = {name: value for name, value in node.items() if getattr(target, name) != value}
        if not wrong:
            continue
        undo.append(_restore(target, {name: getattr(target, name) for name in wrong}))
        for name, value in wrong.items():
            found.append(Divergence(pool.address, block, name, getattr(target, name), value))
            log.warning(
                "pool %s diverged at block %d: %s %d, node %d", pool.address, block, name, getattr(target, name), value
            )
            setattr(target, name, value)
    return found


def word_range(pool: V3Pool) -> range:
    """Every tickBitmap word the pool's ticks can be in."""
    spacing = pool.state.tick_spacing
    return range((MIN_TICK // spacing) >> 8, ((MAX_TICK // spacing) >> 8) + 1)


async def reconcile_ticks(
    rpc: Rpc,
    pool: V3Pool,
    gross: dict[int, int],
    words: range,
    block: int,
    undo: list[Undo],
    chunk: int,
    block_hash: str | None = None,
) -> list[Divergence]:
    """Compare the pool's initialized ticks in `words` (bitmap, then ticks()) with ours; fix them.

    A whole pool is thousands of words at spacing 1, so the syncer walks the words a few per block.
    """
    state = pool.state
    spacing = state.tick_spacing
    at = at_block(block, block_hash)
    bitmaps = await eth_calls(rpc, [(pool.address, abi.TICK_BITMAP + abi.encode_int(w)) for w in words], at, chunk)
    initialized: set[int] = set()
    for word, (bitmap,) in zip(words, bitmaps, strict=True):
        while bitmap:
            bit = (bitmap & -bitmap).bit_length() - 1
            bitmap &= bitmap - 1
            initialized.add(((word << 8) + bit) * spacing)
    ours = {t for t in state.ticks if ((t // spacing) >> 8) in words}
    ticks = sorted(initialized | ours)
    answers = await eth_calls(rpc, [(pool.address, abi.TICKS + abi.encode_int(t)) for t in ticks], at, chunk)
    found: list[Divergence] = []
    for tick, answer in zip(ticks, answers, strict=True):
        node = (abi.signed(answer[1], 128), answer[0]) if tick in initialized else None
        have = (state.ticks[tick], gross.get(tick, 0)) if tick in state.ticks else None
        if node == have:
            continue
        undo.append(_restore_tick(state.ticks, gross, tick, have))
        found.append(Divergence(pool.address, block, f"tick {tick}", *(v[0] if v else 0 for v in (have, node))))
        log.warning("pool %s diverged at block %d: tick %d is %s, node %s", pool.address, block, tick, have, node)
        if node is None:
            state.ticks.pop(tick, None)
            gross.pop(tick, None)
        else:
            state.ticks[tick], gross[tick] = node
    return found


def _restore_tick(ticks: dict[int, int], gross: dict[int, int], tick: int, value: tuple[int, int] | None) -> Undo:
    def undo() -> None:
        if value is None:
            ticks.pop(tick, None)
            gross.pop(tick, None)
        else:
            ticks[tick], gross[tick] = value

    return undo


def _restore(target: object, values: dict[str, int]) -> Undo:
    def undo() -> None:
        for name, value in values.items():
            setattr(target, name, value)

    return undo
