"""The Solana searcher: collector -> pool book -> cycles -> executor, as one self-contained strategy.

Account updates are applied as they arrive; only the cycles through the pools an update changed are
re-evaluated, and the best profitable one is executed unless one is already in flight (one bundle at a
time: a second cycle through the same pools would be built on state the first one is about to change).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from mevagent.core import Outcome

from .book import PoolBook
from .cycles import CycleFinder, Sized
from .executor import SolanaExecutor

log = logging.getLogger(__name__)


@dataclass
class SearcherStats:
    updates: int = 0
    evaluations: int = 0
    found: list[Sized] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    eval_ns: list[int] = field(default_factory=list)  # account update -> affected cycles re-evaluated


class SolanaSearcher:
    def __init__(self, book: PoolBook, finder: CycleFinder, executor: SolanaExecutor | None) -> None:
        self.book, self.finder, self.executor = book, finder, executor
        self.slot = 0
        self.stats = SearcherStats()
        self.in_flight: asyncio.Task | None = None
        self._ready: set[Pubkey] = set()

    async def on_slot(self, slot: int) -> None:
        self.slot = slot

    async def on_accounts(self, items: Sequence[tuple[Pubkey, bytes | None]]) -> Sequence[Pubkey]:
        """Apply account data; re-evaluate what changed; return every account the pools now need."""
        started = time.perf_counter_ns()
        changed = self.book.apply_many(items)
        self.stats.updates += len(items)
        ready = {p.address for p in self.book.pools.values() if p.ready()}
        if ready != self._ready:
            self._ready = ready
            self.finder.rebuild(self.book.pools.values())
        found = self.finder.evaluate(changed, self.slot) if changed else []
        self.stats.evaluations += 1
        self.stats.eval_ns.append(time.perf_counter_ns() - started)
        if found:
            self.stats.found.append(found[0])
            self._execute(found[0])
        return self.book.accounts()

    def _execute(self, best: Sized) -> None:
        if self.executor is None or (self.in_flight is not None and not self.in_flight.done()):
            return
        settings = self.finder.settings
        self.in_flight = asyncio.get_running_loop().create_task(
            self.executor.execute(best, settings.compute_unit_limit, settings.compute_unit_price_micro_lamports)
        )
        self.in_flight.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("solana execution failed: %s", task.exception())
            return
        self.stats.outcomes.append(task.result())
