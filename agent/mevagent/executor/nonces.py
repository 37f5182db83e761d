"""Nonces per key with no gaps and no duplicates, under concurrent executions.

A nonce is reserved before signing, then either confirmed (a transaction with it was included, or
handed to a sequencer that will include it) or released (the bundle expired unseen). Released nonces
are handed out again before any new one, lowest first, so a failed bundle never leaves a hole that
would block every later transaction of the key. When the node says otherwise (nonce too low, a
sequencer rejection), `resync` re-reads the count from the node.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable


class NonceManager:
    """The nonces of one key on one chain."""

    def __init__(self, address: str, fetch_count: Callable[[str], Awaitable[int]]) -> None:
        self.address = address
        self._fetch_count = fetch_count  # the node's transaction count of the address ("pending")
        self._lock = asyncio.Lock()
        self._next: int | None = None  # lowest nonce never handed out
        self._released: list[int] = []  # heap of free nonces below _next
        self._in_flight: set[int] = set()
        self._stale = False

    async def reserve(self) -> int:
        async with self._lock:
            if self._next is None or self._stale:
                await self._resync_locked()
            assert self._next is not None
            if self._released:
                nonce = heapq.heappop(self._released)
            else:
                nonce = self._next
                self._next += 1
            self._in_flight.add(nonce)
            return nonce

    def confirm(self, nonce: int) -> None:
        """The nonce is used on chain (or accepted by a sequencer): never hand it out again."""
        self._in_flight.remove(nonce)

    def release(self, nonce: int) -> None:
        """The transaction with this nonce will never be included: the next reservation reuses it."""
        self._in_flight.remove(nonce)
        heapq.heappush(self._released, nonce)

    def settle_unknown(self, nonce: int) -> None:
        """After an error or a cancellation, if the nonce is still in flight: its transaction may have gone out,
        so it is kept and the count is read from the node before the next reservation."""
        if nonce in self._in_flight:
            self.confirm(nonce)
            self.mark_stale()

    def mark_stale(self) -> None:
        """Whether a nonce was used is unknown (an error after signing): the next reservation asks the node.

        Needs no await, so error paths can call it; a failing node read leaves it stale for the next try.
        """
        self._stale = True

    async def resync(self) -> None:
        """Re-read the count from the node: every nonce from there on that nobody holds is free again."""
        async with self._lock:
            await self._resync_locked()

    async def _resync_locked(self) -> None:
        count = await self._fetch_count(self.address)
        top = max(self._in_flight, default=count - 1) + 1
        self._next = max(count, top)
        self._released = [n for n in range(count, self._next) if n not in self._in_flight]
        heapq.heapify(self._released)
        self._stale = False

    @property
    def in_flight(self) -> frozenset[int]:
        return frozenset(self._in_flight)
