"""Two writers of the history at once (revision 0019) against the real PostgreSQL: an execution and its outcome
written by two transactions at the same moment are paired as one writer pairs them. Without the writers' lock
each transaction's pairing trigger misses the other's uncommitted half: the forced rounds' pairs are not in
`execution_hours` (101 of the 300 pairs counted). `unsettled_executions` came out right there only by accident:
the second writer's triggers wait part way for the first one's row of `rollup_changes` (the same hour), and the
`funnel_hours` triggers pair after that wait, the `execution_hours` ones before it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest
from mevcontrol.ingest import INSERTS, Ingest

from mevagent.bus.events import Event, ExecutionOutcome, ExecutionSent
from testbed.control import outcome
from testbed.services import Postgres

from .test_history_queries import PLAIN_EXECUTION_HOURS, plain_funnel, rows

NOW = dt.datetime.now(dt.UTC)
ROUNDS, PER_ROUND = 20, 10  # the forced overlaps: 200 pairs
RACED = 100  # then pairs written by two Ingests sharing a pool, each pair's halves at once
ROLLUPS = {
    "execution_hours": "SELECT hour, chain, metric, bucket, n FROM execution_hours ORDER BY 1, 2, 3, 4",
    "funnel_hours": "SELECT hour, stage, key, n FROM funnel_hours ORDER BY 1, 2, 3",
    "unsettled_executions": "SELECT event_id, at FROM unsettled_executions ORDER BY 1",
}


def pairs(n: int) -> tuple[list[ExecutionSent], list[ExecutionOutcome]]:
    """n executions over the last 6 hours on two chains, each with its outcome 0.5-40 s later (every 13th failed,
    without a block)."""
    sent, settled = [], []
    for k in range(n):
        at = NOW - dt.timedelta(seconds=k * 6 * 3600 / n)
        found_at = at - dt.timedelta(seconds=0.01 + (k * 7919 % 300) / 100)
        settle = at + dt.timedelta(seconds=0.5 + (k * 104729 % 4000) / 100)
        chain, failed = ("base", "ethereum")[k % 2], k % 13 == 0
        sent.append(ExecutionSent(agent=f"w{k % 3}", at=at.timestamp(), chain=chain, strategy="dex_arb",
                                  opportunity_id=f"p{k}", block=1000 + k, tx_hashes=("0x" + f"{k:064x}",),
                                  found_at=found_at.timestamp()))  # fmt: skip
        settled.append(outcome(f"w{k % 3}", k).model_copy(update={
            "at": settle.timestamp(), "chain": chain, "opportunity_id": f"p{k}", "block": 1000 + k,
            "status": "failed" if failed else "landed", "found_at": found_at.timestamp(),
            "settled_at": settle.timestamp(), "included_block": None if failed else 1000 + k + k % 10,
        }))  # fmt: skip
    return sent, settled


class Held:
    """A pool of one connection, as Ingest.write acquires it: in a transaction the test opened, its own is a
    savepoint and the test decides when the outer one commits; otherwise its own commits."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def acquire(self) -> Held:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        return None


async def issued(monitor: asyncpg.Connection, second: asyncio.Task[None], pid: int) -> None:
    """Until the second writer committed (nothing made it wait) or waits for a lock (the writers' lock)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not second.done():
        waiting = await monitor.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid)
        if waiting:
            return
        assert asyncio.get_running_loop().time() < deadline, "the second writer neither committed nor waited"
        await asyncio.sleep(0.002)


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {table: await rows(conn, sql) for table, sql in ROLLUPS.items()}


async def clear(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "TRUNCATE executions, outcomes, execution_hours, funnel_hours, unsettled_executions, outcome_days"
    )


def test_two_writers_at_once_pair_an_execution_and_its_outcome_as_one_writer_does(postgres: Postgres) -> None:
    async def scenario() -> None:
        first, second, monitor = [await asyncpg.connect(postgres.dsn) for _ in range(3)]
        pool = await asyncpg.create_pool(postgres.dsn, min_size=2, max_size=2)
        try:
            await clear(monitor)
            sent, settled = pairs(ROUNDS * PER_ROUND + RACED)
            second_pid = second.get_server_pid()
            for r in range(ROUNDS):
                part = slice(r * PER_ROUND, (r + 1) * PER_ROUND)
                # The first half (executions in even rounds, outcomes in odd ones) in a transaction held open ...
                halves: tuple[list[Event], list[Event]] = (
                    (list(sent[part]), list(settled[part])) if r % 2 == 0 else (list(settled[part]), list(sent[part]))
                )
                held = first.transaction()
                await held.start()
                await Ingest(None, Held(first)).write(halves[0])  # type: ignore[arg-type]  # write() only
                # ... until the second writer has written the other half: the ingest (which takes the lock first)
                # in half of the rounds, plain INSERTs (only the tables' triggers take it) in the others.
                if r % 4 < 2:
                    write = Ingest(None, Held(second)).write(halves[1])  # type: ignore[arg-type]
                else:
                    kind = type(halves[1][0])
                    sql, row = INSERTS[kind]
                    write = second.executemany(sql, [row(e) for e in halves[1]])
                task = asyncio.create_task(write)
                await issued(monitor, task, second_pid)
                await held.commit()
                await asyncio.wait_for(task, 10)
            # Two Ingests sharing a pool of two, each pair's execution and outcome written at once.
            one, other = Ingest(None, pool), Ingest(None, pool)  # type: ignore[arg-type]
            for k in range(ROUNDS * PER_ROUND, len(sent)):
                writes = (one.write([sent[k]]), other.write([settled[k]]))
                await asyncio.gather(*(writes if k % 2 else writes[::-1]))
            n, failed = len(sent), len(range(0, len(sent), 13))
            assert await monitor.fetchval("SELECT count(*) FROM executions") == n
            assert await monitor.fetchval("SELECT count(*) FROM outcomes") == n
            concurrent = await snapshot(monitor)
            assert concurrent["unsettled_executions"] == []  # every execution's outcome was paired with it
            stored = concurrent["execution_hours"]
            assert stored == await rows(monitor, PLAIN_EXECUTION_HOURS)
            for metric, count in ((1, n), (2, n), (3, n), (4, n - failed)):
                assert sum(c for _, _, m, _, c in stored if m == metric) == count, metric
            since = NOW - dt.timedelta(days=1)
            expected = {"sent": {"": n}, "outcome": {"failed": failed, "landed": n - failed}}
            assert await plain_funnel(monitor, since) == expected
            # What one writer makes of the same events, in the same batches, one after the other.
            await clear(monitor)
            single = Ingest(None, pool)  # type: ignore[arg-type]
            for r in range(ROUNDS):
                part = slice(r * PER_ROUND, (r + 1) * PER_ROUND)
                await single.write(sent[part] if r % 2 == 0 else settled[part])
                await single.write(settled[part] if r % 2 == 0 else sent[part])
            for k in range(ROUNDS * PER_ROUND, len(sent)):
                await single.write([sent[k]])
                await single.write([settled[k]])
            assert await snapshot(monitor) == concurrent
            # A writer at REPEATABLE READ would not see what was committed while it waited: refused.
            async with first.transaction(isolation="repeatable_read"):
                with pytest.raises(asyncpg.RaiseError, match="READ COMMITTED"):
                    await Ingest(None, Held(first)).write([sent[0]])  # type: ignore[arg-type]
            with pytest.raises(asyncpg.RaiseError, match="READ COMMITTED"):
                async with second.transaction(isolation="repeatable_read"):
                    await second.execute(INSERTS[ExecutionOutcome][0], *INSERTS[ExecutionOutcome][1](settled[0]))
        finally:
            await pool.close()
            for conn in (first, second, monitor):
                await conn.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
