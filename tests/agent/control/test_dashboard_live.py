"""The dashboard's push and sessions without a browser: a view is computed once per interval whatever the
number of open pages, a page that stops reading is told to resync (its queue stays bounded), feed items
go out newest first (the sessions: test_dashboard_sessions.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from mevcontrol.config import OperatorConfig
from mevcontrol.dashboard.live import QUEUE, Hub, feed_item

from mevagent.bus.events import Heartbeat, OpportunitySkipped

from .fleet import outcome

ALICE = OperatorConfig(name="alice", role="operator", token_sha256="a" * 64)


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
