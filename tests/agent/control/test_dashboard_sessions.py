"""Dashboard sessions in the real PostgreSQL: two control planes on one database share them, a restart keeps
an operator logged in, the table holds only hashes, and logout, expiry, a rotated token and the bound end
them. Each control plane here is the listener's own session middleware on its own pool and app."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mevcontrol.config import OperatorConfig
from mevcontrol.dashboard.sessions import COOKIE, CSRF_HEADER, SESSION_KEY, Sessions, session_middleware

from .services import Postgres

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
