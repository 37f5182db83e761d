"""The risk lease on a live anvil chain: a live agent signs while the control plane grants leases; when the
control plane is gone (SIGKILL) the agent stops signing within the lease TTL (the opportunity is refused by
the risk gate, the owner's nonce does not move), and it signs again once the control plane is back."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg

from testbed.arb import BuilderBehaviour, builders
from testbed.control import Operator, control_config, start_control
from testbed.e2e import CHAIN, World, eventually, running, world_config
from testbed.services import Postgres, RedisServer

TTL_S = 3


async def _entry(api: Any, block: int, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        entries = await api.opportunities()
        return next((e for e in entries if e["block"] == block and e["status"] == status), None)

    return await eventually(probe, 30, f"an opportunity of block {block} with status {status}")


def test_a_live_agent_stops_signing_within_the_lease_ttl_when_the_control_plane_is_gone_and_resumes(
    e2e_world: World, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    world = e2e_world
    path = control_config(
        tmp_path, redis_server, postgres, [Operator("alice", "operator")], live_chains=[CHAIN], lease_ttl_s=TTL_S
    )
    log = tmp_path / "control.log"
    control = start_control(path, log)
    bus = {"agent": "live1", "redis_url": redis_server.url, "password_file": str(redis_server.password_file)}

    async def scenario() -> None:
        nonlocal control
        behaviour = BuilderBehaviour("builder", include=True)
        async with builders([behaviour], world.http_url) as (builder,):
            (tmp_path / "agent").mkdir()
            config = world_config(world, tmp_path / "agent", builder.url, live=True, bus=bus)
            async with running(config) as (agent, api):
                await eventually(api.ready, 30, "/ready")
                lease = agent.bus.lease
                await eventually(lambda: _async(lease.fresh()), 30, "a lease from the control plane")

                nonce = world.nonce()
                block = await asyncio.to_thread(world.gap)
                await _entry(api, block, "landed")
                assert world.nonce() >= nonce + 1  # a landing can open a smaller gap, executed too

                control.send_signal(signal.SIGKILL)
                control.wait(10)
                killed = time.monotonic()
                await eventually(lambda: _async(not lease.fresh()), TTL_S + 10, "the lease to expire")
                # Within the TTL (plus one renewal interval it may have been granted just before the kill).
                assert time.monotonic() - killed <= TTL_S + 1.0
                nonce = world.nonce()
                block = await asyncio.to_thread(world.gap)
                refused = await _entry(api, block, "rejected")
                assert refused["reason"].startswith("risk_lease:"), refused
                assert world.nonce() == nonce  # nothing was signed

                control = start_control(path, log)
                await eventually(lambda: _async(lease.fresh()), 60, "a lease from the restarted control plane")
                nonce = world.nonce()
                block = await asyncio.to_thread(world.gap)
                await _entry(api, block, "landed")
                assert world.nonce() >= nonce + 1  # a landing can open a smaller gap, executed too

                # The history reconciles with the agent's own record: every landing, with its exact profit.
                async def reconciled() -> bool:
                    ours = {e["id"]: e for e in await api.opportunities() if e["status"] == "landed"}
                    conn = await asyncpg.connect(postgres.dsn)
                    try:
                        rows = await conn.fetch(
                            "SELECT opportunity_id, realized_profit, gas_paid_wei, included_block FROM outcomes "
                            "WHERE agent = 'live1' AND status = 'landed'"
                        )
                    finally:
                        await conn.close()
                    stored = {r["opportunity_id"]: r for r in rows}
                    if set(stored) != set(ours):
                        return False
                    for oid, entry in ours.items():
                        assert stored[oid]["realized_profit"] == int(entry["amount_out"]) - int(entry["amount_in"])
                        assert stored[oid]["included_block"] is not None
                    return True

                await eventually(reconciled, 30, "the landings in PostgreSQL")

    try:
        asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(20)


async def _async(value: bool) -> bool:
    return value
