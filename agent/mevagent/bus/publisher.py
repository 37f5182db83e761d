"""The agent's side of the bus: publish events without ever making the hot path wait.

`publish` is synchronous and O(1): it encodes the event and appends it to an in-memory queue. One
background task (`run`) drains the queues:

- durable events (executions, outcomes, command acks) are appended to the on-disk spool with one fsync
  per batch (a task of its own, so an outage of Redis never delays it), then XADDed to `DURABLE_STREAM`;
  the spool's offset moves only after Redis accepted them. They are never dropped: while Redis is away
  they wait in the spool and are replayed when it returns (and after a restart of the agent). A caller
  that must know its event is on disk awaits `publish_durable` (the agent does, for every outcome,
  after the execution settled: off the hot path). An `urgent` durable event (a command's ack: an
  operator is waiting for it) is also XADDed at once, before its fsync: the spooled copy follows as
  usual, and the consumer stores each event id once;
- best-effort events (opportunities, exposure, gas, latency, heartbeats) go to `BEST_EFFORT_STREAM`
  (pair prices to `PRICE_STREAM`), trimmed to its MAXLEN. When their queue is full, or Redis does not
  take them, they are dropped and counted (`dropped`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mevagent.bus.events import DURABLE_STREAM, FIELD, Event, encode, stream_of
from mevagent.bus.spool import Spool, Spooled

log = logging.getLogger(__name__)

BATCH = 500  # stream entries per pipeline round trip
RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # backoff while Redis is away


def reraise_if_cancelled() -> None:
    """redis-py may turn a cancellation in the middle of a command into a connection error: a loop that
    retries connection errors must still end when its task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class BusPublisher:
    def __init__(
        self,
        redis: Redis,
        spool: Spool,
        *,
        max_queue: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.redis = redis
        self.spool = spool
        self.max_queue = max_queue
        self.dropped = 0
        self.published = 0  # entries Redis accepted
        self.connected = False
        self._on_drop = on_drop
        self._durable: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()  # not yet in the spool
        self._unsent: deque[Spooled] = deque(spool.pending())  # in the spool, not yet in Redis
        self._best: deque[Event] = deque()  # encoded by the sender task: the hot path only appends
        self._urgent: deque[bytes] = deque()  # durable events also sent ahead of their spooled copy
        self._stopping = False
        self._wake = asyncio.Event()
        self._spool_wake = asyncio.Event()
        self._idle = asyncio.Event()

    # ---- the hot path's side -------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Queue `event`; never blocks, never raises for a full queue (best effort: dropped and counted).

        Best-effort events are encoded later by the sender task, off the caller's path; durable ones now."""
        if event.durable:
            self._durable.append((encode(event), None))
            self._spool_wake.set()
        elif len(self._best) < self.max_queue:
            self._best.append(event)
        else:
            self._drop(1)
            return
        self._idle.clear()
        self._wake.set()

    async def publish_durable(self, event: Event, *, urgent: bool = False) -> None:
        """Queue a durable `event` and return once it is fsynced in the spool (then it cannot be lost).
        `urgent`: also sent to Redis at once, without waiting for the spool (the copy that follows it is the
        same event id: stored once)."""
        assert event.durable, f"{type(event).__name__} is not a durable event"
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        raw = encode(event)
        self._durable.append((raw, done))
        if urgent:
            self._urgent.append(raw)
            self._wake.set()
        self._idle.clear()
        self._spool_wake.set()
        await done

    @property
    def pending(self) -> int:
        """Durable events not yet accepted by Redis (in memory or in the spool)."""
        return len(self._durable) + len(self._unsent)

    async def flushed(self, timeout_s: float) -> bool:
        """Wait until everything queued so far reached Redis (True) or `timeout_s` passed (False)."""
        if not self._has_work():
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    # ---- the background task --------------------------------------------------------------------------

    def stop(self) -> None:
        """End `run` at the next turn (a cancellation inside redis-py can be lost; this cannot)."""
        self._stopping = True
        self._wake.set()
        self._spool_wake.set()

    async def run(self) -> None:
        await asyncio.gather(self._spool_loop(), self._send_loop())

    async def _spool_loop(self) -> None:
        while not self._stopping:
            if not self._durable:
                self._spool_wake.clear()
                await self._spool_wake.wait()
            try:
                await self._spool_durable()
            except OSError as exc:
                log.error("bus: the spool cannot be written (%s); retrying", exc)
                await asyncio.sleep(0.5)
            self._wake.set()

    async def _send_loop(self) -> None:
        failures = 0
        while not self._stopping:
            if not (self._unsent or self._best or self._urgent):
                if not self._durable:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._send_urgent()
                await self._send_durable()
                await self._send_best_effort()
                self.connected = True
                failures = 0
            except (RedisError, OSError) as exc:
                reraise_if_cancelled()
                if self.connected or failures == 0:
                    log.warning("bus: Redis does not take events (%s); durable ones wait in the spool", exc)
                self.connected = False
                # Best-effort events are not worth keeping through an outage: what is queued goes.
                self._drop(len(self._best))
                self._best.clear()
                await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1

    def _has_work(self) -> bool:
        return bool(self._durable or self._unsent or self._best)

    async def _spool_durable(self) -> None:
        if not self._durable:
            return
        items = list(self._durable)
        self._durable.clear()
        try:
            spooled = await asyncio.to_thread(self.spool.append, [raw for raw, _ in items])
        except OSError:
            self._durable.extendleft(reversed(items))  # keep them in memory: retried with the next round
            raise
        self._unsent.extend(spooled)
        for _, done in items:
            if done is not None and not done.done():
                done.set_result(None)

    async def _send_durable(self) -> None:
        while self._unsent:
            batch = [self._unsent[i] for i in range(min(BATCH, len(self._unsent)))]
            async with self.redis.pipeline(transaction=False) as pipe:
                for item in batch:
                    pipe.xadd(DURABLE_STREAM, {FIELD: item.raw})
                await pipe.execute()
            for _ in batch:
                self._unsent.popleft()
            self.published += len(batch)
            await asyncio.to_thread(self.spool.mark_delivered, batch[-1].end)

    async def _send_urgent(self) -> None:
        """The urgent events' early copies: one try each (their spooled copies are the ones that must arrive)."""
        if not self._urgent:
            return
        batch = list(self._urgent)
        self._urgent.clear()
        async with self.redis.pipeline(transaction=False) as pipe:
            for raw in batch:
                pipe.xadd(DURABLE_STREAM, {FIELD: raw})
            await pipe.execute()

    async def _send_best_effort(self) -> None:
        while self._best:
            batch = [self._best.popleft() for _ in range(min(BATCH, len(self._best)))]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for event in batch:
                        stream, maxlen = stream_of(event)  # pair prices have a stream of their own
                        pipe.xadd(stream, {FIELD: encode(event)}, maxlen=maxlen, approximate=True)
                    await pipe.execute()
            except (RedisError, OSError):
                self._drop(len(batch))
                raise
            self.published += len(batch)

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        self.dropped += count
        if self._on_drop is not None:
            self._on_drop(count)
