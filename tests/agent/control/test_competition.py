"""Live classification reaching the control plane, and the competition analytics, with every part real: anvil
(the e2e world's DEX and ArbExecutor), Redis, PostgreSQL, the `mevcontrol` process and the agent as `mevagent
run` wires it (dry-run, on the bus, with `analytics:`).

A trader opens a price gap; our dry-run agent finds the arbitrage and does not land it (dry-run). A competitor
(a second account, with its own ArbExecutor deployed from the same published artifact) takes it in the next
block, paying a priority fee and a direct coinbase transfer. The agent classifies each new block after its hot
path and publishes it on the bus; the control plane stores it; GET :8080/api/analytics/competition names the
competitor (its EOA, its contract, the builder) and its profit exactly (the contract's balance change, and its
USD value at the agent's price of the token, with that price), and what it paid (from the receipt).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import yaml
from mevcontrol.ingest import Ingest
from redis.asyncio import Redis
from web3.logs import DISCARD

from mevagent.analytics.models import BlockClassification
from mevagent.bus.events import BlockClassified
from mevagent.core import Hop, Opportunity
from mevagent.executor.contract import contract_hops, execute_calldata
from mevagent.executor.deploy import Deployment, deploy_contract
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.rpc import HttpJsonRpc
from testbed.aave import ReserveSpec, deploy_aave
from testbed.arb import BuilderBehaviour, builders
from testbed.control import Operator, control_config, start_control
from testbed.e2e import CHAIN, World, agent_config, eventually, load, running, world_config
from testbed.services import Postgres, RedisServer
from testbed.strategy import E18

PRIORITY_FEE = 3 * 10**9  # wei per gas the competitor offers
COINBASE_PAYMENT = 7 * 10**15  # wei the competitor's contract sends to the block's coinbase


def _competitor(world: World, directory: Path) -> tuple[Signer, Deployment]:
    """A second searcher: its own key, its own ArbExecutor holding W, and ETH for gas and its builder payment."""
    key = directory / "competitor.key"
    address = write_new_key_file(key)
    world.node.w3.provider.make_request("anvil_setBalance", [address, hex(10 * E18)])
    signer = Signer.from_file(key)

    async def deploy() -> Deployment:
        async with aiohttp.ClientSession() as session:
            return await deploy_contract(HttpJsonRpc(world.http_url, session), signer)

    deployment = asyncio.run(deploy())
    dex = world.dex
    dex.chain.transact(dex.w.functions.transfer(world.w3.to_checksum_address(deployment.address), 50 * E18))
    world.node.w3.provider.make_request("anvil_setBalance", [deployment.address, hex(E18)])  # pays the builder
    return signer, deployment


def _take(world: World, signer: Signer, contract: str, entry: dict[str, Any], store: Any) -> dict[str, Any]:
    """The competitor executes the cycle our agent reported, through its own contract: its receipt."""
    hops = tuple(Hop(h["pool"], h["kind"], h["token_in"], h["token_out"]) for h in entry["hops"])
    opp = Opportunity(
        chain=CHAIN, strategy="dex_arb", block=entry["block"], hops=hops, amount_in=int(entry["amount_in"]),
        amount_out=int(entry["amount_out"]), gas_limit=0, gas_price=0, builder_payment=0, notional_usd=0.0,
        profit_usd=0.0, gas_cost_usd=0.0, found_ns=0,
    )  # fmt: skip
    w3 = world.w3
    data = execute_calldata(contract_hops(opp, store), opp.amount_in, 1, COINBASE_PAYMENT, w3.eth.block_number + 5)
    tx = {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(signer.address),
        "to": w3.to_checksum_address(contract),
        "value": 0,
        "data": data,
        "gas": 1_500_000,
        "maxPriorityFeePerGas": PRIORITY_FEE,
        "maxFeePerGas": PRIORITY_FEE + int(w3.eth.get_block("latest")["baseFeePerGas"]),
    }
    raw, tx_hash = signer.sign_transaction(tx)
    w3.eth.send_raw_transaction(raw)
    receipt = dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01))
    assert receipt["status"] == 1, receipt
    return receipt


async def _get(session: aiohttp.ClientSession, url: str, operator: Operator) -> tuple[int, Any]:
    async with session.get(url, headers=operator.auth) as response:
        return response.status, await response.json()


def test_the_competitor_that_took_our_opportunity_is_named_with_its_exact_profit_and_price(
    e2e_world: World, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    world = e2e_world
    signer, theirs = _competitor(world, tmp_path)
    viewer = Operator("vera", "viewer")
    path = control_config(tmp_path, redis_server, postgres, [viewer])
    control = start_control(path, tmp_path / "control.log")
    bus = {"agent": "seer1", "redis_url": redis_server.url, "password_file": str(redis_server.password_file)}
    analytics = {"classify_blocks": True, "traces": "parity", "out_dir": str(tmp_path / "classified")}
    dash = f"http://127.0.0.1:{yaml.safe_load(path.read_text())['listen']['dashboard_port']}"

    async def scenario() -> None:
        async with builders([BuilderBehaviour("builder")], world.http_url) as (builder,):
            (tmp_path / "agent").mkdir()
            config = world_config(world, tmp_path / "agent", builder.url, live=False, bus=bus, analytics=analytics)
            async with running(config) as (agent, api), aiohttp.ClientSession() as session:
                await eventually(api.ready, 30, "/ready")
                store = agent.chains[CHAIN].store
                block = await asyncio.to_thread(world.gap)

                async def seen() -> dict[str, Any] | None:
                    entries = await api.opportunities()
                    return next((e for e in entries if e["block"] == block and e["status"] == "dry_run"), None)

                entry = await eventually(seen, 30, "our dry-run agent's opportunity of the gap block")
                w = world.dex.w
                held = int(w.functions.balanceOf(world.w3.to_checksum_address(theirs.address)).call())
                receipt = await asyncio.to_thread(_take, world, signer, theirs.address, entry, store)
                profit = int(w.functions.balanceOf(world.w3.to_checksum_address(theirs.address)).call()) - held
                assert profit > 0
                taken_block = int(receipt["blockNumber"])
                head = world.w3.eth.get_block(taken_block)

                async def named() -> dict[str, Any] | None:
                    try:
                        status, body = await _get(session, f"{dash}/api/analytics/competition?hours=1", viewer)
                    except aiohttp.ClientConnectorError:
                        return None  # the control plane is still starting

                    assert status == 200, body
                    ours = next((o for o in body["opportunities"] if o["block"] == block and o["taken_by"]), None)
                    return body if ours is not None else None

                body = await eventually(named, 60, "the competitor named on /api/analytics/competition")

                # Protection: the dry-run's sandwich exposure reached the history with its outcome.
                async def exposure() -> asyncpg.Record | None:
                    conn = await asyncpg.connect(postgres.dsn)
                    try:
                        return await conn.fetchrow(
                            "SELECT sandwich_exposure, sandwich_exposure_usd, token_usd_per_unit FROM outcomes "
                            "WHERE agent = 'seer1' AND status = 'dry_run' AND opportunity_id = $1",
                            entry["id"],  # the executor's id of the trade, the bus's too
                        )
                    finally:
                        await conn.close()

                stored = await eventually(exposure, 30, "the dry-run's outcome in PostgreSQL")
                assert int(stored["sandwich_exposure"]) == int(entry["sandwich_exposure"])
                assert float(stored["sandwich_exposure_usd"]) == entry["sandwich_exposure_usd"]

        missed = [o for o in body["opportunities"] if o["block"] == block and o["taken_by"]]
        (ours,) = [o for o in missed if o["pools"] == [h["pool"] for h in entry["hops"]]]
        assert ours["agent"] == "seer1" and ours["expected_profit"] == str(
            int(entry["amount_out"]) - int(entry["amount_in"])
        )
        taker = ours["taken_by"]
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        gas_used, price = int(receipt["gasUsed"]), int(receipt["effectiveGasPrice"])
        assert taker == {
            "kind": "arbitrage",
            "block": taken_block,
            "blocks_after": taken_block - block,
            "tx": tx_hash,
            "tx_index": int(receipt["transactionIndex"]),
            "searcher": signer.address.lower(),
            "contract": theirs.address.lower(),
            "account": theirs.address.lower(),
            "builder": str(head["miner"]).lower(),
            "same_pools": True,
            "profit_token": world.dex.base,
            "profit_amount": str(profit),
            # W is priced at 1 USD per token by the agent's pricing: 1e-18 USD per base unit.
            "profit_usd": str(Decimal(profit) * Decimal("1e-18")),
            "profit_usd_per_unit": "1E-18",
            "path": [h["token_in"] for h in entry["hops"]] + [world.dex.base],
            "gas_used": str(gas_used),
            "effective_gas_price_wei": str(price),
            "gas_paid_wei": str(gas_used * price),
            "priority_fee_wei": str((price - int(head["baseFeePerGas"])) * gas_used),
            "coinbase_transfer_wei": str(COINBASE_PAYMENT),
        }
        (competitor,) = [s for s in body["searchers"] if s["searcher"] == signer.address.lower()]
        assert competitor["contracts"] == [theirs.address.lower()] and competitor["taken"] >= 1
        # Its one transaction, counted once however many of our opportunities it took.
        assert competitor["transactions"] == 1 and competitor["profit"] == {world.dex.base: str(profit)}

        # The block as stored: classified by our agent, its coinbase and the price the agent used.
        conn = await asyncpg.connect(postgres.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT agent, block_hash, coinbase, prices, document FROM block_classifications "
                "WHERE chain = $1 AND block = $2",
                CHAIN,
                taken_block,
            )
        finally:
            await conn.close()
        assert row["agent"] == "seer1" and row["block_hash"] == "0x" + bytes(head["hash"]).hex()
        assert row["coinbase"] == str(head["miner"]).lower() and orjson.loads(row["prices"]) == {
            world.dex.base: "1e-18"
        }
        # Lean on the bus: the arbitrage's own swaps (its pools), no transfers; the agent's file has them all.
        document = orjson.loads(row["document"])
        assert document["transfers"] == [] and {s["tx"] for s in document["swaps"]} == {tx_hash}
        assert [s["pool"] for s in document["swaps"]] == [h["pool"] for h in entry["hops"]]
        on_disk = orjson.loads((tmp_path / "classified" / f"{taken_block}.json").read_bytes())
        assert on_disk["transfers"] and on_disk["arbitrages"] == document["arbitrages"]

    try:
        asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(20)


def test_a_block_classification_is_stored_once_and_a_newer_one_replaces_it(
    redis_server: RedisServer, postgres: Postgres
) -> None:
    """Idempotent by (chain, block): a redelivered event writes nothing new, an older one is ignored, a newer
    one (a reorg: another hash) replaces the block's rows."""

    def event(block_hash: str, at: float, profit: int) -> BlockClassified:
        classification = BlockClassification.model_validate(
            {
                "block_number": 7, "block_hash": block_hash, "coinbase": "0x" + "c0" * 20, "sources": ["logs"],
                "sandwiches": [], "liquidations": [], "jit": [], "swaps": [], "transfers": [], "payments": [],
                "unresolved_swaps": 0, "prices": {"0x" + "aa" * 20: "2.5E-6"},
                "arbitrages": [{"tx": "0x" + "01" * 32, "account": "0x" + "bb" * 20, "profit_token": "0x" + "aa" * 20,
                                "profit_amount": profit, "path": ["0x" + "aa" * 20], "reverted": False}],
            }
        )  # fmt: skip
        return BlockClassified(agent="seer2", chain="idem", classification=classification, at=at)

    async def scenario() -> None:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            ingest = Ingest(redis, pool)
            now = time.time()
            first = event("0x" + "11" * 32, now, 10**30 + 1)
            await ingest.write([first])
            await ingest.write([first])  # redelivered
            await ingest.write([event("0x" + "22" * 32, now - 60, 5)])  # older: ignored
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT profit_amount, profit_usd, profit_usd_per_unit FROM mev_arbitrages "
                                        "WHERE chain = 'idem'")  # fmt: skip
                assert [(int(r[0]), r[1], r[2]) for r in rows] == [
                    (10**30 + 1, Decimal(10**30 + 1) * Decimal("2.5E-6"), Decimal("2.5E-6"))
                ]
            await ingest.write([event("0x" + "33" * 32, now + 1, 9)])  # newer (a reorg): replaces
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT profit_amount FROM mev_arbitrages WHERE chain = 'idem'")
                assert [int(r[0]) for r in rows] == [9]
                stored = await conn.fetchval("SELECT block_hash FROM block_classifications WHERE chain = 'idem'")
                assert stored == "0x" + "33" * 32
        finally:
            await redis.aclose()
            await pool.close()

    asyncio.run(scenario())


def test_the_liquidator_that_took_a_liquidation_our_agent_saw_is_named_with_what_it_repaid_and_seized(
    e2e_world: World, redis_server: RedisServer, postgres: Postgres, tmp_path: Path
) -> None:
    """An Aave V3 market (@aave/core-v3) on the same chain: a price drop makes a borrower liquidatable, our
    dry-run agent (liquidations only: no pool state, so its classifier polls the head) reports the
    liquidation, another account performs it; the route names that liquidator with the debt it repaid and
    the collateral it seized (the Pool's LiquidationCall event)."""
    world = e2e_world
    chain, w3 = world.dex.chain, world.w3
    market = deploy_aave(chain, [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)])
    lender, borrower, liquidator = (w3.to_checksum_address(f"0x{0x14C0 + i:040x}") for i in range(3))
    for user in (lender, borrower, liquidator):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    viewer = Operator("vic", "viewer")
    path = control_config(tmp_path, redis_server, postgres, [viewer])
    control = start_control(path, tmp_path / "control.log")
    dash = f"http://127.0.0.1:{yaml.safe_load(path.read_text())['listen']['dashboard_port']}"
    anvil = {
        "name": CHAIN, "chain_id": w3.eth.chain_id, "ipc_path": str(world.node.ipc_path), "ws_url": world.node.ws_url,
        "live": False, "max_gas_price_gwei": 100, "endpoints": [],
        "wrapped_native": market.asset("WETH"), "max_head_age_s": 3600, "max_state_age_s": 3600,
        "lending": [{"name": "aave_v3", "addresses_provider": str(market.provider.address)}],
    }  # fmt: skip
    (tmp_path / "agent").mkdir()
    config = load(
        agent_config(
            tmp_path / "agent",
            [anvil],
            strategies={"aave_liquidation": {"min_profit_threshold": 0, "min_profit_bps": 0}},
            bus={"agent": "seer3", "redis_url": redis_server.url, "password_file": str(redis_server.password_file)},
            # No factories: no pool collector whose heads the classifier could tap; it polls the node's head.
            analytics={"classify_blocks": True, "traces": "parity", "head_poll_s": 0.2},
        )
    )
    borrower_lc = borrower.lower()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with running(config) as (agent, api), aiohttp.ClientSession() as session:
            strategy = agent.chains[CHAIN].strategies["aave_liquidation"]
            await eventually(lambda: _async(strategy.book is not None), 30, "the market loaded into the strategy")
            await asyncio.to_thread(market.supply, lender, "USDC", 1_000_000 * 10**6)
            await asyncio.to_thread(market.supply, borrower, "WETH", 10 * 10**18)
            await asyncio.to_thread(market.borrow, borrower, "USDC", 15_000 * 10**6)
            await asyncio.to_thread(market.fund, liquidator, "USDC", 10**9 * 10**6)
            await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)  # health factor 0.99

            async def reported() -> dict[str, Any] | None:
                found = [o for o in await api.opportunities() if o["strategy"] == "aave_liquidation"]
                return next((o for o in found if o["user"] == borrower_lc and o["status"] == "dry_run"), None)

            entry = await eventually(reported, 30, "our dry-run liquidation report")
            w3.provider.make_request("evm_setNextBlockTimestamp", [entry["valued_at"]])
            pool = market.pool.functions
            call = pool.liquidationCall(
                market.asset("WETH"), market.asset("USDC"), borrower, int(entry["debt_to_cover"]), False
            )
            receipt = await asyncio.to_thread(market._send, liquidator, call)

            async def named() -> dict[str, Any] | None:
                try:
                    status, body = await _get(session, f"{dash}/api/analytics/competition?hours=1&blocks=10", viewer)
                except aiohttp.ClientConnectorError:
                    return None  # the control plane is still starting
                assert status == 200, body
                mine = [o for o in body["opportunities"] if o["liquidated_user"] == borrower_lc and o["taken_by"]]
                return mine[0] if mine else None

            return entry, receipt, await eventually(named, 60, "the liquidator named on /api/analytics/competition")

    try:
        entry, receipt, ours = asyncio.run(scenario())
    finally:
        control.terminate()
        control.wait(20)
    (event,) = market.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)
    head = w3.eth.get_block(receipt["blockNumber"])
    assert (ours["agent"], ours["strategy"], ours["token"]) == (
        "seer3",
        "aave_liquidation",
        market.asset("USDC").lower(),
    )
    assert ours["expected_profit"] is None  # two tokens: its USD figure stands for it
    gas_used, price = int(receipt["gasUsed"]), int(receipt["effectiveGasPrice"])
    assert ours["taken_by"] == {
        "kind": "liquidation",
        "block": int(receipt["blockNumber"]),
        "blocks_after": int(receipt["blockNumber"]) - entry["block"],
        "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        "tx_index": int(receipt["transactionIndex"]),
        "searcher": liquidator.lower(),
        "contract": str(market.pool.address).lower(),
        "account": liquidator.lower(),
        "builder": str(head["miner"]).lower(),
        "debt_token": market.asset("USDC").lower(),
        "debt_amount": str(event["args"]["debtToCover"]),
        "debt_usd": None,  # this agent's pricing has no price for the market's tokens
        "debt_usd_per_unit": None,
        "collateral_token": market.asset("WETH").lower(),
        "collateral_amount": str(event["args"]["liquidatedCollateralAmount"]),
        "collateral_usd": None,
        "collateral_usd_per_unit": None,
        "profit_usd": None,
        "gas_used": str(gas_used),
        "effective_gas_price_wei": str(price),
        "gas_paid_wei": str(gas_used * price),
        "priority_fee_wei": str((price - int(head["baseFeePerGas"])) * gas_used),
        "coinbase_transfer_wei": "0",
    }
    assert int(event["args"]["debtToCover"]) == int(entry["debt_to_cover"])


async def _async(value: bool) -> bool:
    return value
