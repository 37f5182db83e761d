"""The warmer of the window routes' kept hours (mevcontrol.warm) against the real PostgreSQL: after a round, a
window's request reads from the database none of its closed hours' pieces (only its partial first hour), and its
answers equal the plain queries' and the unkept ones, also after late rows in a closed hour; it holds at most one
pool connection while requests use the others, and stops with its listener."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import types
from typing import Any

import asyncpg
from aiohttp import web
from mevcontrol.api import (
    CLOSED,
    OPS,
    WINDOW_QUERIES,
    ClosedHours,
    Window,
    execution_timing_rows,
    funnel_counts,
    opportunity_buckets,
)
from mevcontrol.config import HistoryWarmConfig
from mevcontrol.metrics import ControlMetrics
from mevcontrol.warm import Warmer, warm_set, warming

from testbed.services import Postgres

from .test_history_queries import PLAIN_BUCKETS, fresh_history, plain_funnel, rows, write_late_rows

# Windows of 1-60 hours: longer than the 52 hours timing_history() and skips_history() cover (the last 50 and 2 ahead).
HOURS = 60


def test_the_warm_set_is_the_hours_of_every_window_whatever_its_minute() -> None:
    """A window's closed hours' pieces depend on its hours and the current hour only: the warm set made at any
    moment of an hour holds every hour piece of every window asked within it, and none of their first hours."""
    hour = dt.datetime(2026, 12, 7, 2, tzinfo=dt.UTC)  # a day's first quarter: pieces from the days before
    moments = [
        hour,
        hour + dt.timedelta(minutes=17, seconds=3, microseconds=5),
        hour + dt.timedelta(hours=1, microseconds=-1),
    ]
    sets = [warm_set(now, HOURS) for now in moments]
    assert sets[0] == sets[1] == sets[2]
    for now in moments:
        for h in (1, 2, 3, 7, 26, 27, 50, HOURS):
            window = Window.of(now - dt.timedelta(hours=h), now)
            for rows_sql, hours_sql in WINDOW_QUERIES:
                pieces = window.pieces(rows_sql, hours_sql)
                assert {(sql, start, end) for sql, start, end, _ in pieces if sql == hours_sql} <= set(sets[0])
                assert all(sql in (rows_sql, hours_sql) for sql, *_ in pieces)
                assert not any((sql, start, end) in sets[0] for sql, start, end, _ in pieces if sql == rows_sql)
    # Each piece once; a day of windows shares its days and quarters (3 queries).
    assert len(sets[0]) == len(set(sets[0])) and len(sets[0]) < 3 * HOURS * 2


async def answers(conn: asyncpg.Connection, since: dt.datetime, closed: ClosedHours | None) -> list[Any]:
    return [
        await funnel_counts(conn, since, closed),
        [tuple(r) for r in await opportunity_buckets(conn, since, closed)],
        await execution_timing_rows(conn, since, closed),
    ]


def test_after_warming_a_window_reads_only_its_first_hour_and_answers_as_the_plain_queries(
    postgres: Postgres,
) -> None:
    """Every window of 1-60 hours (as the routes make them: now less the hours), after one round of the warmer,
    reads from the database only its partial first hour (one piece per query, none when it starts on a whole
    minute's hour), and answers as the plain queries and as reading everything again; after late rows in an hour
    closed 30 hours ago, the answers follow at once (the change count), and after the warmer's next round, which
    reads only what the late rows changed, the windows again read no closed hour. A small capacity for the
    requests' pieces evicts none of the warm ones."""

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            ingest, sent, settled = await fresh_history(conn, pool, 1150, 950, 900)
            kept = ClosedHours(capacity=16)
            warmer = Warmer(pool, kept, HOURS, interval_s=60)
            hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
            assert await warmer.round() == len(warm_set(dt.datetime.now(dt.UTC), HOURS)) == kept.warmed > 100
            assert await warmer.round() == 0  # nothing changed: nothing read again
            order = list(range(1, HOURS + 1))
            random.Random(7).shuffle(order)
            # Each window's start fixed once: the checks before and after the late rows ask the same windows (a
            # start taken again later lets a row age out of it meanwhile, which is not what is compared).
            asked = dt.datetime.now(dt.UTC)
            starts = {h: asked - dt.timedelta(hours=h) for h in order}

            async def check() -> list[Any]:
                out = []
                for h in order:
                    since = starts[h]
                    window, reads = Window.of(since), kept.reads
                    # Its first hours from its minute (none from a whole hour), unless kept from an earlier ask.
                    first = sum(window.minute < window.whole and kept.kept_at(sql, window.minute, window.whole) is None
                                for sql, _ in WINDOW_QUERIES)  # fmt: skip
                    ours = await answers(conn, since, kept)
                    if dt.datetime.now(dt.UTC) - hour < dt.timedelta(hours=1):  # else a new hour's pieces
                        assert kept.reads - reads == first, h
                    funnel, buckets, _ = ours
                    assert funnel == await plain_funnel(conn, since), h
                    assert buckets == await rows(conn, PLAIN_BUCKETS, since), h
                    assert ours == await answers(conn, since, None), h
                    out.append(ours)
                return out

            before = await check()
            assert sum(bool(funnel) for funnel, _, _ in before) == HOURS  # every window counts something
            assert kept.warmed == len(warm_set(dt.datetime.now(dt.UTC), HOURS)) or dt.datetime.now(
                dt.UTC
            ) - hour >= dt.timedelta(hours=1)
            # Late rows in an hour closed 30 hours ago: an execution, its outcome, a skip and an opportunity.
            late = dt.datetime.now(dt.UTC) - dt.timedelta(hours=30, minutes=7)
            await write_late_rows(ingest, sent, settled, late)
            late_hour = late.replace(minute=0, second=0, microsecond=0)
            changed = [(sql, start, end) for sql, start, end in warm_set(dt.datetime.now(dt.UTC), HOURS)
                       if start <= late_hour < end]  # fmt: skip
            again = await warmer.round()
            # Each piece that holds the late hour, of the three queries (one change count per hour for the three
            # rollups): those only (and the next hour's, if the outcome's 2 s crossed into it).
            assert again >= len(changed) >= 3 or dt.datetime.now(dt.UTC) - hour >= dt.timedelta(hours=1)
            assert again <= len(changed) or late.minute == 59
            after = await check()
            for h, old, new in zip(order, before, after, strict=True):
                assert (old != new) == (h > 30), h  # the windows that hold the late rows changed, only they
        finally:
            await conn.close()
            await pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


class Counted:
    """A pool that counts the connections acquired through it at once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.held, self.most, self.acquired = pool, 0, 0, 0

    def get_idle_size(self) -> int:
        return self.pool.get_idle_size()

    def acquire(self) -> Any:
        counted = self

        class Holding:
            async def __aenter__(self) -> Any:
                self.inner = counted.pool.acquire()
                conn = await self.inner.__aenter__()
                counted.held += 1
                counted.acquired += 1
                counted.most = max(counted.most, counted.held)
                return conn

            async def __aexit__(self, *exc: Any) -> None:
                counted.held -= 1
                await self.inner.__aexit__(*exc)

        return Holding()


def test_the_warmer_holds_one_connection_at_a_time_and_stops_with_its_listener(postgres: Postgres) -> None:
    """The warmer's rounds while 30 windows are asked at once on the same pool (3 connections): it never holds
    more than one; it is the dashboard listener's cleanup context, so cleaning the listener up stops it and gives
    its connection back; its metrics count what it read and the seconds it held a connection."""

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=3, max_size=3)
        try:
            await fresh_history(pool, pool)
            counted, metrics = Counted(pool), ControlMetrics()
            ops = types.SimpleNamespace(
                config=types.SimpleNamespace(history_warm=HistoryWarmConfig(hours=HOURS, interval_s=0.1)),
                control=types.SimpleNamespace(pool=counted, metrics=metrics),
            )
            app = web.Application()
            app[OPS] = ops  # type: ignore[assignment]  # what warming reads of it
            app[CLOSED] = kept = ClosedHours()
            app.cleanup_ctx.append(warming)
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "history-warmer"]

                async def request(h: int) -> Any:
                    async with pool.acquire() as conn:
                        return await execution_timing_rows(conn, dt.datetime.now(dt.UTC) - dt.timedelta(hours=h), kept)

                await asyncio.gather(*(request(1 + k * 2) for k in range(30)))
                for _ in range(200):  # its first round done (bounded: 10 s)
                    whole = len(warm_set(dt.datetime.now(dt.UTC), HOURS))
                    if metrics.history_warmed._value.get() and counted.held == 0 and kept.warmed == whole:
                        break
                    await asyncio.sleep(0.05)
                assert kept.warmed == len(warm_set(dt.datetime.now(dt.UTC), HOURS)) > 100
                assert 0 < metrics.history_warmed._value.get() <= kept.warmed
                assert metrics.history_warm_seconds._value.get() > 0
                await asyncio.sleep(0.3)  # more rounds: each reads the change counts, nothing changed
                assert counted.acquired > metrics.history_warmed._value.get() + 2
            finally:
                await runner.cleanup()
            assert task.done() and counted.most == 1 and counted.held == 0
            assert pool.get_idle_size() == pool.get_size()  # its connection given back
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
