"""Classified blocks to the fleet bus: what the live classifier hands the control plane in normal running.

`BusSink` is a ClassificationSink that publishes each block as a `BlockClassified` event (best effort,
O(1) per block for the caller: the publisher queues it and encodes it in its own task), lean: the MEV
found and the swaps and payments of its transactions only. `FanoutSink`
hands the same blocks to several sinks (the files of `out_dir` and the bus).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mevagent.analytics.backfill import ClassificationSink
from mevagent.analytics.models import BlockClassification
from mevagent.bus.events import BlockClassified, Event


@dataclass
class BusSink:
    agent: str
    chain: str
    publish: Callable[[Event], None]  # mevagent.bus.link.BusLink.publish: never blocks, never raises

    async def write(self, results: Sequence[BlockClassification]) -> None:
        for result in results:
            self.publish(BlockClassified(agent=self.agent, chain=self.chain, classification=lean(result)))


def lean(result: BlockClassification) -> BlockClassification:
    """What the control plane reads of a block: its MEV, the swaps and payments of the MEV's transactions, and
    the swaps of the sandwiches' and JIT liquidity's victims (what a sandwiched victim got: mevcontrol.sandwiches).

    Every swap, transfer and payment of a mainnet block is hundreds of kilobytes, and the bus's best-effort
    stream keeps its last entries whether read or not; the full classification stays in the agent's files."""
    mev = {t.tx for t in result.searcher_txs}
    victims = {v for m in (*result.sandwiches, *result.jit) for v in m.victim_txs}
    return result.model_copy(
        update={
            "swaps": [s for s in result.swaps if s.tx in mev or s.tx in victims],
            "payments": [p for p in result.payments if p.tx in mev],
            "transfers": [],
        }
    )


@dataclass
class FanoutSink:
    sinks: Sequence[ClassificationSink]

    async def write(self, results: Sequence[BlockClassification]) -> None:
        for sink in self.sinks:
            await sink.write(results)
