"""The engine: collectors → (event queue) → strategies → (drop-oldest queue) → executor, plus controls.

Events of every kind travel through one bounded queue, each with the policy its class declares
(mevagent.core: coalesced by key, or kept and dropped oldest-first). An event kind that no running
strategy consumes is counted and not queued. Each strategy gets only its own chain's events of the
classes it declares, so the engine names no strategy and no event beyond the `Head`.

Every stage is timed with perf_counter_ns into `mev_latency{chain,stage}`:

- `pool_queue`: from the collector receiving the oldest event of a chain's batch to a strategy starting
  on it (the name predates the other event kinds; dashboards know it);
- `strategy`: one strategy's `on_events` for one chain's batch;
- `opportunity_queue`: from a strategy finding an opportunity to the executor taking it;
- `execute`: the executor's `execute` (risk check, simulate or sign and submit);
- `found_to_outcome`: from found to outcome, the figure an operator compares with the block time.

An opportunity computed on block N is dropped (reason "stale") once a head above N has been seen: its
pool state is gone. Executions run concurrently up to `max_in_flight` (bundle round trips take hundreds
of milliseconds; a new block's opportunity must not wait behind the last block's). The executor asks
the risk gate; the engine never bypasses it and does not need to know it, except for control commands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from mevagent.core import Collector, Executor, Head, Opportunity, Outcome, Strategy
from mevagent.engine.commands import Command, EmergencyStop, apply_command
from mevagent.engine.queues import CoalescingQueue, ControlQueue, DropOldestQueue
from mevagent.engine.recent import RecentOpportunities
from mevagent.metrics import AgentMetrics
from mevagent.risk.gate import RiskGate

log = logging.getLogger(__name__)

POOL_QUEUE = "pool_updates"
OPPORTUNITY_QUEUE = "opportunities"
CONTROL_QUEUE = "control"


@dataclass(frozen=True, slots=True)
class EngineLimits:
    max_pool_keys: int = 100_000  # distinct coalescing keys (pools, feeds, chain heads) pending at once
    max_kept_events: int = 10_000  # uncoalesced events (lending events, pending transactions) pending
    max_opportunities: int = 256  # pending opportunities before the oldest is dropped
    max_in_flight: int = 8  # concurrent executions


def _event_key(event: object) -> Hashable | None:
    return event.key  # type: ignore[attr-defined]  # core.Event: checked in emit


@dataclass(slots=True)
class _Pending:
    command: Command
    done: asyncio.Future[None]


class Engine:
    def __init__(
        self,
        collectors: Sequence[Collector],
        strategies: Sequence[Strategy],
        executor: Executor,
        gate: RiskGate,
        *,
        metrics: AgentMetrics | None = None,
        limits: EngineLimits = EngineLimits(),
        recent: RecentOpportunities | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._collectors = tuple(collectors)
        self._strategies = tuple(strategies)
        # chain -> its strategies; (chain, event class) -> the strategies consuming it.
        self._by_chain: dict[str, list[Strategy]] = defaultdict(list)
        self._consumers: dict[tuple[str, type], list[Strategy]] = defaultdict(list)
        for strategy in self._strategies:
            self._by_chain[strategy.chain].append(strategy)
            for kind in strategy.consumes:
                self._consumers[(strategy.chain, kind)].append(strategy)
        self._consumed = frozenset(kind for _, kind in self._consumers)
        self._executor = executor
        self._gate = gate
        self._metrics = metrics
        self._limits = limits
        self.recent = recent if recent is not None else RecentOpportunities(1_000)
        self._now = clock_ns
        self.pool_queue: CoalescingQueue[object] = CoalescingQueue(
            POOL_QUEUE, _event_key, limits.max_pool_keys, metrics, max_kept=limits.max_kept_events
        )
        self.opportunity_queue: DropOldestQueue[Opportunity] = DropOldestQueue(
            OPPORTUNITY_QUEUE, limits.max_opportunities, metrics
        )
        self.control_queue: ControlQueue[_Pending] = ControlQueue(CONTROL_QUEUE, metrics)
        self._heads: dict[str, int] = {}  # latest head number seen per chain
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self._stopped = asyncio.Event()
        self.counts: Counter[str] = Counter()

    # ---- inputs ----------------------------------------------------------------------------------

    async def emit(self, event: object) -> None:
        """What collectors call: never blocks (the event queue absorbs bursts, by each kind's policy)."""
        kind = getattr(event, "kind", None)
        if not isinstance(kind, str) or not hasattr(event, "key"):
            raise TypeError(f"collectors emit events (mevagent.core.Event), not {type(event).__name__}")
        self.counts[kind] += 1
        if isinstance(event, Head):
            if event.number > self._heads.get(event.chain, -1):
                self._heads[event.chain] = event.number
        elif type(event) not in self._consumed:
            # Nothing would read it: queueing it would only take room from events a strategy needs.
            self.counts[f"{kind}_unconsumed"] += 1
            return
        self.pool_queue.put_nowait(event)

    async def command(self, command: Command) -> None:
        """Queue a control command and wait until it is applied (in order with every other command)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.control_queue.put_nowait(_Pending(command, done))
        await done

    def stop(self) -> None:
        self._stopped.set()

    # ---- the loops -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every stage until `stop()`; an exception in any stage stops them all and is raised."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c.run(self.emit), name=f"collector:{c.name}") for c in self._collectors]
            tasks.append(group.create_task(self._strategy_loop(), name="strategies"))
            tasks.append(group.create_task(self._executor_loop(), name="executor"))
            tasks.append(group.create_task(self._control_loop(), name="control"))
            await self._stopped.wait()
            for task in tasks:
                task.cancel()
        # Executions already handed to the executor finish: their outcomes must reach the risk gate.
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _strategy_loop(self) -> None:
        while True:
            batch = await self.pool_queue.get_batch()
            start = self._now()
            # (chain, event class) -> its events, in queue order.
            events: dict[tuple[str, type], list[object]] = {}
            for event in batch:
                if isinstance(event, Head):
                    for strategy in self._by_chain.get(event.chain, ()):
                        strategy.on_head(event)
                else:
                    events.setdefault((event.chain, type(event)), []).append(event)  # type: ignore[attr-defined]
            for chain in dict.fromkeys(chain for chain, _ in events):
                self._run_chain(chain, events, start)
            self.counts["batches"] += 1
            # Yield so the executor can take what was just found before the next batch is computed.
            await asyncio.sleep(0)

    def _run_chain(self, chain: str, events: dict[tuple[str, type], list[object]], start: int) -> None:
        """Every strategy of `chain` on the events of the classes it consumes."""
        oldest = min(e.seen_ns for (c, _), group in events.items() if c == chain for e in group)  # type: ignore[attr-defined]
        self._stage(chain, "pool_queue", start - oldest)
        for strategy in self._by_chain.get(chain, ()):
            kinds = strategy.consumes
            if len(kinds) == 1:  # the common case: its events as grouped, no copy
                mine = events.get((chain, kinds[0]), [])
            else:
                mine = [e for kind in kinds for e in events.get((chain, kind), ())]
            if not mine:
                continue
            t0 = self._now()
            try:
                found = strategy.on_events(mine)
            except Exception:
                # One strategy's bug must not starve the others.
                log.exception("strategy %s failed on %d events", strategy.name, len(mine))
                self.counts["strategy_errors"] += 1
                continue
            self._stage(chain, "strategy", self._now() - t0)
            for opp in found:
                self._found(opp)

    def _found(self, opp: Opportunity) -> None:
        self.counts["opportunities"] += 1
        if self._metrics is not None:
            self._metrics.opportunity_found(opp.chain, opp.strategy)
        self.recent.found(opp)
        dropped = self.opportunity_queue.put_nowait(opp)
        if dropped is not None:
            self.recent.dropped(dropped, "overflow")
            self.counts["dropped_overflow"] += 1

    async def _executor_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                opp = await self.opportunity_queue.get()
            except BaseException:
                self._slots.release()
                raise
            if opp.block < self._heads.get(opp.chain, -1):
                self._slots.release()
                self.counts["dropped_stale"] += 1
                if self._metrics is not None:
                    self._metrics.queue_dropped(OPPORTUNITY_QUEUE, "stale")
                self.recent.dropped(opp, "stale")
                continue
            self._stage(opp.chain, "opportunity_queue", self._now() - opp.found_ns)
            task = asyncio.create_task(self._execute(opp), name=f"execute:{opp.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _execute(self, opp: Opportunity) -> None:
        try:
            t0 = self._now()
            try:
                outcome = await self._executor.execute(opp)
            except Exception:
                log.exception("executor failed on opportunity %s", opp.id)
                self.counts["executor_errors"] += 1
                self.recent.dropped(opp, "executor_error")
                return
            end = self._now()
            self._stage(opp.chain, "execute", end - t0)
            self._stage(opp.chain, "found_to_outcome", end - opp.found_ns)
            self._settled(outcome)
        finally:
            self._slots.release()

    def _settled(self, outcome: Outcome) -> None:
        self.counts[f"outcome_{outcome.status.value}"] += 1
        if self._metrics is not None:
            self._metrics.outcome(outcome)
        self.recent.settled(outcome)

    async def _control_loop(self) -> None:
        while True:
            pending = await self.control_queue.get()
            try:
                apply_command(self._gate, pending.command)
                if isinstance(pending.command, EmergencyStop):
                    # Nothing queued may start once stopped (the gate would refuse each one anyway).
                    for opp in self.opportunity_queue.clear("emergency_stop"):
                        self.recent.dropped(opp, "emergency_stop")
                        self.counts["dropped_emergency_stop"] += 1
            except Exception as exc:
                if not pending.done.done():
                    pending.done.set_exception(exc)
                continue
            self.counts["commands"] += 1
            if not pending.done.done():
                pending.done.set_result(None)

    def _stage(self, chain: str, stage: str, elapsed_ns: int) -> None:
        if self._metrics is not None:
            self._metrics.stage(chain, stage, max(0, elapsed_ns))

    # ---- read side -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "queues": {
                POOL_QUEUE: {
                    "depth": len(self.pool_queue),
                    "coalesced": self.pool_queue.coalesced,
                    "overflowed": self.pool_queue.overflowed,
                },
                OPPORTUNITY_QUEUE: {"depth": len(self.opportunity_queue), "dropped": self.opportunity_queue.dropped},
                CONTROL_QUEUE: {"depth": len(self.control_queue)},
            },
            "in_flight": len(self._in_flight),
            "heads": dict(sorted(self._heads.items())),
        }
