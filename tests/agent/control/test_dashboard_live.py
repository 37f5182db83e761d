"""The dashboard's push and sessions without a browser: a view is computed once per interval whatever the
number of open pages, a page that stops reading is told to resync (its queue stays bounded), feed items
go out newest first, and an agent's heartbeat carries its nodes' peer counts, asked off the hot path and
bounded in time, and an outcome carries what was paid to the builder apart from gas (the sessions and the
views on PostgreSQL: test_dashboard_pg.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from mevcontrol.dashboard.live import QUEUE, Hub, feed_item

from mevagent.bus import link as bus_link
from mevagent.bus.events import ExecutionOutcome, Heartbeat, OpportunitySkipped, decode_event, encode
from mevagent.bus.link import BusLink
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.risk.gate import RiskGate
from testbed.control import outcome
from testbed.e2e import agent_config, load


def heartbeat(agent: str) -> Heartbeat:
    return Heartbeat(
        agent=agent, chains=("anvil",), live_chains=(), lease_fresh=True, lease_expires_in_s=15, emergency_stop=False,
        spool_pending=0, dropped=0,
    )  # fmt: skip


def test_a_view_is_computed_once_per_interval_for_every_page_and_a_page_that_stops_reading_resyncs() -> None:
    async def scenario() -> None:
        computed: list[str] = []

        async def compute(view: str) -> dict[str, Any]:
            computed.append(view)
            return {"view": view}

        hub = Hub(compute)
        task = asyncio.create_task(hub.run())
        pages = [hub.subscribe() for _ in range(50)]
        try:
            started = time.monotonic()
            while time.monotonic() - started < 2.2:  # heartbeats as fast as agents could send them
                hub.on_events([heartbeat("a1"), heartbeat("a2")])
                await asyncio.sleep(0.02)
            # 50 pages, ~110 batches: health (every 2 s) at most twice and risk (every 1 s) at most 3 times.
            assert 1 <= computed.count("health") <= 2, computed
            assert 1 <= computed.count("risk") <= 3, computed
            reader = pages[0]
            messages = []
            while not reader.queue.empty():
                messages.append(reader.queue.get_nowait())
            assert sum(1 for m in messages if m.startswith(b"event: view")) == computed.count(
                "health"
            ) + computed.count("risk")
            # A page that reads nothing: its queue never grows beyond QUEUE, and it is marked to resync.
            slow = pages[1]
            for n in range(2 * QUEUE):  # one feed message per batch the pusher takes
                hub.on_events([outcome("a1", n)])
                await asyncio.sleep(0.004)
                if slow.lagging:
                    break
            await asyncio.sleep(0.3)
            assert slow.queue.qsize() <= QUEUE and slow.lagging
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_feed_items_carry_the_status_and_the_skip_reason() -> None:
    skipped = OpportunitySkipped(
        agent="a1", chain="anvil", strategy="dex_arb", opportunity_id="o1", block=7, limit="max_slippage",
        reason="max_slippage: 60 bps > 50 bps",
    )  # fmt: skip
    item = feed_item(skipped)
    assert item is not None and item["status"] == "max_slippage" and item["detail"] == "max_slippage: 60 bps > 50 bps"
    landed = feed_item(outcome("a1", 3))
    assert landed is not None and landed["status"] == "landed"
    assert Decimal(landed["net_usd"]) == Decimal(4) * Decimal("1e-18") - Decimal(3) * Decimal("3e-15")
    assert feed_item(heartbeat("a1")) is None  # not a feed item: it only marks views dirty


class Node:
    """A node's JSON-RPC as the bus link calls it: `answer` to net_peerCount, or silence for `delay_s`."""

    def __init__(self, answer: str, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s = answer, delay_s

    async def call(self, method: str, params: list[Any]) -> Any:
        assert method == "net_peerCount" and params == []
        await asyncio.sleep(self.delay_s)
        return self.answer


def test_the_heartbeat_carries_each_nodes_peers_and_a_silent_node_is_left_off_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_link, "PEERS_TIMEOUT_S", 0.3)
    beacon_status = [200]

    async def peer_count(_: web.Request) -> web.Response:  # the beacon API's answer (Lighthouse, Teku, ...)
        body = {"data": {"disconnected": "3", "connecting": "0", "connected": "7", "disconnecting": "0"}}
        return web.json_response(body, status=beacon_status[0])

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/eth/v1/node/peer_count", peer_count)
        async with TestServer(app) as beacon:
            chain = {"chain_id": 1, "ws_url": "ws://127.0.0.1:1", "max_gas_price_gwei": 100.0}
            config = load(
                agent_config(
                    tmp_path,
                    [{"name": "ethereum", **chain, "beacon_url": str(beacon.make_url("/"))},
                     {"name": "base", **chain, "chain_id": 8453}, {"name": "polygon", **chain, "chain_id": 137}],
                    bus={"agent": "p1", "redis_url": "redis://127.0.0.1:1"},
                )
            )  # fmt: skip
            link = BusLink(config, RiskGate.from_config(config), apply=lambda _: asyncio.sleep(0))
            link.router = SimpleNamespace(  # type: ignore[assignment]
                nodes={"ethereum": Node("0x2a"), "base": Node("0x2", delay_s=5.0), "polygon": Node("not hex")}
            )
            try:
                started = time.monotonic()
                await link._ask_peers()
                assert time.monotonic() - started < 1.5  # the silent node held nobody up beyond the timeout
                assert link.peers == {"ethereum": 42} and link.beacon_peers == {"ethereum": 7}
                published: list[Any] = []
                link.publish = published.append  # type: ignore[method-assign]
                link._beat()
                beat = decode_event(encode(next(e for e in published if isinstance(e, Heartbeat))))
                assert isinstance(beat, Heartbeat)
                assert beat.peers == {"ethereum": 42} and beat.beacon_peers == {"ethereum": 7}
                # The beacon node fails: its count is dropped, never kept stale.
                beacon_status[0] = 503
                await link._ask_peers()
                assert link.peers == {"ethereum": 42} and link.beacon_peers == {}
            finally:
                link.spool.close()
                await link.redis.aclose()

    asyncio.run(scenario())


class ReceiptNode:
    """A node that answers eth_getTransactionReceipt: 21,000 gas at 2 gwei, in block 16."""

    async def call(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getTransactionReceipt"
        return {"gasUsed": hex(21_000), "effectiveGasPrice": hex(2 * 10**9), "blockNumber": hex(16), "status": "0x1"}


def test_an_outcome_carries_the_builder_payment_apart_from_gas_only_when_it_landed(tmp_path: Path) -> None:
    async def scenario() -> list[ExecutionOutcome]:
        chain = {"name": "ethereum", "chain_id": 1, "ws_url": "ws://127.0.0.1:1", "max_gas_price_gwei": 100.0}
        config = load(agent_config(tmp_path, [chain], bus={"agent": "p1", "redis_url": "redis://127.0.0.1:1"}))
        link = BusLink(config, RiskGate.from_config(config), apply=lambda _: asyncio.sleep(0))
        router = SimpleNamespace(executors={}, nodes={"ethereum": ReceiptNode()})
        sent: list[Any] = []

        async def durable(event: Any) -> None:
            sent.append(decode_event(encode(event)))  # as it crosses the bus

        link.publisher.publish_durable = durable  # type: ignore[method-assign]
        hop = Hop("0x" + "01" * 20, "v2", "0x" + "aa" * 20, "0x" + "bb" * 20)
        # 300,000 gas at 1 gwei and 7e15 wei to the builder: 0.0073 ETH budget, valued 29.2 USD (4,000 USD/ETH).
        opp = Opportunity("ethereum", "dex_arb", 15, (hop,), 10**18, 10**18 + 10**16, 300_000, 10**9, 7 * 10**15,
                          4000.0, 40.0, 29.2, 0)  # fmt: skip
        paid = 4000.0 * (21_000 * 2 * 10**9 + 7 * 10**15) / 1e18
        try:
            for status, tx in ((Status.LANDED, "0x" + "ab" * 32), (Status.REVERTED, "0x" + "cd" * 32)):
                won = status is Status.LANDED
                outcome = Outcome(opp, status, 40.0 if won else 0.0, paid, tx_hashes=(tx,),
                                  builder_paid_usd=28.0 if won else 0.0)  # fmt: skip
                await link.publish_outcome(opp, f"o-{status}", outcome, time.time(), router)  # type: ignore[arg-type]
        finally:
            link.spool.close()
            await link.redis.aclose()
        return [e for e in sent if isinstance(e, ExecutionOutcome)]

    landed, reverted = asyncio.run(scenario())
    assert landed.builder_paid_wei == 7 * 10**15 and landed.gas_paid_wei == 21_000 * 2 * 10**9 + 7 * 10**15
    assert landed.builder_paid_usd == Decimal("28.0") and landed.gas_cost_usd > landed.builder_paid_usd
    # Reverted: the contract paid nobody (the transfer is inside the reverted call); gas only.
    assert reverted.builder_paid_wei == 0 and reverted.builder_paid_usd == 0
    assert reverted.gas_paid_wei == 21_000 * 2 * 10**9
