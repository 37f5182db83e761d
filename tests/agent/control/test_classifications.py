"""The control plane's PostgreSQL sink for block classifications (Alembic revision 0002), on a real
PostgreSQL, fed by the agent's live classifier from a real anvil block with a sandwich in it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from mevcontrol.classifications import PostgresClassificationSink
from mevcontrol.db import alembic_config

from mevagent.analytics.live import LiveClassifier
from mevagent.executor.rpc import HttpJsonRpc

from ..analytics_fixture import build_world
from ..evm import Chain
from .fleet import Operator, control_config
from .services import Postgres, RedisServer


def test_live_classifications_land_in_postgres_and_a_rewrite_replaces_them(
    chain: Chain, postgres: Postgres, tmp_path: Path
) -> None:
    world = build_world(chain)
    s, v = world.actors["searcher"], world.actors["victim1"]
    bought = world.router02.functions.getAmountsOut(10**20, [world.a.address, world.b.address]).call()[-1]
    number, receipts = world.mine(
        [
            (world.v2_path_swap(s, [world.a, world.b], 10**20), s),
            (world.v2_path_swap(v, [world.a, world.b], 10**20), v),
            (world.v2_path_swap(s, [world.b, world.a], bought), s),
        ]
    )
    url = str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        try:
            sink = PostgresClassificationSink(pool, "anvil")
            async with aiohttp.ClientSession() as session:
                live = LiveClassifier("anvil", HttpJsonRpc(url, session).call, sink)
                first = await live.classify(number)
                await live.classify(number)  # again (a reorg, a backfill over it): replaced, not doubled
            (sandwich,) = first.sandwiches
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT * FROM mev_sandwiches WHERE chain = 'anvil' AND block = $1", number)
                assert len(rows) == 1
                row = rows[0]
                assert (row["frontrun_tx"], row["backrun_tx"], row["victim_txs"]) == (
                    sandwich.frontrun_tx,
                    sandwich.backrun_tx,
                    sandwich.victim_txs,
                )
                assert row["sandwicher"] == s.lower() and int(row["profit_amount"]) == sandwich.profit_amount
                assert sandwich.frontrun_tx == "0x" + receipts[0]["transactionHash"].hex().removeprefix("0x")
                block = await conn.fetchrow("SELECT * FROM block_classifications WHERE block = $1", number)
                assert block["swaps"] == 3 and block["block_hash"] == first.block_hash
                assert await conn.fetchval("SELECT count(*) FROM block_classifications") == 1
        finally:
            await pool.close()

    asyncio.run(scenario())
    # The revision is the head the control plane migrates to (one head: no branch with another revision).
    from alembic.script import ScriptDirectory

    assert len(ScriptDirectory.from_config(alembic_config(postgres.dsn)).get_heads()) == 1


def test_mevcontrol_backfill_writes_a_range_into_postgres_and_resumes_from_its_cursor(
    chain: Chain, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    world = build_world(chain)
    s, v = world.actors["searcher"], world.actors["victim1"]
    bought = world.router02.functions.getAmountsOut(10**19, [world.a.address, world.b.address]).call()[-1]
    number, _ = world.mine(
        [
            (world.v2_path_swap(s, [world.a, world.b], 10**19), s),
            (world.v2_path_swap(v, [world.a, world.b], 10**19), v),
            (world.v2_path_swap(s, [world.b, world.a], bought), s),
        ]
    )
    config = control_config(tmp_path, redis_server, postgres, [Operator("olga", "operator")])
    url = str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    cursor = tmp_path / "cursor"

    def backfill(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mevcontrol.cli", "backfill", "--config", str(config), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    for bad, flag in (
        (["--chain", "Anvil!", "--rpc", url, "--from", "1", "--to", "2"], "--chain:"),
        (["--chain", "filled", "--rpc", "ftp://x", "--from", "1", "--to", "2"], "--rpc:"),
        (["--chain", "filled", "--rpc", url, "--from", "5", "--to", "3"], "--from/--to:"),
    ):
        done = backfill(*bad)
        assert done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr, done.stderr
    rangeargs = ["--chain", "filled", "--rpc", url, "--from", str(number - 1), "--to", str(number)]
    done = backfill(*rangeargs, "--cursor", str(cursor), "--batch", "1")
    assert done.returncode == 0, done.stderr
    assert "classified 2 block(s)" in done.stdout and orjson.loads(cursor.read_bytes()) == {"next": number + 1}
    again = backfill(*rangeargs, "--cursor", str(cursor))  # resumed: nothing left to do
    assert again.returncode == 0 and "classified 0 block(s)" in again.stdout, again.stderr

    async def stored() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            blocks = await conn.fetch("SELECT block FROM block_classifications WHERE chain = 'filled' ORDER BY block")
            assert [r["block"] for r in blocks] == [number - 1, number]
            (row,) = await conn.fetch("SELECT sandwicher FROM mev_sandwiches WHERE chain = 'filled'")
            assert row["sandwicher"] == s.lower()
        finally:
            await conn.close()

    asyncio.run(stored())
