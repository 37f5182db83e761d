"""Strategies are plug-ins: a new one is a module of its own (here written into a temporary directory on the
strategies package's path), and the agent validates its config section with its model, hands it only the
events it consumes, exports the counters it declares and sends its action through the executor route it
brings, on a real anvil node, with no edit anywhere else. Plus the event queue's per-kind policies."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import mevagent.strategies as strategies_package
from mevagent.app import Agent
from mevagent.config import ConfigError, validate
from mevagent.core import Head, LendingEvent, OracleUpdate, PoolUpdate
from mevagent.engine.queues import CoalescingQueue
from mevagent.metrics_names import series_names
from mevagent.strategies import plugins
from testbed.e2e import agent_config, devnet_chain, eventually
from testbed.pools import IpcAnvil

PLUGIN_SOURCE = '''
"""A test plug-in: counts oracle answers and lending events, emits one action per lending event."""

from mevagent import metrics_names as names
from mevagent.config import StrategyConfig
from mevagent.core import Hop, LendingEvent, Opportunity, OracleUpdate, Outcome, Status
from mevagent.strategies import StrategyPlugin

SEEN = names.Metric("mev_strategy_test_events_seen", "counter", "Events the test plug-in saw.",
                    ("chain", "strategy"), sampled=True)


class Settings(StrategyConfig):
    notional_usd: float = 50.0


class Route:
    """Its own executor: asks the risk gate (the only way to an outcome), never signs."""

    def __init__(self, gate):
        self.gate = gate
        self.executed = []

    async def execute(self, opportunity, head=None):
        decision = self.gate.check(opportunity)
        if not decision.allowed:
            return Outcome(opportunity, Status.REJECTED, reason=decision.reason)
        self.executed.append((opportunity, head))
        outcome = Outcome(opportunity, Status.DRY_RUN, realized_profit_usd=opportunity.profit_usd)
        self.gate.record(outcome)
        return outcome


class Watch:
    name = "oracle_watch"
    consumes = (OracleUpdate, LendingEvent)

    def __init__(self, chain, section):
        self.chain = chain
        self.section = section
        self.seen = []

    def on_head(self, head):
        pass

    def on_events(self, events):
        self.seen.extend(events)
        return [
            Opportunity(e.chain, self.name, e.block, (Hop(e.market, "v2", e.user, e.market),), 10**18,
                        10**18 + 1, 21000, 1, 0, self.section.notional_usd, 1.0, 0.1, e.seen_ns,
                        id=f"{e.block}:{e.log_index}", route="test_route")
            for e in events if isinstance(e, LendingEvent)
        ]

    def counters(self):
        return [len(self.seen)]

    def describe(self):
        return "watching oracles"


async def _open_route(ctx):
    return Route(ctx.extras["gate"])


PLUGIN = StrategyPlugin(
    name="oracle_watch",
    config=Settings,
    consumes=(OracleUpdate, LendingEvent),
    state=(),
    action=Opportunity,
    route="test_route",
    counters=(SEEN,),
    build=lambda ctx: Watch(ctx.chain.name, ctx.section),
    open_route=_open_route,
)
'''


@pytest.fixture
def extra_plugin(tmp_path: Path) -> Iterator[None]:
    """`oracle_watch.py` in a directory of the strategies package's path, as a new plug-in file would be."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "oracle_watch.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    strategies_package.__path__.append(str(folder))
    plugins.cache_clear()
    try:
        yield
    finally:
        strategies_package.__path__.remove(str(folder))
        sys.modules.pop("mevagent.strategies.oracle_watch", None)
        plugins.cache_clear()


def test_a_strategy_section_is_validated_by_its_own_plugin_model(tmp_path: Path, extra_plugin: None) -> None:
    chain = {"name": "ethereum", "chain_id": 1, "ws_url": "ws://127.0.0.1:9", "max_gas_price_gwei": 100}
    config = validate(agent_config(tmp_path, [chain], strategies={"oracle_watch": {"notional_usd": 7}}))
    assert type(config.strategies["oracle_watch"]).__name__ == "Settings"
    assert config.strategies["oracle_watch"].notional_usd == 7  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"strategies\.oracle_watch\.notional: unknown key"):
        validate(agent_config(tmp_path, [chain], strategies={"oracle_watch": {"notional": 7}}))
    with pytest.raises(ConfigError, match=r"strategies\.oracle_watc: unknown strategy 'oracle_watc'"):
        validate(agent_config(tmp_path, [chain], strategies={"oracle_watc": {}}))
    # dex_arb's own keys belong to dex_arb's section only.
    with pytest.raises(ConfigError, match=r"strategies\.oracle_watch\.max_hops: unknown key"):
        validate(agent_config(tmp_path, [chain], strategies={"oracle_watch": {"max_hops": 2}}))
    assert "mev_strategy_test_events_seen_total" in series_names()


def test_a_new_plugin_runs_on_its_events_through_its_route_with_its_counters(
    node: IpcAnvil, tmp_path: Path, extra_plugin: None
) -> None:
    data = agent_config(
        tmp_path,
        [devnet_chain(node)],
        strategies={"dex_arb": {"enabled": True}, "oracle_watch": {"notional_usd": 25}},
    )

    async def go() -> None:
        agent = await Agent.build(validate(data))
        runtime = agent.chains["ethereum"]
        # No factories on this chain: dex_arb (it needs pools and prices) does not run, the plug-in does.
        assert list(runtime.strategies) == ["oracle_watch"]
        route = runtime.routes["test_route"]
        engine = agent.engine
        task = asyncio.create_task(engine.run())
        try:
            head = int(await runtime.node.call("eth_blockNumber", []), 16)
            await engine.emit(Head("ethereum", head, "0x" + "11" * 32, "0x" + "22" * 32, 0, 0))
            # Coalesced by feed: two answers of one feed in one drain reach the strategy as the latest.
            feed = "0x" + "aa" * 20
            await engine.emit(OracleUpdate("ethereum", feed, 100, head, 1))
            await engine.emit(OracleUpdate("ethereum", feed, 90, head, 2))
            for index in range(3):  # never coalesced: all three arrive
                await engine.emit(LendingEvent("ethereum", "aave_v3", feed, "Borrow", "0x" + "01" * 20, head, index, 3))
            # Nothing consumes pool updates on this chain: counted, never queued.
            await engine.emit(PoolUpdate("ethereum", "0x" + "bb" * 20, head, 4))
            await eventually(lambda: _done(route, 3), 20, "three executions on the plug-in's route")
        finally:
            engine.stop()
            await task
            await agent.stop()
        watch = runtime.strategies["oracle_watch"]
        answers = [e.answer for e in watch.seen if isinstance(e, OracleUpdate)]  # type: ignore[attr-defined]
        assert answers == [90]
        assert sorted(o.id for o, _ in route.executed) == [f"{head}:{i}" for i in range(3)]
        assert all(o.notional_usd == 25 for o, _ in route.executed)  # its own config section
        assert all(h == head for _, h in route.executed)  # the router read the node's head for it
        assert engine.counts["pool_updates_unconsumed"] == 1 and engine.counts["lending_events"] == 3
        text = agent.metrics.render().decode()
        assert 'mev_strategy_test_events_seen_total{chain="ethereum",strategy="oracle_watch"} 4.0' in text
        assert 'mev_opportunities_found_total{chain="ethereum",strategy="oracle_watch"} 3.0' in text

    asyncio.run(go())


async def _done(route: object, count: int) -> bool:
    return len(route.executed) >= count  # type: ignore[attr-defined]


def test_the_event_queue_keeps_every_uncoalesced_event_up_to_its_bound_then_drops_the_oldest() -> None:
    async def go() -> None:
        queue: CoalescingQueue[object] = CoalescingQueue("events", lambda e: e.key, 100, max_kept=3)  # type: ignore[attr-defined]
        for index in range(5):
            queue.put_nowait(LendingEvent("c", "aave_v3", "m", "Supply", "u", 1, index, 0))
        queue.put_nowait(OracleUpdate("c", "f", 1, 1, 0))
        queue.put_nowait(OracleUpdate("c", "f", 2, 1, 0))
        batch = await queue.get_batch()
        kept = [e.log_index for e in batch if isinstance(e, LendingEvent)]
        assert kept == [2, 3, 4] and queue.overflowed == 2
        assert [e.answer for e in batch if isinstance(e, OracleUpdate)] == [2] and queue.coalesced == 1
        # After a drain the bound starts again.
        for index in range(3):
            queue.put_nowait(LendingEvent("c", "aave_v3", "m", "Supply", "u", 2, index, 0))
        assert len(await queue.get_batch()) == 3 and queue.overflowed == 2

    asyncio.run(go())
