"""The live push: what the ingest commits reaches every open page as Server-Sent Events.

The control plane's ingest calls `Hub.on_events` after each committed batch (so a page never shows
what the history does not hold). Feed-worthy events (opportunities, skips, sends, outcomes, command
acknowledgements) go out as they are, in one `feed` message per batch; the other events only mark the
views they change as dirty, and a view is computed once and sent to every page (one query per view,
whatever the number of pages), at most once per its interval: the P&L and risk once a second, health every 2 s
(an outcome after a quiet second is pushed at once), the costlier strategy funnel every 5 s. A page
that does not keep up (its queue full) is sent `resync` and re-reads its views instead of growing the
control plane's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mevagent.bus.events import (
    CommandAck,
    Event,
    ExecutionOutcome,
    ExecutionSent,
    OpportunityFound,
    OpportunitySkipped,
)
from mevagent.bus.publisher import reraise_if_cancelled

log = logging.getLogger(__name__)

QUEUE = 256  # messages waiting per page before it is told to resync
KEEPALIVE_S = 15.0
EVERY_S = {"pnl": 1.0, "feed": 0.25, "health": 2.0, "risk": 1.0, "stuck": 2.0, "audit": 0.5, "strategy": 5.0,
           "positions": 0.5, "bridges": 1.0}  # fmt: skip
REFRESH_S = 5.0  # risk and audit also change by calls on the other listeners: re-sent this often anyway
VIEWS_OF: dict[str, tuple[str, ...]] = {
    "opportunity_found": ("strategy",),
    "opportunity_skipped": ("strategy",),
    "execution_sent": ("stuck", "strategy"),
    "transaction_replaced": ("stuck",),
    "outcome": ("pnl", "strategy", "stuck", "risk"),
    "exposure": ("risk",),
    "heartbeat": ("health", "risk"),
    "gas_prices": ("health", "stuck"),
    "latency": ("health",),
    "command_ack": ("risk", "audit"),
    "crosschain_leg": ("positions", "risk"),
}


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data, default=str) + b"\n\n"


def feed_item(event: Event) -> dict[str, Any] | None:
    base = {"at": event.at, "agent": event.agent}
    match event:
        case OpportunityFound():
            return {**base, "kind": "found", "chain": event.chain, "strategy": event.strategy,
                    "opportunity_id": event.opportunity_id, "block": event.block,
                    "net_usd": str(event.profit_usd - event.gas_cost_usd), "status": None, "detail": ""}  # fmt: skip
        case OpportunitySkipped():
            return {**base, "kind": "skipped", "chain": event.chain, "strategy": event.strategy,
                    "opportunity_id": event.opportunity_id, "block": event.block, "net_usd": None,
                    "status": event.limit, "detail": event.reason}  # fmt: skip
        case ExecutionSent():
            return {**base, "kind": "sent", "chain": event.chain, "strategy": event.strategy,
                    "opportunity_id": event.opportunity_id, "block": event.block, "net_usd": None,
                    "status": None, "detail": " ".join(event.tx_hashes)}  # fmt: skip
        case ExecutionOutcome():
            return {**base, "at": event.settled_at, "kind": "outcome", "chain": event.chain,
                    "strategy": event.strategy, "opportunity_id": event.opportunity_id, "block": event.block,
                    "net_usd": str(event.realized_profit_usd - event.gas_cost_usd), "status": event.status,
                    "detail": event.reason}  # fmt: skip
        case CommandAck():
            return {**base, "kind": "ack", "chain": "", "strategy": "", "opportunity_id": event.command_id,
                    "block": None, "net_usd": None, "status": "ok" if event.ok else "refused",
                    "detail": f"{event.command}: {event.detail}".rstrip(": ")}  # fmt: skip
    return None


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    lagging: bool = False

    def put(self, message: bytes) -> None:
        if self.lagging:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.lagging = True  # the page re-reads everything once it catches up


class Hub:
    """Subscribers (open pages), the dirty views, and the task that computes and sends them."""

    def __init__(self, compute: Any, refresh: tuple[str, ...] = ()) -> None:
        self.compute = compute  # async (view name) -> dict: the view as the page's first load reads it
        self.refresh = ("risk", "audit", "health", *refresh)  # re-sent every REFRESH_S whatever the bus says
        self.subscribers: set[Subscriber] = set()
        self.dirty: set[str] = set()
        self.feed: list[dict[str, Any]] = []
        self.last: dict[str, float] = {}
        self.pushed = 0  # messages handed to pages (the bench reads it)
        self._wake = asyncio.Event()

    def on_events(self, events: list[Event]) -> None:
        """The ingest's hook after a commit: runs in its task, so it only notes and wakes the pusher."""
        if not self.subscribers:
            return
        for event in events:
            kind = type(event).model_fields["kind"].default
            item = feed_item(event)
            if item is not None:
                self.feed.append(item)
            self.dirty.update(VIEWS_OF.get(kind, ()))
        self._wake.set()

    def touch(self, *views: str) -> None:
        """Views changed by an operator's action (not by the bus)."""
        self.dirty.update(views)
        self._wake.set()

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def broadcast(self, message: bytes) -> None:
        for subscriber in list(self.subscribers):
            subscriber.put(message)
            self.pushed += 1

    async def run(self) -> None:
        refreshed = time.monotonic()
        while True:
            timeout = min((self._due(v) for v in self.dirty), default=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, timeout))
            self._wake.clear()
            if not self.subscribers:
                self.dirty.clear()
                self.feed.clear()
                continue
            if self.feed:
                items, self.feed = self.feed, []
                items.sort(key=lambda i: i["at"], reverse=True)
                self.broadcast(sse("feed", {"items": items}))
            now = time.monotonic()
            if now - refreshed >= REFRESH_S:
                refreshed = now
                self.dirty.update(self.refresh)
            for view in sorted(self.dirty):
                if self._due(view) > 0:
                    continue
                self.dirty.discard(view)
                self.last[view] = time.monotonic()
                try:
                    data = await self.compute(view)
                except Exception as exc:  # a view that fails now is sent again on its next change
                    reraise_if_cancelled()
                    log.warning("dashboard: the %s view failed: %s", view, exc)
                    continue
                self.broadcast(sse("view", {"view": view, "data": data}))

    def _due(self, view: str) -> float:
        return self.last.get(view, 0.0) + EVERY_S.get(view, 1.0) - time.monotonic()

    def close(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.lagging = False
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(b"")  # b"": the stream ends


async def stream(
    request: web.Request, hub: Hub, alive: Callable[[], Awaitable[bool]], check_s: float = 5.0
) -> web.StreamResponse:
    """GET /dashboard/events: the SSE stream of one page, until it leaves or its session ends (`alive` is
    asked every `check_s`: a logout on any control plane ends the stream within that)."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    subscriber = hub.subscribe()
    try:
        await response.write(b"retry: 2000\n" + sse("hello", {"at": time.time()}))
        checked = written = time.monotonic()
        while True:
            now = time.monotonic()
            if now - checked >= check_s:
                if not await alive():
                    break
                checked = now
            if subscriber.lagging:
                while not subscriber.queue.empty():
                    subscriber.queue.get_nowait()
                subscriber.lagging = False
                await response.write(sse("resync", {}))
                continue
            try:
                message = await asyncio.wait_for(subscriber.queue.get(), min(KEEPALIVE_S, check_s))
            except TimeoutError:
                if time.monotonic() - written >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    written = time.monotonic()
                continue
            if not message:
                break
            await response.write(message)
            written = time.monotonic()
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        hub.unsubscribe(subscriber)
    return response
