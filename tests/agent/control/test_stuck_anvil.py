"""Replace and cancel of a stuck transaction on anvil, carried out by the owning agent.

First a real execution the local builder accepts and never includes: it is in the stuck list while the
agent waits for it (reported sent at once), a cancel of it is refused (the node never saw it), and its
outcome takes it off the list. Then anvil stops mining on its own (`evm_setAutomine false`), so a
transaction of the live agent's key stays pending, with an `execution_sent` and no outcome in the
agent's history. Through :8080, with real Redis, PostgreSQL, `mevcontrol` and the agent: the stuck list
shows it; a viewer, a bad body and an unknown hash are refused; `replace` makes the agent re-sign the
same call at that nonce with higher fees, and the block mined next holds the replacement and never the
original, and the agent, following the replacement to its receipt, has the row say `replaced-landed`;
under an emergency stop a `replace` is refused by the agent's risk gate while a `cancel` (0 to itself)
is signed and mined at the nonce (`cancelled-landed`); a transaction another key sent is refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account

from mevagent.executor.keys import Signer
from testbed.arb import BuilderBehaviour, builders
from testbed.control import Operator, control_config, pending_tx, report_sent, start_control
from testbed.e2e import CHAIN, World, eventually, running, world_config
from testbed.services import Postgres, RedisServer

AGENT = "live1"
GWEI = 10**9


def _rpc(world: World, method: str, params: list[Any]) -> Any:
    answer = world.w3.provider.make_request(method, params)
    assert "error" not in answer, answer
    return answer["result"]


class Plane:
    def __init__(self, path: Path, session: aiohttp.ClientSession) -> None:
        import yaml

        listen = yaml.safe_load(path.read_text())["listen"]
        self.dash = f"http://127.0.0.1:{listen['dashboard_port']}"
        self.risk = f"http://127.0.0.1:{listen['risk_port']}"
        self.session = session

    async def post(self, url: str, who: Operator, body: Any = None) -> tuple[int, Any]:
        async with self.session.post(url, json=body if body is not None else {}, headers=who.auth) as r:
            return r.status, await r.json()

    async def act(self, who: Operator, tx: str, action: str, body: Any = None) -> tuple[int, Any]:
        return await self.post(f"{self.dash}/api/transactions/stuck/{tx}/{action}", who, body)

    async def stuck(self, who: Operator) -> dict[str, dict[str, Any]]:
        async with self.session.get(f"{self.dash}/api/transactions/stuck", headers=who.auth) as r:
            assert r.status == 200
            return {row["tx_hashes"][0]: row for row in (await r.json())["stuck"]}


def test_the_owning_agent_replaces_and_cancels_a_stuck_transaction_on_anvil(
    e2e_world: World, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    world = e2e_world
    alice, victor = Operator("alice", "operator"), Operator("victor", "viewer")
    path = control_config(tmp_path, redis_server, postgres, [alice, victor], live_chains=[CHAIN], stuck_after_blocks=1)
    control = start_control(path, tmp_path / "control.log")
    bus = {"agent": AGENT, "redis_url": redis_server.url, "password_file": str(redis_server.password_file),
           "heartbeat_s": 0.5}  # fmt: skip
    key = Signer.from_file(world.key_file)
    w3 = world.w3

    async def scenario() -> None:
        (tmp_path / "agent").mkdir()
        async with (
            builders([BuilderBehaviour("builder", include=False)], world.http_url) as (builder,),
            aiohttp.ClientSession() as session,
        ):
            config = world_config(world, tmp_path / "agent", builder.url, live=True, bus=bus)
            async with running(config) as (agent, api):
                await _scenario(agent, api, Plane(path, session))

    async def _scenario(agent: Any, api: Any, plane: Plane) -> None:
        await eventually(api.ready, 30, "/ready")
        await eventually(lambda: _true(agent.bus.lease.fresh()), 30, "a lease from the control plane")

        # A real execution the builder accepts and never includes: reported sent at once, it is in the
        # stuck list while the agent still waits (2 blocks on, its bundle targets 3); not in the node's
        # mempool, so a cancel is refused; when its blocks pass, its outcome takes it off the list.
        block = await asyncio.to_thread(world.gap)
        sent = await eventually(lambda: _sent(postgres, block), 30, "the execution reported sent")
        _rpc(world, "evm_mine", [])
        _rpc(world, "evm_mine", [])
        await eventually(lambda: _get(plane.stuck(alice), sent), 30, "the real execution in the stuck list")
        status, answer = await plane.act(alice, sent, "cancel")
        assert status == 409 and "not in the node's mempool" in answer["detail"], answer
        _rpc(world, "evm_mine", [])
        _rpc(world, "evm_mine", [])
        await eventually(lambda: _gone(plane.stuck(alice), sent), 30, "its outcome to take it off the list")
        _rpc(world, "evm_setAutomine", [False])
        head = w3.eth.block_number
        nonce = w3.eth.get_transaction_count(key.address, "latest")
        call = {"to": w3.to_checksum_address(world.deployment.address), "data": "0x8da5cb5b"}  # owner()
        first = pending_tx(w3, key, nonce, **call)
        report_sent(redis_server, AGENT, CHAIN, first, head - 3, "stuck-1")
        listed = await eventually(lambda: _get(plane.stuck(alice), first), 30, "the stuck list to show it")
        assert listed["agent"] == AGENT and listed["state"] == "stuck" and listed["blocks_behind"] >= 2

        # Refused before anything is sent.
        assert (await plane.act(victor, first, "replace"))[0] == 403
        status, answer = await plane.act(alice, first, "replace", {"bump_percent": 5})
        assert status == 400 and answer["fields"] == ["bump_percent"], answer
        assert (await plane.act(alice, "0x" + "ab" * 32, "cancel"))[0] == 404
        assert (await plane.act(alice, "0x1234", "cancel"))[0] == 400

        # replace: the same call at the same nonce, both fee caps up by at least 10 %.
        status, answer = await plane.act(alice, first, "replace", {"bump_percent": 20})
        assert status == 200 and answer["result"] == "acked", answer
        row = await eventually(lambda: _get(plane.stuck(alice), first, "replaced"), 30, "shown replaced")
        replacement = w3.eth.get_transaction(row["replacement_hash"])
        assert replacement["nonce"] == nonce and replacement["input"].hex().removeprefix("0x") == "8da5cb5b"
        assert replacement["maxFeePerGas"] == 2 * GWEI * 12 // 10
        assert replacement["maxPriorityFeePerGas"] == GWEI * 12 // 10
        _rpc(world, "evm_mine", [])
        mined = w3.eth.get_transaction_receipt(row["replacement_hash"])
        assert mined["status"] == 1
        assert _receipt(world, first) is None  # the original can never be mined now
        assert w3.eth.get_transaction_count(key.address, "latest") == nonce + 1
        # The agent follows its replacement to the receipt: the row says so, with the block.
        row = await eventually(lambda: _get(plane.stuck(alice), first, "replaced-landed"), 30, "replaced-landed")
        assert row["replacement_block"] == mined["blockNumber"]

        # Under an emergency stop: replace refused by the agent's gate, cancel allowed.
        status, answer = await plane.post(f"{plane.risk}/emergency/stop", alice, {"reason": "stuck test"})
        assert status == 200, answer
        second = pending_tx(w3, key, nonce + 1, **call)
        report_sent(redis_server, AGENT, CHAIN, second, head - 3, "stuck-2")
        await eventually(lambda: _get(plane.stuck(alice), second), 30, "the second in the stuck list")
        status, answer = await plane.act(alice, second, "replace")
        assert status == 409 and answer["detail"].startswith("emergency_stop:"), answer
        status, answer = await plane.act(alice, second, "cancel")
        assert status == 200 and answer["result"] == "acked", answer
        row = await eventually(lambda: _get(plane.stuck(alice), second, "cancelled"), 30, "shown cancelled")
        _rpc(world, "evm_mine", [])
        receipt = w3.eth.get_transaction_receipt(row["replacement_hash"])
        cancel = w3.eth.get_transaction(row["replacement_hash"])
        assert receipt["status"] == 1 and cancel["nonce"] == nonce + 1
        assert cancel["to"] == key.address and cancel["value"] == 0 and cancel["input"] in (b"", "0x")
        assert _receipt(world, second) is None
        row = await eventually(lambda: _get(plane.stuck(alice), second, "cancelled-landed"), 30, "cancelled-landed")
        assert row["replacement_block"] == receipt["blockNumber"]

        # A transaction of another key, reported under this agent's name: the agent refuses to touch it.
        other = Account.create()
        _rpc(world, "anvil_setBalance", [other.address, hex(10**18)])
        foreign = pending_tx(w3, _Key(other), 0, to=other.address)
        report_sent(redis_server, AGENT, CHAIN, foreign, head - 3, "stuck-3")
        await eventually(lambda: _get(plane.stuck(alice), foreign), 30, "the foreign one in the list")
        status, answer = await plane.act(alice, foreign, "cancel")
        assert status == 409 and "not by this agent's key" in answer["detail"], answer
        _rpc(world, "evm_mine", [])
        assert _receipt(world, foreign) is not None  # untouched: mined as its sender signed it
        _rpc(world, "evm_setAutomine", [True])

    try:
        asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(20)


class _Key:
    def __init__(self, account: Any) -> None:
        self.account = account

    def sign_transaction(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        signed = self.account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


def _receipt(world: World, tx_hash: str) -> Any:
    return world.w3.provider.make_request("eth_getTransactionReceipt", [tx_hash]).get("result")


async def _get(rows: Any, tx: str, state: str | None = None) -> dict[str, Any] | None:
    row = (await rows).get(tx)
    return row if row is not None and (state is None or row["state"] == state) else None


async def _sent(postgres: Postgres, block: int) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(postgres.dsn)
    try:
        hashes = await conn.fetchval("SELECT tx_hashes FROM executions WHERE agent = $1 AND block = $2", AGENT, block)
    finally:
        await conn.close()
    return hashes[0] if hashes else None


async def _gone(rows: Any, tx: str) -> bool:
    return tx not in await rows


async def _true(value: bool) -> bool | None:
    return value or None
