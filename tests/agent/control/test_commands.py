"""Commands to several agents and their acknowledgements, with the real Redis and PostgreSQL and the control
plane's own `Control` (ingest, lease loop) in this process:

- a command sent to the fleet (an emergency stop: one id for every agent) is recorded once per agent and is
  on every agent's command stream;
- an agent's ack answers the waiting operator as soon as the bus delivers it, before the ingest's
  transaction that stores it commits: held here behind a lock on `command_acks`, the ack still arrives,
  and the row appears once the lock goes;
- the agent sends its ack at once, without waiting for its spool's fsync (`urgent`), and spools it as
  every durable event: two copies on the stream, one row, handed on (to the dashboard's feed) once.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from mevcontrol.config import load_control_config
from mevcontrol.ingest import Ingest
from mevcontrol.service import Control
from redis.asyncio import Redis

from mevagent.bus.events import (
    DURABLE_STREAM,
    FIELD,
    CommandAck,
    EmergencyStopCommand,
    command_stream,
    encode,
    new_id,
)
from mevagent.bus.publisher import BusPublisher
from mevagent.bus.spool import Spool
from testbed.control import Operator, control_config
from testbed.services import Postgres, RedisServer

pytestmark = pytest.mark.timeout(60)
AGENTS = ["eth1", "arb1", "base1"]


async def _control(redis_server: RedisServer, postgres: Postgres, directory: Path) -> Control:
    config = load_control_config(control_config(directory, redis_server, postgres, [Operator("ann", "operator")]))
    control = await Control.open(config)
    await control.start()
    return control


def test_a_command_to_the_fleet_is_recorded_for_each_agent_and_put_on_each_stream(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    async def scenario() -> tuple[dict[str, str], list[tuple[str, str]], dict[str, int]]:
        control = await _control(redis_server, postgres, tmp_path)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            command = EmergencyStopCommand(reason="test", issued_by="ann")
            sent = await control.send_all(AGENTS, command)
            async with control.pool.acquire() as conn:
                rows = await conn.fetch("SELECT kind, target FROM commands WHERE id = $1 ORDER BY target", command.id)
            on_streams = {}
            for agent in AGENTS:
                entries = await redis.xrange(command_stream(agent))
                on_streams[agent] = sum(command.id in e[1][FIELD.encode()].decode() for e in entries)
            return sent, [tuple(r) for r in rows], on_streams
        finally:
            await redis.aclose()
            await control.close()

    sent, rows, on_streams = asyncio.run(scenario())
    assert sent == dict.fromkeys(AGENTS, "sent")
    assert rows == [("emergency_stop", a) for a in sorted(AGENTS)]  # before: one row, the first agent's
    assert on_streams == dict.fromkeys(AGENTS, 1)


def test_an_ack_answers_the_operator_before_its_batch_commits(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    async def scenario() -> tuple[bool, bool, int]:
        control = await _control(redis_server, postgres, tmp_path)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        blocker = await asyncpg.connect(postgres.dsn)
        try:
            command = EmergencyStopCommand(reason="test", issued_by="ann")
            futures = control.expect_ack(command.id, ["eth1"])
            ack = CommandAck(agent="eth1", command_id=command.id, command=command.kind, ok=True)
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("LOCK TABLE command_acks IN EXCLUSIVE MODE")  # its writes wait, reads do not
            await redis.xadd(DURABLE_STREAM, {FIELD: encode(ack)})
            try:
                await asyncio.wait_for(asyncio.shield(futures["eth1"]), 10)
                answered = True
            except TimeoutError:
                answered = False
            stored_meanwhile = await _stored(postgres, ack.id)
            await lock.rollback()
            for _ in range(100):  # the ingest's batch goes through once the lock is gone
                if await _stored(postgres, ack.id):
                    break
                await asyncio.sleep(0.1)
            return answered, stored_meanwhile, await _stored(postgres, ack.id)
        finally:
            control.forget_ack(command.id)
            await blocker.close()
            await redis.aclose()
            await control.close()

    answered, stored_meanwhile, stored = asyncio.run(scenario())
    assert answered and not stored_meanwhile, "the ack waited for its batch's commit (or the lock did not hold)"
    assert stored == 1


async def _stored(postgres: Postgres, event_id: str) -> int:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM command_acks WHERE event_id = $1", event_id))
    finally:
        await conn.close()


def test_an_urgent_durable_event_reaches_redis_before_its_spool_write_and_is_handled_once(
    redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """A command's ack is sent at once and spooled as usual: here the spool's write is held until the ack is on
    the stream (a slow disk); the spooled copy follows, and the ingest stores it and hands it on once."""

    async def scenario() -> tuple[bool, int, int, list[str]]:
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        await redis.delete(DURABLE_STREAM)
        spool = Spool(tmp_path / "spool")
        write = spool.append
        disk = threading.Event()

        def append(raws: list[bytes]) -> Any:
            disk.wait(30)  # the disk answers once the test lets it (in the publisher's thread)
            return write(raws)

        spool.append = append  # type: ignore[method-assign]
        publisher = BusPublisher(redis, spool)
        runner = asyncio.create_task(publisher.run())
        ack = CommandAck(agent="eth1", command_id=new_id(), command="emergency_stop", ok=True)
        handed: list[str] = []
        try:
            spooled = asyncio.create_task(publisher.publish_durable(ack, urgent=True))
            async with asyncio.timeout(20):
                while not await redis.xlen(DURABLE_STREAM):
                    await asyncio.sleep(0.01)
            early = not disk.is_set() and not spooled.done()  # on the stream while its spool write is held
            disk.set()
            await spooled
            assert await publisher.flushed(5)
            copies = await redis.xlen(DURABLE_STREAM)
            pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
            try:
                ingest = Ingest(redis, pool, on_commit=lambda events: handed.extend(e.id for e in events))
                await ingest.ensure_groups()
                task = asyncio.create_task(ingest.run())
                for _ in range(100):
                    if await _stored(postgres, ack.id) and not await redis.xlen(DURABLE_STREAM):
                        break
                    await asyncio.sleep(0.05)
                ingest.stop()
                await asyncio.wait_for(task, 5)
            finally:
                await pool.close()
            return early, copies, await _stored(postgres, ack.id), handed
        finally:
            disk.set()
            publisher.stop()
            await asyncio.wait_for(runner, 5)
            await redis.aclose()

    early, copies, stored, handed = asyncio.run(scenario())
    assert early, "the ack waited for its spool write"
    assert copies == 2 and stored == 1
    assert handed == [handed[0]] and len(handed) == 1, handed  # before: the feed showed the ack twice
