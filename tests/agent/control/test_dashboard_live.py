"""The dashboard's push and sessions without a browser: a view is computed once per interval whatever the
number of open pages, a page that stops reading is told to resync (its queue stays bounded), feed items
go out newest first, and an agent's heartbeat carries its nodes' peer counts, asked off the hot path and
bounded in time (the sessions and the views on PostgreSQL: test_dashboard_pg.py)."""

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
from mevagent.bus.events import Heartbeat, OpportunitySkipped, decode_event, encode
from mevagent.bus.link import BusLink
from mevagent.risk.gate import RiskGate

from ..e2e_fixture import agent_config, load
from .fleet import outcome


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
