"""The Solana searcher: collector -> pool book -> cycles -> executor, as one self-contained strategy.

Account updates are applied as they arrive; only the cycles through the pools an update changed are
re-evaluated, and the best profitable one is executed unless one is already in flight (one bundle at a
time: a second cycle through the same pools would be built on state the first one is about to change).
The node is asked its epoch (which of a Token-2022 mint's two transfer fees is in force) before the first
accounts are applied and again once a slot reaches the next epoch (or, after a failed ask, at every
slot), as the `mevagent run` collector does; the cycles through the pools whose fee changed are re-sized.
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
from .layouts import AccountData
from .raydium import Pool
from .rpc import SolanaRpc

log = logging.getLogger(__name__)


@dataclass
class SearcherStats:
    updates: int = 0
    evaluations: int = 0
    found: list[Sized] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    eval_ns: list[int] = field(default_factory=list)  # account update -> affected cycles re-evaluated


class SolanaSearcher:
    def __init__(self, book: PoolBook, finder: CycleFinder, executor: SolanaExecutor | None, rpc: SolanaRpc) -> None:
        self.book, self.finder, self.executor, self.rpc = book, finder, executor, rpc
        self.slot = 0
        self.stats = SearcherStats()
        self.in_flight: asyncio.Task | None = None
        self._ready: set[Pubkey] = set()
        self._epoch_asked = False

    async def on_slot(self, slot: int) -> None:
        self.slot = slot
        if self.book.epoch_due(slot) and (changed := await self._refresh_epoch()):
            self._evaluate(changed, time.perf_counter_ns())

    async def _refresh_epoch(self) -> list[Pool]:
        """Ask the node its epoch; the pools whose transfer fee changed with it (PoolBook.refresh_epoch)."""
        self._epoch_asked = True
        return await self.book.refresh_epoch(self.rpc, self.slot)

    async def on_accounts(self, items: Sequence[tuple[Pubkey, AccountData | None]]) -> Sequence[Pubkey]:
        """Apply account data; re-evaluate what changed; return every account the pools now need."""
        if not self._epoch_asked:  # before the first read is quoted: a fee may depend on it
            await self._refresh_epoch()
        started = time.perf_counter_ns()
        changed = self.book.apply_many(items)
        self.stats.updates += len(items)
        self._evaluate(changed, started)
        return self.book.accounts()

    def _evaluate(self, changed: list[Pool], started: int) -> None:
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
