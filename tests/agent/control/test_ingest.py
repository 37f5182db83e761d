"""Events from agents into PostgreSQL through the real Redis: nothing lost, nothing doubled, while Redis is
SIGKILLed and restarted mid-stream, the control plane is SIGKILLed and restarted, and the agent's
publisher itself is abandoned mid-stream and a new one replays its spool (an agent crash)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from mevcontrol.db import drop_partitions_before, ensure_partitions
from redis.asyncio import Redis

from mevagent.bus.publisher import BusPublisher
from mevagent.bus.spool import Spool
from testbed.control import Operator, control_config, found, outcome, start_control
from testbed.services import Postgres, RedisServer

N = 1500  # durable outcomes per agent


async def _count(dsn: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _wait_for(probe, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _twenty_outcomes_land(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path, agent: str, then: Callable[[], None] = lambda: None
) -> None:
    """20 durable outcomes of `agent` published (to the spool, if Redis is down), `then()`, and all of them in
    PostgreSQL within 60 s."""
    publisher = BusPublisher(
        Redis.from_url(redis_server.url, password=redis_server.password, socket_timeout=5),
        Spool(tmp_path / "agent-state"),
    )
    task = asyncio.create_task(publisher.run())
    for n in range(20):
        await publisher.publish_durable(outcome(agent, n))
    then()
    assert await publisher.flushed(60), f"{publisher.pending} durable events still not in Redis"

    async def all_in() -> bool:
        return await _count(postgres.dsn, "SELECT count(*) FROM outcomes WHERE agent = $1", agent) >= 20

    await _wait_for(all_in, 60, f"20 outcomes of {agent} in PostgreSQL")
    publisher.stop()
    task.cancel()
    await asyncio.wait([task], timeout=10)
    publisher.spool.close()


def _wait_for_log(control: subprocess.Popen[bytes], log: Path, said: bytes) -> None:
    """Until the control plane's log says `said` (60 s at most), and it is still running a second after."""
    deadline = time.monotonic() + 60
    while said not in (log.read_bytes() if log.exists() else b""):
        assert control.poll() is None, f"the control plane exited ({control.returncode}): {log.read_text()}"
        assert time.monotonic() < deadline, f"{said!r} not logged in 60 s: {log.read_text()}"
        time.sleep(0.1)
    time.sleep(1.0)
    assert control.poll() is None, f"the control plane exited ({control.returncode}): {log.read_text()}"


def test_no_execution_event_is_lost_or_doubled_through_redis_and_control_plane_kills(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    config = control_config(tmp_path, redis_server, postgres, [Operator("alice", "operator")])
    log = tmp_path / "control.log"
    control = start_control(config, log)

    def redis_client() -> Redis:
        return Redis.from_url(redis_server.url, password=redis_server.password, socket_timeout=5)

    async def scenario() -> None:
        nonlocal control

        async def some_in() -> bool:
            return await _count(postgres.dsn, "SELECT count(*) FROM outcomes WHERE agent = 'a1'") > 0

        spool_dir = tmp_path / "agent-state"
        publisher = BusPublisher(redis_client(), Spool(spool_dir))
        task = asyncio.create_task(publisher.run())
        for n in range(N):
            publisher.publish(found("a1", n))
            # As the agent reports an execution: on disk before the reporter goes on.
            await publisher.publish_durable(outcome("a1", n))
            if n == N // 5:
                redis_server.kill()  # mid-stream: some entries written, some not yet sent
            if n == N // 5 + 100:
                redis_server.start()
            if n == N // 2:
                # Once it is ingesting for sure: its batches are being written and acked now.
                await _wait_for(some_in, 30, "the control plane's first commits")
                control.send_signal(signal.SIGKILL)  # mid-batch, from its point of view
                control.wait(10)
            if n == N // 2 + 100:
                control = start_control(config, log)
            if n == 3 * N // 4:
                # The agent dies: its publisher is abandoned with whatever it had not sent yet.
                publisher.stop()
                task.cancel()
                await asyncio.wait([task], timeout=10)
                publisher.spool.close()
                publisher = BusPublisher(redis_client(), Spool(spool_dir))
                task = asyncio.create_task(publisher.run())
        assert await publisher.flushed(60), f"{publisher.pending} durable events still not in Redis"

        async def all_in() -> bool:
            return await _count(postgres.dsn, "SELECT count(*) FROM outcomes WHERE agent = 'a1'") >= N

        await _wait_for(all_in, 60, f"{N} outcomes in PostgreSQL")
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        conn = await asyncpg.connect(postgres.dsn)
        try:
            rows = await conn.fetchrow(
                """SELECT count(*) AS n, count(DISTINCT opportunity_id) AS ids, sum(realized_profit) AS profit,
                   sum(gas_paid_wei) AS gas, sum(realized_profit_usd) AS usd FROM outcomes WHERE agent = 'a1'"""
            )
        finally:
            await conn.close()
        assert rows["n"] == rows["ids"] == N
        assert rows["profit"] == sum(n + 1 for n in range(N))  # exact: numeric(78,0)
        assert rows["gas"] == sum(range(N))
        assert str(rows["usd"].normalize()) == str(
            (sum(n + 1 for n in range(N)) * __import__("decimal").Decimal("1e-18")).normalize()
        )
        assert publisher.pending == 0
        # Redis keeps no durable entry once it is committed.
        redis = redis_client()
        try:
            assert await redis.xlen("mev:events:durable") == 0
        finally:
            await redis.aclose()
        publisher.stop()
        task.cancel()
        await asyncio.wait([task], timeout=10)
        publisher.spool.close()

    try:
        asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(10)
    # Best-effort opportunities may have been dropped while Redis was down, but never doubled.
    found_rows = asyncio.run(_count(postgres.dsn, "SELECT count(*) FROM opportunities WHERE agent = 'a1'"))
    distinct = asyncio.run(
        _count(postgres.dsn, "SELECT count(DISTINCT opportunity_id) FROM opportunities WHERE agent = 'a1'")
    )
    assert 0 < found_rows == distinct <= N


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_a_control_plane_started_while_a_store_is_down_waits_for_it_and_then_ingests(
    store: str, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """A store still starting (a host's boot; Redis or PostgreSQL restarted beside the control plane, or the kill
    above racing its start) is a wait said once, not an exit with a traceback: the control plane stays up and
    ingests what the agent spooled meanwhile."""
    down, up, said = {
        "redis": (redis_server.kill, redis_server.start, b"ingest: Redis:"),
        "postgresql": (postgres.stop, postgres.start, b"PostgreSQL does not answer yet"),
    }[store]
    config = control_config(tmp_path, redis_server, postgres, [Operator("alice", "operator")])
    log = tmp_path / "control.log"
    down()
    control = start_control(config, log)
    try:
        _wait_for_log(control, log, said)
        if store == "redis":  # the outcomes go to the agent's spool while it is down, then it starts
            asyncio.run(_twenty_outcomes_land(redis_server, postgres, tmp_path, store, then=up))
        else:  # the control plane migrates and starts ingesting once PostgreSQL answers
            up()
            asyncio.run(_twenty_outcomes_land(redis_server, postgres, tmp_path, store))
    finally:  # the module's next tests need both
        if redis_server.proc is None:
            redis_server.start()
        if not (postgres.data / "postmaster.pid").exists():
            postgres.start()
        control.terminate()
        control.wait(20)
    text = log.read_bytes()
    assert text.count(said) == 1 and b"Traceback" not in text, text.decode()


def test_a_refused_postgresql_login_is_one_line_and_exit_1(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """A wrong password in postgres_dsn_file is not waited on: named in one line, exit 1, for run and migrate."""
    config = control_config(tmp_path, redis_server, postgres, [Operator("alice", "operator")])
    (tmp_path / "pg.dsn").write_text(postgres.dsn.replace(postgres.password, "not-the-password"))
    for command in ("run", "migrate"):
        done = subprocess.run(
            [sys.executable, "-m", "mevcontrol.cli", command, "--config", str(config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1, (command, done.stderr)
        assert "PostgreSQL: InvalidPasswordError: password authentication failed" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr, done.stderr


def test_opportunities_are_partitioned_by_day_and_retention_drops_whole_days(postgres: Postgres) -> None:
    import datetime as dt

    async def scenario() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            today = dt.datetime.now(dt.UTC).date()
            old = today - dt.timedelta(days=40)
            await ensure_partitions(conn, {old, today})
            await ensure_partitions(conn, {old})  # idempotent
            parts = {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'opportunities'"
                )
            }
            assert f"opportunities_{old:%Y%m%d}" in parts and f"opportunities_{today:%Y%m%d}" in parts
            dropped = await drop_partitions_before(conn, today - dt.timedelta(days=35))
            assert dropped == [
                f"opportunities_{old:%Y%m%d}", f"sandwich_risks_{old:%Y%m%d}", f"skips_{old:%Y%m%d}"
            ]  # fmt: skip
            # A row outside every partition is refused, not silently kept somewhere.
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute(
                    "INSERT INTO opportunities VALUES "
                    "(gen_random_uuid(), $1, 'a', 'c', 's', 'o', 1, 't', 1, 1, 1, 1, 0, 1, 1, 1, 1, 2)",
                    dt.datetime.combine(old, dt.time(), dt.UTC),
                )
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_postgresql_killed_mid_batch_loses_and_doubles_nothing(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """The control plane keeps reading while PostgreSQL is SIGKILLed and restarted: an unacked batch is
    read again from the consumer's pending list and written once."""
    config = control_config(tmp_path, redis_server, postgres, [Operator("alice", "operator")])
    control = start_control(config, tmp_path / "control.log")
    total = 1200

    async def scenario() -> None:
        redis = Redis.from_url(redis_server.url, password=redis_server.password, socket_timeout=5)
        publisher = BusPublisher(redis, Spool(tmp_path / "agent-state"))
        task = asyncio.create_task(publisher.run())

        async def committed() -> int:
            try:
                return await _count(postgres.dsn, "SELECT count(*) FROM outcomes WHERE agent = 'pg1'")
            except (OSError, asyncpg.PostgresError):
                return 0

        for n in range(total):
            await publisher.publish_durable(outcome("pg1", n))
            if n == total // 3:
                await _wait_for(committed, 30, "the first commits")
                postgres.kill()
            if n == total // 2:
                postgres.start()

        async def all_in() -> bool:
            return await committed() >= total

        await _wait_for(all_in, 90, f"{total} outcomes after PostgreSQL came back")
        await asyncio.sleep(1.0)
        conn = await asyncpg.connect(postgres.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT opportunity_id) AS ids, sum(realized_profit) AS profit "
                "FROM outcomes WHERE agent = 'pg1'"
            )
        finally:
            await conn.close()
        assert row["n"] == row["ids"] == total
        assert row["profit"] == sum(n + 1 for n in range(total))
        publisher.stop()
        task.cancel()
        await asyncio.wait([task], timeout=10)
        publisher.spool.close()
        await redis.aclose()

    try:
        asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(20)
