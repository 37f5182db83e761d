"""The control plane's PostgreSQL sink for block classifications (Alembic revision 0002), on a real
PostgreSQL, fed by the agent's live classifier from a real anvil block with a sandwich in it; the sandwich
detector's risk signals matched there with who sandwiched or JIT'd them (competition analytics)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from mevcontrol.classifications import PostgresClassificationSink
from mevcontrol.competition import competition
from mevcontrol.db import alembic_config
from mevcontrol.ingest import Ingest
from mevcontrol.models import CompetitionQuery, SandwichesQuery
from mevcontrol.sandwiches import sandwiches
from redis.asyncio import Redis
from web3.logs import DISCARD

from mevagent.analytics.live import LiveClassifier
from mevagent.analytics.monitor import DetectorConfig, RouterSpec, SandwichMonitor
from mevagent.analytics.routers import decode_swaps
from mevagent.analytics.sandwich_risk import PoolIndex, score_swap
from mevagent.bus.events import OpportunityFound
from mevagent.executor.rpc import HttpJsonRpc
from testbed.analytics import DEADLINE, World, build_world, narrow_mint, next_token_id, pool_store
from testbed.control import Operator, control_config
from testbed.evm import V2_CORE, Chain, deploy_token, set_v2_reserves
from testbed.services import Postgres, RedisServer


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
    a = world.addr(world.a)
    pricing = tmp_path / "pricing.yml"  # the chain's `pricing:` section, as in the agent's config
    pricing.write_text(orjson.dumps({"native_token": a, "tokens": {a: {"usd": 3.0, "decimals": 18}}}).decode())
    done = backfill(*rangeargs, "--cursor", str(cursor), "--batch", "1", "--pricing", str(pricing))
    assert done.returncode == 0, done.stderr
    assert "classified 2 block(s)" in done.stdout and orjson.loads(cursor.read_bytes()) == {"next": number + 1}
    again = backfill(*rangeargs, "--cursor", str(cursor))  # resumed: nothing left to do
    assert again.returncode == 0 and "classified 0 block(s)" in again.stdout, again.stderr

    async def stored() -> None:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            blocks = await conn.fetch("SELECT block FROM block_classifications WHERE chain = 'filled' ORDER BY block")
            assert [r["block"] for r in blocks] == [number - 1, number]
            (row,) = await conn.fetch(
                "SELECT sandwicher, profit_amount, profit_usd, profit_usd_per_unit FROM mev_sandwiches "
                "WHERE chain = 'filled'"
            )
            assert row["sandwicher"] == s.lower() and row["profit_usd_per_unit"] == Decimal(repr(3.0 / 10**18))
            assert row["profit_usd"] == row["profit_amount"] * row["profit_usd_per_unit"]
        finally:
            await conn.close()

    asyncio.run(stored())


def _hash(value: Any) -> str:
    return "0x" + (value.hex() if isinstance(value, bytes) else str(value)).removeprefix("0x").lower()


def _mine_watched(world: World, calls: list[tuple[Any, str, bool]], monitor: SandwichMonitor) -> tuple[int, list[Any]]:
    """Send `calls` ((function, sender, watched)) in this order into one block; each watched transaction's pending
    body (eth_getTransactionByHash, as the agent's PendingBodies fetches it) goes to the sandwich detector first."""
    w3 = world.chain.w3
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = []
        for fn, sender, watched in calls:
            hashes.append(world.send(fn, sender))
            if watched:
                body = w3.provider.make_request("eth_getTransactionByHash", [_hash(hashes[-1])])["result"]
                assert body["blockNumber"] is None  # still pending
                signal = monitor.observe(body)
                assert signal is not None and signal.risk.max_profit > 0, signal
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.01) for h in hashes]
    assert [r["status"] for r in receipts] == [1] * len(calls) and len({r["blockNumber"] for r in receipts}) == 1
    return receipts[0]["blockNumber"], receipts


def test_sandwich_risks_are_matched_with_who_sandwiched_or_jitted_them_and_at_what_price(
    chain: Chain, redis_server: RedisServer, postgres: Postgres
) -> None:
    """The detector scores pending victims (one sandwiched, one JIT'd, one left alone) and publishes the
    sandwichable ones; the live classifier stores the blocks; the competition answer names, per signal, the
    sandwicher with its exact profit (the searcher's balance change, in USD at the agent's price) against the
    predicted one, or the JIT provider with what its position put in and took out, and what each leg paid."""
    w = build_world(chain)
    s, v1, v2, other, jit = (w.actors[n] for n in ("searcher", "victim1", "victim2", "user1", "jit"))
    a = w.addr(w.a)
    price = {a: 2e-18}
    published: list[Any] = []
    routers = {str(r.address).lower(): RouterSpec() for r in (w.router02, w.swap_router)}

    def monitor() -> SandwichMonitor:  # scores against the pools as they are now
        config = DetectorConfig(chain="anvil", routers=routers)
        return SandwichMonitor(config, pool_store(w), bus=("seer", published.append), price=price.get)

    # Block 1: a sandwich around victim1 (the optimal one the detector predicts); a swap on another pool untouched.
    amount = 2 * 10**21
    quote = w.router02.functions.getAmountsOut(amount, [w.a.address, w.b.address]).call()[-1]
    victim = w.v2_path_swap(v1, [w.a, w.b], amount, quote * 995 // 1000)
    (decoded,) = decode_swaps(str(victim._encode_transaction_data()))
    risk = score_swap(PoolIndex(pool_store(w)), decoded)
    assert risk is not None and risk.max_profit > 0
    alone_quote = w.router02.functions.getAmountsOut(10**21, [w.b.address, w.c.address]).call()[-1]
    before, victim_before = w.balance(w.a, s), w.balance(w.b, v1)
    sandwich_block, sandwich = _mine_watched(
        w,
        [
            (w.v2_path_swap(s, [w.a, w.b], risk.frontrun_amount_in), s, False),
            (victim, v1, True),
            (w.v2_path_swap(s, [w.b, w.a], risk.backrun_amount_in), s, False),
            (w.v2_path_swap(other, [w.b, w.c], 10**21, alone_quote * 99 // 100), other, True),
        ],
        monitor(),
    )
    profit = w.balance(w.a, s) - before
    assert profit == risk.max_profit  # the prediction, to the wei
    received = w.balance(w.b, v1) - victim_before

    # Block 2: JIT liquidity around victim2's V3 swap.
    token_id = next_token_id(w)
    mint, (_lower, _upper, liquidity, amount0, amount1) = narrow_mint(w, jit, 10**23)
    v3_quote = w.swap_router.functions.exactInputSingle(
        (w.a.address, w.b.address, 3000, v2, DEADLINE, 3 * 10**21, 0, 0)
    ).call({"from": v2})
    jit_block, jitted = _mine_watched(
        w,
        [
            (mint, jit, False),
            (w.v3_single_swap(v2, w.a, w.b, 3 * 10**21, v3_quote * 99 // 100), v2, True),
            (w.npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, DEADLINE)), jit, False),
        ],
        monitor(),
    )
    (decreased,) = w.npm.events.DecreaseLiquidity().process_receipt(jitted[2], errors=DISCARD)
    assert [e.kind for e in published] == ["sandwich_risk"] * 3
    url = str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            await Ingest(redis, pool).write(published)  # as the control plane's consumer stores them
            sink = PostgresClassificationSink(pool, "anvil")
            async with aiohttp.ClientSession() as session:
                live = LiveClassifier("anvil", HttpJsonRpc(url, session).call, sink, price=price.get)
                await live.classify(sandwich_block)
                await live.classify(jit_block)
            async with pool.acquire() as conn:
                return (
                    await competition(conn, CompetitionQuery(hours=1, chain="anvil")),
                    await sandwiches(conn, SandwichesQuery(hours=1, chain="anvil")),
                )
        finally:
            await redis.aclose()
            await pool.close()

    answer, view = asyncio.run(scenario())
    body = answer["sandwich_risks"]
    assert (body["seen"], body["sandwiched"], body["jit"]) == (3, 1, 1)
    signals = {x["tx"]: x for x in body["signals"]}
    paid = lambda rs: str(sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for r in rs))  # noqa: E731
    head = chain.w3.eth.get_block(sandwich_block)
    taken = signals[_hash(sandwich[1]["transactionHash"])]
    assert (taken["sender"], taken["router"], taken["pool"]) == (
        v1.lower(),
        str(w.router02.address).lower(),
        str(w.pairs["ab"].address).lower(),
    )
    assert (taken["predicted_profit_token"], taken["predicted_profit"], taken["limit"]) == (
        a,
        str(risk.max_profit),
        str(quote * 995 // 1000),
    )
    assert Decimal(taken["predicted_profit_usd"]) == Decimal(risk.max_profit) * Decimal("2E-18")
    assert taken["jit_by"] is None and taken["sandwiched_by"] == {
        "block": sandwich_block,
        "frontrun_tx": _hash(sandwich[0]["transactionHash"]),
        "backrun_tx": _hash(sandwich[2]["transactionHash"]),
        "victim_txs": [_hash(sandwich[1]["transactionHash"])],
        "searcher": s.lower(),
        "contract": str(w.router02.address).lower(),
        "sandwicher": s.lower(),
        "builder": str(head["miner"]).lower(),
        "profit_token": a,
        "profit_amount": str(profit),
        "profit_usd": str(Decimal(profit) * Decimal("2E-18")),
        "profit_usd_per_unit": "2E-18",
        "gas_paid_wei": paid([sandwich[0], sandwich[2]]),
        "priority_fee_wei": str(
            sum((int(r["effectiveGasPrice"]) - int(head["baseFeePerGas"])) * int(r["gasUsed"]) for r in sandwich[::2])
        ),
        "coinbase_transfer_wei": "0",
    }
    alone = signals[_hash(sandwich[3]["transactionHash"])]
    assert alone["sandwiched_by"] is None and alone["jit_by"] is None and int(alone["predicted_profit"]) > 0
    jitted_signal = signals[_hash(jitted[1]["transactionHash"])]
    assert jitted_signal["sandwiched_by"] is None and jitted_signal["jit_by"] == {
        "block": jit_block,
        "mint_tx": _hash(jitted[0]["transactionHash"]),
        "burn_tx": _hash(jitted[2]["transactionHash"]),
        "provider": jit.lower(),
        "pool": str(w.v3_pool.address).lower(),
        "liquidity": str(liquidity),
        "builder": str(chain.w3.eth.get_block(jit_block)["miner"]).lower(),
        "mint_amounts": [str(amount0), str(amount1)],
        "burn_amounts": [str(decreased["args"]["amount0"]), str(decreased["args"]["amount1"])],
        "gas_paid_wei": paid([jitted[0], jitted[2]]),
        "priority_fee_wei": "0",
        "coinbase_transfer_wei": "0",
    }
    # The sandwich view: the victim's loss is its quote less what it received on chain (the optimal sandwich
    # leaves it about its limit), in B at the agent's price where it has one (none for B here).
    assert received >= quote * 995 // 1000
    losses = {x["tx"]: x["victim_loss"] for x in view["signals"]}
    assert losses[_hash(sandwich[1]["transactionHash"])] == {
        "side": "exact_input", "token": w.addr(w.b), "quoted": str(quote), "realized": str(received),
        "amount": str(quote - received), "usd": None, "usd_per_unit": None,
    }  # fmt: skip
    assert losses[_hash(sandwich[3]["transactionHash"])] is None and losses[_hash(jitted[1]["transactionHash"])] is None
    (taker,) = view["sandwichers"]
    assert (taker["searcher"], taker["victims"], taker["profit"]) == (s.lower(), 1, {a: str(profit)})
    assert (view["seen"], view["sandwiched"], view["jit"]) == (3, 1, 1)


def test_an_arbitrage_over_another_route_through_our_pools_is_named_when_no_one_took_our_exact_cycle(
    chain: Chain, redis_server: RedisServer, postgres: Postgres
) -> None:
    """Our agent's cycle A -> B -> C -> A (pairs ab, bc, ca) is taken by a searcher going A -> D -> B -> C -> A (a
    new token D: pairs ad, db), two of our pools: the answer names it with `same_pools` false; an opportunity over
    exactly its four pools names it with `same_pools` true."""
    w = build_world(chain)
    d = deploy_token(chain)
    pairs = {}
    for name, left, right, amount_left, amount_right in (
        ("ad", w.a, d, 10**22, 10**22),
        ("db", d, w.b, 10**22, 2 * 10**22),
    ):
        chain.transact(w.v2_factory.functions.createPair(left.address, right.address))
        pair = chain.at(
            f"{V2_CORE}/UniswapV2Pair.json", w.v2_factory.functions.getPair(left.address, right.address).call()
        )
        if int(left.address, 16) < int(right.address, 16):
            set_v2_reserves(chain, pair, left, right, amount_left, amount_right)
        else:
            set_v2_reserves(chain, pair, right, left, amount_right, amount_left)
        pairs[name] = str(pair.address).lower()
    ours = [str(w.pairs[n].address).lower() for n in ("ab", "bc", "ca")]
    arber = w.actors["arber"]
    path = [w.a, d, w.b, w.c, w.a]
    assert w.router02.functions.getAmountsOut(10**20, [t.address for t in path]).call()[-1] > 10**20
    before = w.balance(w.a, arber)
    number, (receipt,) = w.mine([(w.v2_path_swap(arber, path, 10**20), arber)])
    profit = w.balance(w.a, arber) - before
    theirs = [pairs["ad"], pairs["db"], ours[1], ours[2]]

    def found(opportunity_id: str, pools: list[str]) -> OpportunityFound:
        return OpportunityFound(
            agent="seer", chain="overlap", strategy="dex_arb", opportunity_id=opportunity_id, block=number - 1,
            token=w.addr(w.a), amount_in=10**20, amount_out=10**20 + 1, gas_limit=1, gas_price_wei=1,
            token_usd_per_unit=Decimal("1e-18"), notional_usd=Decimal(100), profit_usd=Decimal(0),
            gas_cost_usd=Decimal(0), hops=len(pools), pools=tuple(pools),
        )  # fmt: skip

    url = str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]

    async def scenario() -> dict[str, Any]:
        pool = await asyncpg.create_pool(postgres.dsn, min_size=1, max_size=2)
        redis = Redis.from_url(redis_server.url, password=redis_server.password)
        try:
            await Ingest(redis, pool).write([found("ours", ours), found("theirs", theirs)])
            async with aiohttp.ClientSession() as session:
                sink = PostgresClassificationSink(pool, "overlap")
                await LiveClassifier("overlap", HttpJsonRpc(url, session).call, sink).classify(number)
            async with pool.acquire() as conn:
                return await competition(conn, CompetitionQuery(hours=1, chain="overlap"))
        finally:
            await redis.aclose()
            await pool.close()

    body = asyncio.run(scenario())
    taken = {o["opportunity_id"]: o["taken_by"] for o in body["opportunities"]}
    assert set(taken) == {"ours", "theirs"}
    for opportunity_id, same in (("ours", False), ("theirs", True)):
        taker = taken[opportunity_id]
        assert taker is not None, opportunity_id
        assert (taker["tx"], taker["searcher"], taker["same_pools"], taker["profit_amount"], taker["path"]) == (
            _hash(receipt["transactionHash"]), arber.lower(), same, str(profit), [w.addr(t) for t in path],
        ), opportunity_id  # fmt: skip
