"""The dashboard against the real PostgreSQL, without a browser.

Sessions: two control planes on one database share them, a restart keeps an operator logged in, the table
holds only hashes, and logout, expiry, a rotated token and the bound end them (each control plane here is
the listener's own session middleware on its own pool and app). Views: what the agents' events, written by
the control plane's ingest, show (peers per node on the health view, builder payments apart from gas in
the P&L)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mevcontrol.config import ControlConfig, OperatorConfig
from mevcontrol.dashboard import views
from mevcontrol.dashboard.sessions import COOKIE, CSRF_HEADER, SESSION_KEY, Sessions, session_middleware
from mevcontrol.operations import Operations
from mevcontrol.service import Control
from redis.asyncio import Redis

from mevagent.bus.events import ExecutionOutcome, Heartbeat
from testbed.control import secret_file
from testbed.services import Postgres

ALICE = OperatorConfig(name="alice", role="operator", token_sha256="a" * 64)
BOB = OperatorConfig(name="bob", role="viewer", token_sha256="b" * 64)


async def whoami(request: web.Request) -> web.Response:
    session = request.get(SESSION_KEY)
    operator = request.get("operator")
    return web.json_response({"operator": operator.name if operator else None, "csrf": session and session.csrf})


@asynccontextmanager
async def control_plane(dsn: str, operators: Sequence[OperatorConfig], **kw: float) -> AsyncIterator[
    tuple[Sessions, TestClient]
]:  # fmt: skip
    """One control plane's sessions and a listener with the session middleware in front of `whoami`."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    sessions = Sessions(pool, operators, **kw)  # type: ignore[arg-type]
    app = web.Application(middlewares=[session_middleware(sessions, set())])
    app.router.add_get("/who", whoami)
    app.router.add_post("/who", whoami)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield sessions, client
    finally:
        await client.close()
        await pool.close()


async def who(client: TestClient, session_id: str) -> str | None:
    async with client.get("/who", headers={"Cookie": f"{COOKIE}={session_id}"}) as response:
        return (await response.json())["operator"]


def test_two_control_planes_share_sessions_a_restart_keeps_them_and_logout_or_expiry_ends_them(
    postgres: Postgres,
) -> None:
    async def scenario() -> None:
        async with control_plane(postgres.dsn, [ALICE, BOB]) as (a, client_a):
            session_id, session = await a.open(ALICE)
            assert await who(client_a, session_id) == "alice"
            async with control_plane(postgres.dsn, [ALICE, BOB]) as (b, client_b):
                # The second control plane knows the cookie, with the same CSRF token (derived, not stored).
                assert await who(client_b, session_id) == "alice"
                async with client_b.get("/who", headers={"Cookie": f"{COOKIE}={session_id}"}) as response:
                    assert (await response.json())["csrf"] == session.csrf
                # A POST with the cookie and without the CSRF token is refused there too; with it, it passes.
                headers = {"Cookie": f"{COOKIE}={session_id}"}
                async with client_b.post("/who", headers=headers) as response:
                    assert response.status == 403
                async with client_b.post("/who", headers={**headers, CSRF_HEADER: session.csrf}) as response:
                    assert response.status == 200 and (await response.json())["operator"] == "alice"
                assert await who(client_b, session_id + "x") is None and await who(client_b, "") is None
                # Logout on B: A refuses the cookie from its next request, and an open stream's check says so.
                other_id, other = await b.open(BOB)
                await b.close(other_id)
                assert await who(client_a, other_id) is None and not await a.alive(other)
        # A restart (a new pool and a new process's Sessions): alice is still logged in.
        async with control_plane(postgres.dsn, [ALICE, BOB]) as (restarted, client):
            assert await who(client, session_id) == "alice" and await restarted.alive(session)
        # The table holds the cookie's hash, never the cookie nor the CSRF token.
        conn = await asyncpg.connect(postgres.dsn)
        try:
            rows = [dict(r) for r in await conn.fetch("SELECT * FROM dashboard_sessions")]
        finally:
            await conn.close()
        assert [r["session_sha256"] for r in rows] == [hashlib.sha256(session_id.encode()).hexdigest()]
        stored = repr(rows)
        assert session_id not in stored and session.csrf not in stored
        # A rotated token (a new hash in control.yml) or a removed operator ends the session.
        async with control_plane(postgres.dsn, [ALICE.model_copy(update={"token_sha256": "c" * 64})]) as (_, c):
            assert await who(c, session_id) is None
        async with control_plane(postgres.dsn, [BOB]) as (_, c):
            assert await who(c, session_id) is None
        # Expiry (the database's clock), and the bound: beyond max_sessions the oldest go first.
        async with control_plane(postgres.dsn, [ALICE], ttl_s=0.3, max_sessions=3) as (short, client):
            expiring, expiring_session = await short.open(ALICE)
            assert await who(client, expiring) == "alice"
            await asyncio.sleep(0.4)
            assert await who(client, expiring) is None and not await short.alive(expiring_session)
            first, _ = await short.open(ALICE)
            for _ in range(3):
                await short.open(ALICE)
            assert await who(client, first) is None
            conn = await asyncpg.connect(postgres.dsn)
            try:
                assert await conn.fetchval("SELECT count(*) FROM dashboard_sessions") == 3
            finally:
                await conn.close()

    asyncio.run(scenario())


@asynccontextmanager
async def operations(postgres: Postgres, directory: Path, **config: Any) -> AsyncIterator[Operations]:
    """The control plane's state on the real database (its ingest writes, the views read); Redis is not used."""
    data = {"redis_url": "redis://127.0.0.1:1", "postgres_dsn_file": str(secret_file(directory / "dsn", postgres.dsn)),
            "operators": [ALICE.model_dump()], **config}  # fmt: skip
    pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
    redis = Redis.from_url("redis://127.0.0.1:1")
    try:
        yield Operations(Control(ControlConfig.model_validate(data), redis, pool))
    finally:
        await redis.aclose()
        await pool.close()


def heartbeat(agent: str, chains: tuple[str, ...], **fields: Any) -> Heartbeat:
    return Heartbeat(
        agent=agent, chains=chains, live_chains=(), lease_fresh=True, lease_expires_in_s=15, emergency_stop=False,
        spool_pending=0, dropped=0, **fields,
    )  # fmt: skip


def test_the_health_view_shows_each_nodes_peers_from_the_heartbeats_and_marks_the_low_ones(
    postgres: Postgres, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with operations(postgres, tmp_path, min_node_peers=5) as ops:
            await ops.control.ingest.write(
                [
                    # An older heartbeat, then the newest: the newest counts.
                    heartbeat("p1", ("ethereum", "base"), peers={"ethereum": 1, "base": 1}, at=1.0),
                    heartbeat("p1", ("ethereum", "base"), peers={"ethereum": 42, "base": 3},
                              beacon_peers={"ethereum": 2}),
                    heartbeat("p2", ("arbitrum",), peers={"arbitrum": 17}),
                    heartbeat("p3", ("optimism",)),  # its node did not say
                ]
            )  # fmt: skip
            data = await views.health(ops, views.AgentRisk(ops))
        nodes = {(n["agent"], n["chain"]): n for n in data["nodes"]}
        assert data["min_node_peers"] == 5
        # ethereum: the execution node has plenty, its beacon node does not: low.
        assert (nodes["p1", "ethereum"]["peers"], nodes["p1", "ethereum"]["beacon_peers"]) == (42, 2)
        assert nodes["p1", "ethereum"]["low_peers"] is True
        assert (nodes["p1", "base"]["peers"], nodes["p1", "base"]["low_peers"]) == (3, True)
        assert nodes["p2", "arbitrum"] == {
            "agent": "p2", "chain": "arbitrum", "peers": 17, "beacon_peers": None, "low_peers": False
        }  # fmt: skip
        assert ("p3", "optimism") not in nodes  # nothing reported for it: no row, never a made-up count

    asyncio.run(scenario())


def landed(agent: str, n: int, *, profit: str, gas: str, builder: str | None) -> ExecutionOutcome:
    """A landed execution; `builder` None: an agent from before the builder payment was reported apart."""
    now = time.time() // 300 * 300 + 1  # one 5-minute bin of the chart for every outcome of the test
    paid = {} if builder is None else {"builder_paid_wei": 7 * 10**15, "builder_paid_usd": Decimal(builder)}
    return ExecutionOutcome(
        agent=agent, chain="base" if n % 2 else "ethereum", strategy="dex_arb", opportunity_id=f"{agent}-{n}",
        block=n, status="landed", token="0x" + "11" * 20, amount_in=10**18, realized_profit=10**16,
        gas_paid_wei=10**16, token_usd_per_unit=Decimal("1e-18"), native_usd_per_wei=Decimal("3e-15"),
        realized_profit_usd=Decimal(profit), gas_cost_usd=Decimal(gas), found_at=now, settled_at=now, **paid,
    )  # fmt: skip


def test_the_pnl_view_shows_builder_payments_apart_from_gas_and_the_net_after_both(
    postgres: Postgres, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        async with operations(postgres, tmp_path) as ops:
            await ops.control.ingest.write(
                [
                    landed("b1", 0, profit="100", gas="30", builder="21"),  # gas 9 + builder 21
                    landed("b1", 2, profit="50", gas="5", builder="0"),  # no payment (a sequencer chain's way)
                    landed("b1", 1, profit="40", gas="12", builder=None),  # an older agent: all in gas
                ]
            )
            return await views.pnl(ops, views.PnlQuery())

    data = asyncio.run(scenario())
    total = data["total"]
    assert (Decimal(total["gas_usd"]), Decimal(total["builder_usd"])) == (Decimal(26), Decimal(21))
    assert Decimal(total["net_usd"]) == Decimal(190) - Decimal(47) and total["executions"] == 3
    rows = {r["chain"]: r for r in data["rows"]}
    assert (Decimal(rows["ethereum"]["gas_usd"]), Decimal(rows["ethereum"]["builder_usd"])) == (14, 21)
    assert (Decimal(rows["base"]["gas_usd"]), Decimal(rows["base"]["builder_usd"])) == (12, 0)
    assert Decimal(rows["ethereum"]["net_usd"]) == 150 - 35
    # The chart's series: [bin, chain, net, gas, builder] per bin and chain.
    assert sorted(s[1:] for s in data["series"]) == [["base", 28.0, 12.0, 0.0], ["ethereum", 115.0, 14.0, 21.0]]
