"""The window routes' closed hours read before a dashboard asks for them (mevcontrol.api.ClosedHours).

A window route (the funnel, the profit distribution, the execution timing) keeps its window's closed hours in
pieces that other windows share (api.Window.pieces), read on a window's first request. 100 dashboards each
polling its own window (bench/control_api.py --rate 1) all start cold at once: their first requests read their
pieces together on the pool's 4 connections, and that first request was the p99 of the funnel and the timing
(34.1 and 27.4 ms; 9.5 and 8.7 ms without it). Which hour pieces a window of `h` hours reads depends only on `h`
and the current hour, not on its minute, so the warmer reads every piece of the windows of 1..`hours` hours once,
shortest windows first, through the routes' own ClosedHours.rows (the same key, query and change count a request
uses), then again what changed: a new hour (the last pieces end at it), or a late row in a closed hour (its change
count, revision 0018, moved). The window's partial first hour from its minute stays each request's own (new every
minute, and small).

Low priority: one piece at a time, each its own short transaction on one pool connection, taken when one is idle
(or after waiting YIELD_S for one, so that it still advances under a steady load). Its pieces are kept in
ClosedHours apart from the requests' (ClosedHours.warm): warming never evicts what requests read, and they are
bounded by the warm set, which each hour replaces.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from mevagent.bus.publisher import reraise_if_cancelled
from mevcontrol.api import CLOSED, OPS, WINDOW_QUERIES, ClosedHours, Window
from mevcontrol.metrics import ControlMetrics

log = logging.getLogger(__name__)

Piece = tuple[str, dt.datetime, dt.datetime]  # (query, start, end): ClosedHours' key
# The change counts of the warm set's hours: which pieces a late row changed (one small read a round).
COUNTS_SQL = "SELECT hour, n FROM rollup_changes WHERE hour >= $1 AND hour < $2 ORDER BY hour"
# A piece's change count in the snapshot its rows are read in, as window_counts sums it for a request.
CHANGES_SQL = "SELECT coalesce(sum(n), 0)::bigint FROM rollup_changes WHERE hour >= $1 AND hour < $2"
# How long the warmer waits for an idle connection before it takes its turn in the pool's queue anyway.
YIELD_S = 0.5
POLL_S = 0.005
# After an hour turns, the warmer starts on the new hour's pieces this long after it.
HOUR_SETTLE_S = 0.1


def warm_set(now: dt.datetime, hours: int) -> list[Piece]:
    """The closed hours' pieces the windows of 1..`hours` hours read as of `now` (api.Window.pieces, each once;
    the shortest windows' first). A window's partial first hour (its rows query) is left to its requests."""
    pieces: dict[Piece, None] = {}
    for h in range(1, hours + 1):
        window = Window.of(now - dt.timedelta(hours=h), now)
        for rows_sql, hours_sql in WINDOW_QUERIES:
            for sql, start, end, _ in window.pieces(rows_sql, hours_sql):
                if sql == hours_sql:
                    pieces.setdefault((sql, start, end))
    return list(pieces)


class Warmer:
    """Keeps `closed`'s pieces of the windows of 1..`hours` hours read, every `interval_s` and as each hour
    turns, one piece at a time on one connection of `pool`."""

    def __init__(
        self, pool: Any, closed: ClosedHours, hours: int, interval_s: float, metrics: ControlMetrics | None = None
    ) -> None:
        self.pool = pool
        self.closed = closed
        self.hours = hours
        self.interval_s = interval_s
        self.metrics = metrics
        self._hour: dt.datetime | None = None
        self._pieces: list[Piece] = []

    async def run(self) -> None:
        failing = False
        while True:
            try:
                began, read = time.perf_counter(), await self.round()
                if read > 100:  # the start, a new day's pieces: how long the warm set took
                    log.info("history warmer: %d pieces read in %.1f s", read, time.perf_counter() - began)
                failing = False
            except Exception as exc:  # the requests read what it did not: never worth stopping for
                reraise_if_cancelled()
                if not failing:  # once until it succeeds again (the database down: every interval_s)
                    log.warning("history warmer: %s: %s", type(exc).__name__, exc)
                failing = True
            await asyncio.sleep(self.interval_s if failing else self._pause())

    def _pause(self) -> float:
        """Until the next round: interval_s, or just after the hour turns (its new pieces), or none when it turned
        during this round (which then stopped early)."""
        now = dt.datetime.now(dt.UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour != self._hour:
            return 0.0
        return min(self.interval_s, (hour + dt.timedelta(hours=1) - now).total_seconds() + HOUR_SETTLE_S)

    async def round(self) -> int:
        """The warm set of the current hour kept at its change counts; how many pieces it read. Stops early when
        the hour turns (the next round reads the new set)."""
        now = dt.datetime.now(dt.UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        if hour != self._hour:
            # Once an hour: 2,229 pieces for 744 hours took ~40 ms of CPU, in a thread so that the event loop
            # (the requests) keeps its turns.
            self._pieces = await asyncio.to_thread(warm_set, now, self.hours)
            self._hour = hour
            self.closed.warm(self._pieces)
        pieces = self._pieces
        if not pieces:
            return 0
        first, last = min(start for _, start, _ in pieces), max(end for _, _, end in pieces)
        await self._yield()
        async with self.pool.acquire() as conn:
            counts = await conn.fetch(COUNTS_SQL, first, last)
        at = [row[0] for row in counts]
        upto = list(itertools.accumulate((row[1] for row in counts), initial=0))
        read = 0
        for k, (sql, start, end) in enumerate(pieces):
            if k % 256 == 255:
                await asyncio.sleep(0)  # a round's scan is ~2,000 pieces: the requests' turns in between
            if dt.datetime.now(dt.UTC) - hour >= dt.timedelta(hours=1):
                break
            changes = upto[bisect.bisect_left(at, end)] - upto[bisect.bisect_left(at, start)]
            if self.closed.kept_at(sql, start, end) != changes:
                read += await self._read(sql, start, end)
        return read

    async def _yield(self) -> None:
        """Low priority: wait (up to YIELD_S) until the pool has a connection no request is using."""
        waited = 0.0
        while waited < YIELD_S and self.pool.get_idle_size() == 0:
            await asyncio.sleep(POLL_S)
            waited += POLL_S

    async def _read(self, sql: str, start: dt.datetime, end: dt.datetime) -> int:
        """One piece through ClosedHours.rows in its own REPEATABLE READ snapshot (its rows and its change count
        of one snapshot, as a request reads them): 1 if it was not kept at its count there, else 0."""
        await self._yield()
        async with self.pool.acquire() as conn:
            began = time.perf_counter()
            try:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    changes = await conn.fetchval(CHANGES_SQL, start, end)
                    if self.closed.kept_at(sql, start, end) == changes:
                        return 0  # a request read it meanwhile
                    await self.closed.rows(conn, sql, start, end, changes)
            finally:
                if self.metrics is not None:
                    self.metrics.history_warm_seconds.inc(time.perf_counter() - began)
        if self.metrics is not None:
            self.metrics.history_warmed.inc()
        return 1


async def warming(app: web.Application) -> AsyncIterator[None]:
    """The dashboard listener's warmer (its cleanup context): started with the listener, cancelled before its
    cleanup ends (and so before the pool closes)."""
    ops = app[OPS]
    setting = ops.config.history_warm
    warmer = Warmer(ops.control.pool, app[CLOSED], setting.hours, setting.interval_s, ops.control.metrics)
    task = asyncio.create_task(warmer.run(), name="history-warmer")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
