"""`mevagent run` on a Solana chain: the agent built from its config (mevagent.app.Agent, as `run` builds
it) against the simulator over loopback. The chain's collector keeps the pool book from account
subscriptions, the `solana_arb` plug-in finds the cycle, the engine hands it to the `solana_bundle` route,
the risk gate is asked before signing, and the same metrics and bus events as an EVM chain come out
(a real Redis for the bus).

As in test_agent_solana_e2e, no DEX program runs in LiteSVM, so the route's swap instruction is replaced
by `world.settle_by_transfers` (the exact quoted amounts as SPL transfers); everything else is the agent's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.transaction import VersionedTransaction

from mevagent.api.readiness import run_check
from mevagent.app import Agent, StartupError
from mevagent.bus.events import BEST_EFFORT_STREAM, DURABLE_STREAM, FIELD
from mevagent.config import validate
from mevagent.core import Status
from mevagent.solana.book import PoolBook
from mevagent.solana.layouts import TOKEN_PROGRAM
from mevagent.solana.route import SolanaRoute
from mevagent.solana.rpc import account_data
from testbed.services import RedisServer, free_port
from testbed.solana.standin import RunningStandIn
from testbed.solana.world import SOL, World, build_world, put, settle_by_transfers, spl_transfer, token_account_data

from ..conftest import need_services

STRATEGY = {
    "min_profit_threshold": 0,
    "min_profit_bps": 0,
    "max_input": 50 * SOL,
    "compute_unit_price_micro_lamports": 1_000,
}


def secret(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def agent_config(standin: RunningStandIn, world: World, tmp: Path, *, live: bool, signer: bool, **extra: Any):
    chain: dict[str, Any] = {
        "name": "solana",
        "chain_id": 101,
        "http_url": standin.http,
        "ws_url": standin.ws,
        "max_gas_price_gwei": 100,
        "live": live,
        "solana": {
            "pools": [{"kind": "raydium_cpmm", "address": str(p.address)} for p in world.pools],
            "base_mint": str(world.base),
            "sol_usd": 150.0,
            "token_accounts": {str(m): str(a) for m, a in world.ours.items()},
        },
    }
    if signer:
        chain["signing_key_file"] = str(secret(tmp / "payer.json", json.dumps(list(bytes(world.payer)))))
        chain["solana"]["block_engines"] = [{"name": "local", "url": standin.block_engine, "rps": 50}]
    return validate(
        {
            "state_dir": str(tmp / "state"),
            "api": {
                "token_file": str(secret(tmp / "token", "t" * 32)),
                "port": free_port(),
                "metrics_port": free_port(),
            },
            "chains": [chain],
            "risk": {"max_slippage_bps": 0, **extra.pop("risk", {})},
            "strategies": {"solana_arb": STRATEGY},
            **extra,
        }
    )


@pytest.fixture
def world(standin: RunningStandIn) -> World:
    w = build_world(standin)
    w.add_pool(100 * SOL, 15_000 * SOL)  # 150 other per base
    w.add_pool(100 * SOL, 14_000 * SOL)  # 140 other per base: a gap
    return w


async def started(config, world: World) -> tuple[Agent, SolanaRoute]:
    agent = await Agent.build(config)
    route = agent.chains["solana"].routes["solana_bundle"]
    assert isinstance(route, SolanaRoute)
    if route.executor is not None:  # no DEX program in LiteSVM: the exact amounts settle as transfers
        route.executor.venues = {"raydium_cpmm": settle_by_transfers(world.authority)}
    await agent.start()
    return agent, route


async def settled(agent: Agent, status: str | None = None, timeout: float = 15.0) -> dict[str, Any]:
    """The first opportunity the engine settled (with `status`, when given).

    Our own landing moves four vaults, one notification each: a cycle sized between them (on a half-updated
    book) is refused as stale by the route before the gate, so a later entry may be such a refusal."""

    async def wait() -> dict[str, Any]:
        while True:
            done = [e for e in agent.engine.recent._entries if e["status"] not in ("pending", "dropped")]
            done = [e for e in done if status is None or e["status"] == status]
            if done:
                return done[0]
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(wait(), timeout)


async def ready(agent: Agent, timeout: float = 5.0) -> dict[str, tuple[bool, str]]:
    """/ready's checks of the chain once they pass (the state is marked fresh at the first slot after the read)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        checks = {c.name: await run_check(c) for c in agent.chains["solana"].readiness()}
        if all(ok for ok, _ in checks.values()) or asyncio.get_running_loop().time() > deadline:
            return checks
        await asyncio.sleep(0.05)


def test_run_lands_a_cycle_with_metrics_and_bus_events(standin: RunningStandIn, world: World, tmp_path: Path) -> None:
    need_services()
    server = RedisServer(tmp_path)
    server.start()
    bus = {"agent": "sol1", "redis_url": server.url, "password_file": str(server.password_file)}
    config = agent_config(standin, world, tmp_path, live=True, signer=True, bus={**bus, "lease_required": False})
    base_before = world.balance(world.ours[world.base])

    async def go() -> tuple[dict[str, Any], list[dict[str, Any]], bytes, dict[str, tuple[bool, str]]]:
        agent, route = await started(config, world)
        try:
            entry = await settled(agent, Status.LANDED)
            checks = await ready(agent)
            await asyncio.sleep(0.3)  # the best-effort publisher's next batch
        finally:
            await agent.stop()
        r = aioredis.from_url(server.url, password=server.password)
        events = [
            orjson.loads(fields[FIELD.encode()])
            for stream in (DURABLE_STREAM, BEST_EFFORT_STREAM)
            for _, fields in await r.xrange(stream)
        ]
        await r.aclose()
        assert route.reports and route.executor is not None
        return entry, events, agent.metrics.render(), checks

    try:
        entry, events, metrics, checks = asyncio.run(go())
    finally:
        server.stop()
    assert entry["status"] == Status.LANDED, entry["reason"]
    assert all(ok for ok, _ in checks.values()), checks
    amount_in, amount_out = int(entry["amount_in"]), int(entry["amount_out"])
    assert world.balance(world.ours[world.base]) == base_before - amount_in + amount_out  # exactly the quote
    sig = entry["tx_hashes"][0]
    assert standin.call("getSignatureStatuses", [sig])["value"][0]["err"] is None

    outcome = next(e for e in events if e["kind"] == "outcome" and e["status"] == "landed")
    found = [e for e in events if e["kind"] == "opportunity_found" and e["opportunity_id"] == outcome["opportunity_id"]]
    sent = next(e for e in events if e["kind"] == "execution_sent")
    assert found[0]["chain"] == "solana" and found[0]["strategy"] == "solana_arb" and found[0]["hops"] == 2
    assert outcome["status"] == "landed" and outcome["tx_hashes"] == [sig] == sent["tx_hashes"]
    assert int(outcome["realized_profit"]) == amount_out - amount_in  # base units, as the pools paid
    tip, fees = int(found[0]["builder_payment_wei"]), int(found[0]["gas_price_wei"])
    assert int(outcome["gas_paid_wei"]) == fees + tip and int(outcome["builder_paid_wei"]) == tip  # lamports
    assert fees == 5_000 + 400_000 * 1_000 // 1_000_000  # base fee + compute_unit_limit * price (micro-lamports)
    assert outcome["included_block"] is not None

    text = metrics.decode()
    assert 'mev_opportunities_found_total{chain="solana",strategy="solana_arb"}' in text
    assert 'mev_executions_total{chain="solana",outcome="landed",strategy="solana_arb"} 1.0' in text
    assert 'mev_strategy_pool_updates_total{chain="solana",strategy="solana_arb"}' in text


def test_run_dry_run_sends_nothing(standin: RunningStandIn, world: World, tmp_path: Path) -> None:
    """Not live: simulated (the payer and the block engine's tip accounts are there), never sent."""
    config = agent_config(standin, world, tmp_path, live=False, signer=True)
    base_before = world.balance(world.ours[world.base])

    async def go() -> tuple[dict[str, Any], list[str]]:
        agent, route = await started(config, world)
        try:
            return await settled(agent), list(route.executor.sent)  # type: ignore[union-attr]
        finally:
            await agent.stop()

    entry, sent = asyncio.run(go())
    assert entry["status"] == Status.DRY_RUN and entry["reason"] == "dry-run: not sent", entry["reason"]
    assert sent == [] and world.balance(world.ours[world.base]) == base_before


def test_run_risk_gate_refuses_before_signing(standin: RunningStandIn, world: World, tmp_path: Path) -> None:
    config = agent_config(standin, world, tmp_path, live=True, signer=True, risk={"max_position_size_usd": 1.0})
    base_before = world.balance(world.ours[world.base])

    async def go() -> tuple[dict[str, Any], list[str]]:
        agent, route = await started(config, world)
        try:
            return await settled(agent), list(route.executor.sent)  # type: ignore[union-attr]
        finally:
            await agent.stop()

    entry, sent = asyncio.run(go())
    assert entry["status"] == Status.REJECTED and entry["reason"].startswith("max_position_size"), entry["reason"]
    assert sent == [] and world.balance(world.ours[world.base]) == base_before


def test_run_without_a_key_reports_unsimulated(standin: RunningStandIn, world: World, tmp_path: Path) -> None:
    config = agent_config(standin, world, tmp_path, live=False, signer=False)

    async def go() -> dict[str, Any]:
        agent, route = await started(config, world)
        try:
            assert route.executor is None
            return await settled(agent)
        finally:
            await agent.stop()

    entry = asyncio.run(go())
    assert entry["status"] == Status.DRY_RUN and "not simulated" in entry["reason"]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda c: c.pop("ws_url"), "solana: set http_url (Solana JSON-RPC) and ws_url"),
        (lambda c: c.update(contract="0x" + "1" * 40), "contract are EVM settings"),
        (lambda c: c.update(pending_transactions=True), "pending_transactions are EVM settings"),
        (lambda c: c.update(swap_router="0x" + "2" * 40), "swap_router are EVM settings"),
        (lambda c: c.update(live=True), "live: true needs signing_key_file"),
        (lambda c: c["solana"]["pools"][0].update(address="0x" + "1" * 40), "solana.pools.0.address"),
        (lambda c: c["solana"]["pools"].append(dict(c["solana"]["pools"][0])), "an address is listed twice"),
        (lambda c: c["solana"]["pools"][0].update(kind="serum"), "solana.pools.0.kind"),
    ],
)
def test_solana_chain_config_refused_naming_the_field(tmp_path: Path, change, refusal: str) -> None:
    chain: dict[str, Any] = {
        "name": "solana",
        "chain_id": 101,
        "http_url": "http://127.0.0.1:8899",
        "ws_url": "ws://127.0.0.1:8899",
        "max_gas_price_gwei": 100,
        "solana": {
            "pools": [{"kind": "orca_whirlpool", "address": "11111111111111111111111111111111"}],
            "sol_usd": 150,
        },
    }
    data = {"state_dir": str(tmp_path), "api": {"token_file": str(secret(tmp_path / "t", "t" * 32))}, "chains": [chain]}
    assert validate(data).chains[0].solana is not None  # the unchanged one is valid
    change(chain)
    with pytest.raises(ValueError, match=r"chains\.solana") as refused:
        validate(data)
    assert refusal in str(refused.value)


def send_swap(standin: RunningStandIn, world: World, trader: Keypair, accounts: dict, mint_in, amount_in: int) -> str:
    """`trader` swaps `amount_in` on world.pools[0] at its exact quote (settled as SPL transfers), over RPC."""
    pool_accounts = world.pools[0]
    book = PoolBook()
    book.add("raydium_cpmm", pool_accounts.address)
    for _ in range(2):
        keys = book.accounts()
        found = standin.call("getMultipleAccounts", [str(k) for k in keys], {"encoding": "base64"})["value"]
        book.apply_many([(k, account_data(a)) for k, a in zip(keys, found, strict=True)])
    pool = book.pools[pool_accounts.address]
    zero_for_one = mint_in == pool.mints[0]
    out = pool.quote(amount_in, zero_for_one)
    vault_in, vault_out = (
        (pool_accounts.vault_a, pool_accounts.vault_b)
        if zero_for_one
        else (pool_accounts.vault_b, pool_accounts.vault_a)
    )
    mint_out = pool.mints[1] if zero_for_one else pool.mints[0]
    ixs = [
        spl_transfer(accounts[mint_in], vault_in, trader.pubkey(), amount_in),
        spl_transfer(vault_out, accounts[mint_out], world.authority.pubkey(), out),
    ]
    blockhash = Hash.from_string(standin.call("getLatestBlockhash")["value"]["blockhash"])
    tx = VersionedTransaction(MessageV0.try_compile(trader.pubkey(), ixs, [], blockhash), [trader, world.authority])
    return standin.call("sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"})


def trader(standin: RunningStandIn, world: World, base: int) -> tuple[Keypair, dict]:
    keypair = Keypair()
    standin.call("requestAirdrop", str(keypair.pubkey()), SOL)
    accounts = {}
    for mint, amount in ((world.base, base), (world.other, 0)):
        accounts[mint] = Keypair().pubkey()
        put(standin, accounts[mint], token_account_data(mint, keypair.pubkey(), amount), TOKEN_PROGRAM)
    return keypair, accounts


def test_run_classifies_a_sandwich_in_a_slot_from_getblock(
    standin: RunningStandIn, world: World, tmp_path: Path
) -> None:
    """A front-run, a victim and a back-run landed in one slot of the simulator; the agent's slot classifier
    reads that slot with getBlock after the next one starts and writes its classification (the same sink
    as the EVM classifier: files, and the bus when configured)."""
    out = tmp_path / "classified"
    config = agent_config(standin, world, tmp_path, live=False, signer=False, analytics={"out_dir": str(out)})
    attacker, attacker_acc = trader(standin, world, 100 * SOL)
    victim, victim_acc = trader(standin, world, 100 * SOL)

    async def go() -> tuple[dict[str, Any], int, int]:
        agent, _ = await started(config, world)
        try:
            await ready(agent)
            standin.call("standin_pauseTicker")
            slot = standin.call("getSlot")
            before = world.balance(attacker_acc[world.base])
            front = send_swap(standin, world, attacker, attacker_acc, world.base, 10 * SOL)
            victim_tx = send_swap(standin, world, victim, victim_acc, world.base, 5 * SOL)
            bought = world.balance(attacker_acc[world.other])
            back = send_swap(standin, world, attacker, attacker_acc, world.other, bought)
            profit = world.balance(attacker_acc[world.base]) - before
            standin.call("standin_advanceSlots", 1)
            standin.call("standin_resumeTicker")
            path = out / f"{slot}.json"
            async with asyncio.timeout(10):
                while not path.exists():
                    await asyncio.sleep(0.05)
            return {"doc": json.loads(path.read_text()), "txs": (front, victim_tx, back)}, profit, slot
        finally:
            standin.call("standin_resumeTicker")
            await agent.stop()

    found, profit, slot = asyncio.run(go())
    doc, (front, victim_tx, back) = found["doc"], found["txs"]
    assert doc["block_number"] == slot and doc["sources"] == ["token_balances"]
    (sandwich,) = doc["sandwiches"]
    assert (sandwich["frontrun_tx"], sandwich["victim_txs"], sandwich["backrun_tx"]) == (front, [victim_tx], back)
    assert int(sandwich["profit_amount"]) == profit > 0 and sandwich["profit_token"] == str(world.base)
    (loss,) = doc["victim_losses"]
    assert loss["tx"] == victim_tx and int(loss["amount"]) > 0 and int(loss["shortfall"]) > 0


def test_run_sends_at_the_compute_price_an_operator_set(standin: RunningStandIn, world: World, tmp_path: Path) -> None:
    """A strategies change at run time (what POST /config applies) re-sizes with the new compute-unit price, and
    the landed transaction asks for exactly that price: its priority fee is the one the cycle was sized with."""
    config = agent_config(standin, world, tmp_path, live=True, signer=True)

    async def go() -> tuple[dict[str, Any], SolanaRoute]:
        agent = await Agent.build(config)
        section = agent.settings.strategies["solana_arb"]
        agent.settings.replace(
            strategies={
                **agent.settings.strategies,
                "solana_arb": section.updated({"compute_unit_price_micro_lamports": 25_000}),
            }
        )
        route = agent.chains["solana"].routes["solana_bundle"]
        assert isinstance(route, SolanaRoute) and route.executor is not None
        route.executor.venues = {"raydium_cpmm": settle_by_transfers(world.authority)}
        await agent.start()
        try:
            return await settled(agent, Status.LANDED), route
        finally:
            await agent.stop()

    entry, route = asyncio.run(go())
    (report,) = [r for r in route.reports if r.gas_paid is not None]
    assert report.gas_paid == 5_000 + 400_000 * 25_000 // 1_000_000  # base fee + limit x price, in lamports
    params = {"encoding": "base64", "maxSupportedTransactionVersion": 0}
    block = standin.call("getBlock", report.included_block, params)
    txs = [VersionedTransaction.from_bytes(base64.b64decode(t["transaction"][0])) for t in block["transactions"]]
    (landed,) = [t for t in txs if str(t.signatures[0]) == entry["tx_hashes"][0]]
    keys = landed.message.account_keys
    budget = [
        bytes(ix.data)
        for ix in landed.message.instructions
        if str(keys[ix.program_id_index]).startswith("ComputeBudget")
    ]
    assert bytes([3]) + (25_000).to_bytes(8, "little") in budget  # SetComputeUnitPrice
    assert bytes([2]) + (400_000).to_bytes(4, "little") in budget  # SetComputeUnitLimit


def test_run_refuses_to_start_when_the_block_engine_does_not_answer(
    standin: RunningStandIn, world: World, tmp_path: Path
) -> None:
    config = agent_config(standin, world, tmp_path, live=True, signer=True)
    chain = config.chains[0]
    assert chain.solana is not None
    engines = [{"name": "gone", "url": f"http://127.0.0.1:{free_port()}/api/v1/bundles"}]
    solana = {**chain.solana.model_dump(), "block_engines": engines}
    config = config.updated({"chains": [chain.updated({"solana": solana}).model_dump()]})

    with pytest.raises(StartupError, match=r"chains\.solana: solana_arb cannot run: block engine .*getTipAccounts"):
        asyncio.run(Agent.build(config))


def test_run_without_its_node_starts_not_ready_and_stops(tmp_path: Path) -> None:
    """The Solana node is away: the agent still starts (the collector keeps reconnecting), /ready says why,
    and SIGTERM's path (Agent.stop) ends it promptly."""
    gone = f"127.0.0.1:{free_port()}"
    data = {
        "state_dir": str(tmp_path / "state"),
        "api": {
            "token_file": str(secret(tmp_path / "token", "t" * 32)),
            "port": free_port(),
            "metrics_port": free_port(),
        },
        "chains": [
            {
                "name": "solana",
                "chain_id": 101,
                "http_url": f"http://{gone}",
                "ws_url": f"ws://{gone}",
                "max_gas_price_gwei": 100,
                "solana": {"pools": [{"kind": "raydium_cpmm", "address": str(Keypair().pubkey())}], "sol_usd": 150},
            }
        ],
        "strategies": {"solana_arb": {}},
    }

    async def go() -> dict[str, tuple[bool, str]]:
        agent = await Agent.build(validate(data))
        await agent.start()
        try:
            await asyncio.sleep(0.5)
            return {c.name: await run_check(c) for c in agent.chains["solana"].readiness()}
        finally:
            async with asyncio.timeout(5):
                await agent.stop()

    checks = asyncio.run(go())
    assert not checks["solana:node_synced"][0] and not checks["solana:state_fresh"][0], checks
    assert checks["solana:state_fresh"][1].startswith("pool state not loaded yet")
