"""Compare pools with the node at the store's block, and correct any that drifted.

Log application is exact, so a divergence means a missed or foreign state change (a fork's quirk, a
token that rebases, a bug): it is counted, logged, and fixed from the node, and the fix is journaled
with the block so a reorg rolls it back like any other change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mevagent.state import abi
from mevagent.state.bootstrap import Rpc, eth_calls
from mevagent.state.logs import Undo
from mevagent.state.pools import Pool, V2Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Divergence:
    pool: str
    block: int
    field: str
    ours: int
    node: int


async def reconcile(rpc: Rpc, pools: list[Pool], block: int, undo: list[Undo], chunk: int) -> list[Divergence]:
    """Check `pools` against the node at `block` (reserves; V3 price, tick, in-range liquidity); fix them."""
    calls: list[tuple[str, str]] = []
    for pool in pools:
        if isinstance(pool, V2Pool):
            calls.append((pool.address, abi.GET_RESERVES))
        else:
            calls += [(pool.address, abi.SLOT0), (pool.address, abi.LIQUIDITY)]
    answers = iter(await eth_calls(rpc, calls, block, chunk))
    found: list[Divergence] = []
    for pool in pools:
        if isinstance(pool, V2Pool):
            reserves = next(answers)
            node = {"reserve0": reserves[0], "reserve1": reserves[1]}
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


def _restore(target: object, values: dict[str, int]) -> Undo:
    def undo() -> None:
        for name, value in values.items():
            setattr(target, name, value)

    return undo
