"""The pipeline's queues, each with an explicit policy for when the consumer is slower than the producer.

Artemis's broadcast channels drop silently when a stage lags; here every loss is a
counter (`mev_queue_dropped{queue,reason}`) and every queue reports its depth (`mev_queue_depth`).

- `CoalescingQueue` (the strategies' events): keyed, latest wins. A strategy only needs the current
  state of a pool (or a price feed), which is already in its store; a newer update for the same key
  replaces the older one in place (reason "coalesced"). Its size is bounded by the number of distinct
  keys. Items whose key is None (lending events, pending transactions: each one matters) are never
  coalesced; at most `max_kept` of them are pending, the oldest dropped first (reason "overflow").
- `DropOldestQueue` (opportunities): bounded; when full the oldest is dropped (reason "overflow"): an
  old opportunity is the least likely to still be valid.
- `ControlQueue` (risk commands, kill): unbounded and never drops; there are few of them, and losing a
  kill command is the one failure the agent may not have.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from mevagent.metrics import AgentMetrics

T = TypeVar("T")


class _Gauge:
    __slots__ = ("_metrics", "name")

    def __init__(self, name: str, metrics: AgentMetrics | None) -> None:
        self.name = name
        self._metrics = metrics

    def depth(self, n: int) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth(self.name, n)

    def dropped(self, reason: str, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.queue_dropped(self.name, reason, n)


class CoalescingQueue(Generic[T]):
    """Latest item per key, in the order keys first became pending; `get_batch` drains everything pending."""

    def __init__(
        self,
        name: str,
        key: Callable[[T], Hashable | None],
        max_keys: int,
        metrics: AgentMetrics | None = None,
        *,
        max_kept: int = 10_000,
    ) -> None:
        if max_keys <= 0 or max_kept <= 0:
            raise ValueError("max_keys and max_kept must be positive")
        self._key = key
        self._max_keys = max_keys
        self._max_kept = max_kept
        self._pending: dict[Hashable, T] = {}
        self._kept: deque[Hashable] = deque()  # keys of the uncoalesced items pending, oldest first
        self._seq = 0
        self._ready = asyncio.Event()
        self._gauge = _Gauge(name, metrics)
        self.coalesced = 0
        self.overflowed = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put_nowait(self, item: T) -> None:
        key = self._key(item)
        pending = self._pending
        if key is None:
            self._keep(item)
        elif key in pending:
            self.coalesced += 1
            self._gauge.dropped("coalesced")
        elif len(pending) >= self._max_keys:
            # More distinct keys than configured: the key pending longest gives way (its pool will show
            # up again on its next change, and the per-block reconcile catches anything missed).
            del pending[next(iter(pending))]
            self.overflowed += 1
            self._gauge.dropped("overflow")
        if key is not None:
            pending[key] = item
        self._gauge.depth(len(pending))
        self._ready.set()

    def _keep(self, item: T) -> None:
        """An item that is never coalesced: its own key, in arrival order among everything pending."""
        kept = self._kept
        while len(kept) >= self._max_kept:
            # A key the max_keys bound already evicted is only forgotten here, not counted twice.
            if self._pending.pop(kept.popleft(), None) is not None:
                self.overflowed += 1
                self._gauge.dropped("overflow")
        self._seq += 1
        key = ("kept", self._seq)
        kept.append(key)
        self._pending[key] = item

    async def get_batch(self) -> list[T]:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._pending.values())
        self._pending.clear()
        self._kept.clear()
        self._ready.clear()
        self._gauge.depth(0)
        return batch


class DropOldestQueue(Generic[T]):
    def __init__(self, name: str, maxsize: int, metrics: AgentMetrics | None = None) -> None:
        if maxsize <= 0:
            raise ValueError("maxsize must be positive")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._gauge = _Gauge(name, metrics)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> T | None:
        """Queue `item`; returns the item dropped to make room, if any."""
        dropped = None
        if len(self._items) >= self._maxsize:
            dropped = self._items.popleft()
            self.dropped += 1
            self._gauge.dropped("overflow")
        self._items.append(item)
        self._gauge.depth(len(self._items))
        self._ready.set()
        return dropped

    def clear(self, reason: str) -> list[T]:
        """Drop everything pending (counted under `reason`) and return it."""
        removed = list(self._items)
        self._items.clear()
        if removed:
            self.dropped += len(removed)
            self._gauge.dropped(reason, len(removed))
            self._gauge.depth(0)
        return removed

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self._gauge.depth(len(self._items))
        return item


class ControlQueue(Generic[T]):
    """Never drops, never blocks the sender: `put_nowait` always succeeds."""

    def __init__(self, name: str, metrics: AgentMetrics | None = None) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue()  # unbounded on purpose
        self._gauge = _Gauge(name, metrics)

    def __len__(self) -> int:
        return self._queue.qsize()

    def put_nowait(self, item: T) -> None:
        self._queue.put_nowait(item)
        self._gauge.depth(self._queue.qsize())

    async def get(self) -> T:
        item = await self._queue.get()
        self._gauge.depth(self._queue.qsize())
        return item
