"""Reads in flight, shared by whoever asks for the same key before the read ends.

The history routes answer 100 dashboards at once: the same report, window or list asked by many clients
costs one read instead of many queued on the pool (bench/control_api.py). An answer shared this way was read
at most one read's duration before the request arrived; it is never kept after its read ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InFlight(Generic[K, V]):
    """One task per key while it runs. Waiters are shielded: a client that leaves does not cancel the answer
    the others wait for. The key is forgotten when its task ends, whatever the outcome (an error is each
    waiter's error, and the next request reads again)."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}
        self.started = 0

    def running(self) -> Iterator[tuple[K, asyncio.Future[V]]]:
        """The reads in flight now, oldest first."""
        return iter(list(self._running.items()))

    def start(self, key: K, read: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        future = self._running[key] = asyncio.ensure_future(read())
        self.started += 1
        future.add_done_callback(lambda done: self._forget(key, done))
        return future

    async def share(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """The answer of the read of `key` in flight, or of a new one started with `read`."""
        future = self._running.get(key)
        if future is None:
            future = self.start(key, read)
        return await asyncio.shield(future)

    def _forget(self, key: K, done: asyncio.Future[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
