"""The engine: queue policies (coalesce, drop oldest, never drop) and the collector → strategy → executor wiring.

The collectors, strategies and executor here are small real implementations of the core Protocols written
for the test (scripted events, a strategy that turns updates into opportunities, an executor that asks a
real RiskGate and settles in dry-run); no node is involved, so none is mocked.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from mevagent import metrics_names as names
from mevagent.config import GWEI, RiskLimits
from mevagent.core import Decision, Head, Hop, Opportunity, Outcome, PoolUpdate, Status
from mevagent.engine import (
    CoalescingQueue,
    ControlQueue,
    DropOldestQueue,
    EmergencyResume,
    EmergencyStop,
    Engine,
    EngineLimits,
    PauseStrategy,
    ResumeStrategy,
    SetRiskLimits,
)
from mevagent.metrics import AgentMetrics
from mevagent.risk import ChainLimits, RiskGate

WETH = "0x" + "aa" * 20
USDC = "0x" + "bb" * 20


def pool(n: int) -> str:
    return f"0x{n:040x}"


def head(number: int, chain: str = "ethereum") -> Head:
    return Head(chain, number, f"0x{number:064x}", f"0x{number - 1:064x}", 1_700_000_000 + number, 10 * GWEI)


def update(n: int, block: int = 1, chain: str = "ethereum", seen_ns: int = 0) -> PoolUpdate:
    return PoolUpdate(chain, pool(n), block, seen_ns)


async def settle(condition: Callable[[], bool], turns: int = 10_000) -> None:
    """Let the loop run until `condition` holds; fail (not hang) if it never does."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# ---- queues ---------------------------------------------------------------------------------------


def test_coalescing_queue_keeps_the_latest_per_pool_in_first_seen_order() -> None:
    async def go() -> None:
        metrics = AgentMetrics()
        q: CoalescingQueue[PoolUpdate] = CoalescingQueue("pool_updates", lambda u: u.key, 3, metrics)
        for u in [update(1, 10), update(2, 10), update(1, 11), update(1, 12), update(3, 12)]:
            q.put_nowait(u)
        assert len(q) == 3 and q.coalesced == 2
        assert metrics.value(names.QUEUE_DEPTH, "pool_updates") == 3
        assert metrics.value(names.QUEUE_DROPPED, "pool_updates", "coalesced", suffix="_total") == 2
        # A fourth distinct pool while three are pending: the one pending longest gives way.
        q.put_nowait(update(4, 13))
        assert q.overflowed == 1
        assert metrics.value(names.QUEUE_DROPPED, "pool_updates", "overflow", suffix="_total") == 1
        batch = await q.get_batch()
        assert [(u.pool, u.block) for u in batch] == [(pool(2), 10), (pool(3), 12), (pool(4), 13)]
        assert len(q) == 0 and metrics.value(names.QUEUE_DEPTH, "pool_updates") == 0
        # Same pool on another chain is another key.
        q.put_nowait(update(1, chain="ethereum"))
        q.put_nowait(update(1, chain="arbitrum"))
        assert len(await q.get_batch()) == 2

    asyncio.run(go())


def test_coalescing_queue_get_waits_for_the_next_item() -> None:
    async def go() -> None:
        q: CoalescingQueue[PoolUpdate] = CoalescingQueue("p", lambda u: u.key, 10)
        getter = asyncio.create_task(q.get_batch())
        await asyncio.sleep(0)
        assert not getter.done()
        q.put_nowait(update(7))
        assert [u.pool for u in await getter] == [pool(7)]

    asyncio.run(go())


def test_drop_oldest_queue_counts_what_it_drops() -> None:
    async def go() -> None:
        metrics = AgentMetrics()
        q: DropOldestQueue[int] = DropOldestQueue("opportunities", 3, metrics)
        dropped = [q.put_nowait(i) for i in range(5)]
        assert dropped == [None, None, None, 0, 1]
        assert q.dropped == 2
        assert metrics.value(names.QUEUE_DROPPED, "opportunities", "overflow", suffix="_total") == 2
        assert [await q.get() for _ in range(3)] == [2, 3, 4]
        assert metrics.value(names.QUEUE_DEPTH, "opportunities") == 0
        q.put_nowait(9)
        assert q.clear("emergency_stop") == [9]
        assert metrics.value(names.QUEUE_DROPPED, "opportunities", "emergency_stop", suffix="_total") == 1

    asyncio.run(go())


def test_control_queue_never_drops_and_keeps_order() -> None:
    async def go() -> None:
        q: ControlQueue[int] = ControlQueue("control")
        for i in range(50_000):
            q.put_nowait(i)
        assert len(q) == 50_000
        assert [await q.get() for _ in range(50_000)] == list(range(50_000))

    asyncio.run(go())


# ---- the pipeline ---------------------------------------------------------------------------------


class ScriptedCollector:
    """Emits its script, then waits for more lines through `feed`."""

    def __init__(self, name: str, script: Sequence[object]) -> None:
        self.name = name
        self._script = list(script)
        self._more: asyncio.Queue[object] = asyncio.Queue()

    async def run(self, emit: Callable[[object], Awaitable[None]]) -> None:
        for event in self._script:
            await emit(event)
        while True:
            await emit(await self._more.get())

    def feed(self, *events: object) -> None:
        for event in events:
            self._more.put_nowait(event)


class OnePerUpdate:
    """A strategy that finds one opportunity per updated pool, on the block of the update."""

    consumes = (PoolUpdate,)

    def __init__(self, name: str = "dex_arb", notional: float = 100.0, chain: str = "ethereum") -> None:
        self.name = name
        self.chain = chain
        self.notional = notional
        self.heads: list[int] = []
        self.batches: list[list[tuple[str, int]]] = []
        self.fail_next = False

    def on_head(self, head: Head) -> None:
        self.heads.append(head.number)

    def on_events(self, updates: Sequence[PoolUpdate]) -> list[Opportunity]:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("strategy bug")
        self.batches.append([(u.pool, u.block) for u in updates])
        return [
            Opportunity(
                chain=u.chain,
                strategy=self.name,
                block=u.block,
                hops=(Hop(u.pool, "v2", WETH, USDC), Hop(pool(999), "v2", USDC, WETH)),
                amount_in=10**18,
                amount_out=10**18 + 10**16,
                gas_limit=200_000,
                gas_price=20 * GWEI,
                builder_payment=0,
                notional_usd=self.notional,
                profit_usd=20.0,
                gas_cost_usd=2.0,
                found_ns=u.seen_ns,
                id=f"{u.chain}:{u.block}:{u.pool}",
            )
            for u in updates
        ]


class DryRunExecutor:
    """Asks the gate, then 'simulates': waits until released when `hold` is set, and settles DRY_RUN."""

    def __init__(self, gate: RiskGate, hold: bool = False) -> None:
        self.gate = gate
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.started: list[str] = []
        self.running = 0
        self.max_running = 0

    async def execute(self, opportunity: Opportunity, head: int | None = None) -> Outcome:
        decision: Decision = self.gate.check(opportunity)
        if not decision.allowed:
            return Outcome(opportunity, Status.REJECTED, reason=decision.reason)
        self.started.append(opportunity.id)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        outcome = Outcome(opportunity, Status.DRY_RUN, realized_profit_usd=opportunity.profit_usd)
        self.gate.record(outcome)
        return outcome


LIMITS = RiskLimits(max_position_size_usd=1_000, max_total_exposure_usd=100_000, max_chain_exposure_usd=100_000)


def make_gate(tmp_path: Path, metrics: AgentMetrics | None = None) -> RiskGate:
    return RiskGate(
        LIMITS.updated({"max_token_exposure_usd": 100_000}),
        {"ethereum": ChainLimits(100 * GWEI), "arbitrum": ChainLimits(1 * GWEI)},
        tmp_path,
        metrics=metrics,
    )


async def running(engine: Engine) -> asyncio.Task[None]:
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0)
    return task


async def stopped(engine: Engine, task: asyncio.Task[None]) -> None:
    engine.stop()
    await asyncio.wait_for(task, 10)


def test_pipeline_wires_collectors_to_strategies_to_the_executor(tmp_path: Path) -> None:
    async def go() -> None:
        metrics = AgentMetrics()
        gate = make_gate(tmp_path, metrics)
        collector = ScriptedCollector("evm", [head(1), update(1, 1), update(2, 1), update(1, 1)])
        strategy = OnePerUpdate()
        executor = DryRunExecutor(gate)
        engine = Engine([collector], [strategy], executor, gate, metrics=metrics)
        task = await running(engine)
        await settle(lambda: engine.counts["outcome_dry_run"] == 2)
        # The head reached the strategy before the updates of its block; pool 1's two updates coalesced.
        assert strategy.heads == [1]
        assert strategy.batches == [[(pool(1), 1), (pool(2), 1)]]
        assert sorted(executor.started) == [f"ethereum:1:{pool(1)}", f"ethereum:1:{pool(2)}"]
        assert engine.pool_queue.coalesced == 1
        assert metrics.value(names.OPPORTUNITIES_FOUND, "ethereum", "dex_arb", suffix="_total") == 2
        assert metrics.value(names.EXECUTIONS, "ethereum", "dex_arb", "dry_run", suffix="_total") == 2
        for stage in ("pool_queue", "strategy", "opportunity_queue", "execute", "found_to_outcome"):
            count = 1 if stage in ("pool_queue", "strategy") else 2
            assert metrics.value(names.LATENCY, "ethereum", stage, suffix="_count") == count, stage
        assert [e["status"] for e in engine.recent.since()] == ["dry_run", "dry_run"]
        assert engine.stats()["heads"] == {"ethereum": 1}
        await stopped(engine, task)

    asyncio.run(go())


def test_opportunities_on_an_old_block_are_dropped_as_stale(tmp_path: Path) -> None:
    async def go() -> None:
        metrics = AgentMetrics()
        gate = make_gate(tmp_path)
        executor = DryRunExecutor(gate, hold=True)
        collector = ScriptedCollector("evm", [head(5), update(1, 5)])
        limits = EngineLimits(max_in_flight=1)
        engine = Engine([collector], [OnePerUpdate()], executor, gate, metrics=metrics, limits=limits)
        task = await running(engine)
        await settle(lambda: len(executor.started) == 1)
        # While the first execution holds the only slot, block 5's next opportunity waits; then block 6 arrives.
        collector.feed(update(2, 5), head(6))
        await settle(lambda: engine.counts["heads"] == 2 and len(engine.opportunity_queue) == 1)
        executor.release.set()
        await settle(lambda: engine.counts["dropped_stale"] == 1)
        assert executor.started == [f"ethereum:5:{pool(1)}"]
        assert metrics.value(names.QUEUE_DROPPED, "opportunities", "stale", suffix="_total") == 1
        assert [e["status"] for e in engine.recent.since()] == ["dry_run", "dropped:stale"]
        await stopped(engine, task)

    asyncio.run(go())


def test_a_slow_executor_drops_the_oldest_opportunities_and_counts_them(tmp_path: Path) -> None:
    async def go() -> None:
        metrics = AgentMetrics()
        gate = make_gate(tmp_path)
        executor = DryRunExecutor(gate, hold=True)
        collector = ScriptedCollector("evm", [update(1, 1)])
        limits = EngineLimits(max_opportunities=4, max_in_flight=2)
        engine = Engine([collector], [OnePerUpdate()], executor, gate, metrics=metrics, limits=limits)
        task = await running(engine)
        await settle(lambda: len(executor.started) == 1)
        collector.feed(*(update(n, 1) for n in range(2, 12)))
        await settle(lambda: engine.counts["opportunities"] == 11)
        await settle(lambda: len(executor.started) == 2)
        # One batch found ten while one execution held a slot: four fit the queue, the six oldest were
        # dropped; then the second slot took the oldest survivor.
        assert executor.max_running == 2
        assert len(engine.opportunity_queue) == 3
        dropped = engine.opportunity_queue.dropped
        assert dropped == 6 == engine.counts["dropped_overflow"]
        assert metrics.value(names.QUEUE_DROPPED, "opportunities", "overflow", suffix="_total") == dropped
        executor.release.set()
        await settle(lambda: engine.counts["outcome_dry_run"] == 5)
        done = sorted(int(i.rsplit(":", 1)[1], 16) for i in executor.started)
        assert done == [1, 8, 9, 10, 11]  # the newest survived
        statuses = [e["status"] for e in engine.recent.since()]
        assert statuses.count("dropped:overflow") == 6 and statuses.count("dry_run") == 5
        await stopped(engine, task)

    asyncio.run(go())


def test_control_commands_are_applied_in_order_and_stop_clears_the_queue(tmp_path: Path) -> None:
    async def go() -> None:
        gate = make_gate(tmp_path)
        executor = DryRunExecutor(gate, hold=True)
        collector = ScriptedCollector("evm", [update(1, 1), update(2, 1), update(3, 1)])
        engine = Engine([collector], [OnePerUpdate()], executor, gate, limits=EngineLimits(max_in_flight=1))
        task = await running(engine)
        await settle(lambda: len(executor.started) == 1 and len(engine.opportunity_queue) == 2)
        await engine.command(EmergencyStop("operator"))
        assert gate.emergency_stopped
        assert len(engine.opportunity_queue) == 0 and engine.counts["dropped_emergency_stop"] == 2
        executor.release.set()  # the one in flight settles and releases its exposure
        await settle(lambda: engine.counts["outcome_dry_run"] == 1)
        collector.feed(update(4, 1))
        await settle(lambda: engine.counts["outcome_rejected"] == 1)
        assert engine.recent.since()[-1]["reason"] == "emergency_stop: engaged (operator)"
        # Many commands at once: none lost, applied in the order sent.
        await asyncio.gather(
            engine.command(EmergencyResume()),
            engine.command(PauseStrategy("dex_arb")),
            engine.command(ResumeStrategy("dex_arb")),
            engine.command(PauseStrategy("dex_arb")),
            engine.command(SetRiskLimits(gate.limits.updated({"max_position_size_usd": 50}))),
        )
        assert not gate.emergency_stopped and gate.paused == {"dex_arb"} and gate.limits.max_position_size_usd == 50
        assert engine.counts["commands"] == 6
        await stopped(engine, task)
        assert RiskGate(LIMITS, {"ethereum": ChainLimits(GWEI)}, tmp_path).paused == {"dex_arb"}

    asyncio.run(go())


def test_a_failing_command_reports_to_its_sender_and_the_loop_goes_on(tmp_path: Path) -> None:
    async def go() -> None:
        gate = make_gate(tmp_path)
        engine = Engine([], [], DryRunExecutor(gate), gate)
        task = await running(engine)
        with pytest.raises(TypeError, match="not a control command"):
            await engine.command("shutdown")  # type: ignore[arg-type]
        await engine.command(PauseStrategy("x"))
        assert gate.paused == {"x"}
        await stopped(engine, task)

    asyncio.run(go())


def test_a_strategy_exception_does_not_stop_the_pipeline(tmp_path: Path) -> None:
    async def go() -> None:
        gate = make_gate(tmp_path)
        broken, healthy = OnePerUpdate("broken"), OnePerUpdate("healthy")
        broken.fail_next = True
        collector = ScriptedCollector("evm", [update(1, 1)])
        engine = Engine([collector], [broken, healthy], DryRunExecutor(gate), gate)
        task = await running(engine)
        await settle(lambda: engine.counts["outcome_dry_run"] == 1)
        assert engine.counts["strategy_errors"] == 1
        collector.feed(update(2, 1))
        await settle(lambda: engine.counts["outcome_dry_run"] == 3)
        await stopped(engine, task)

    asyncio.run(go())


def test_collectors_may_only_emit_events(tmp_path: Path) -> None:
    async def go() -> None:
        gate = make_gate(tmp_path)
        engine = Engine([ScriptedCollector("bad", ["not an event"])], [], DryRunExecutor(gate), gate)
        with pytest.raises(ExceptionGroup) as err:
            await asyncio.wait_for(engine.run(), 10)
        assert err.group_contains(TypeError, match=r"collectors emit events \(mevagent.core.Event\), not str")

    asyncio.run(go())
