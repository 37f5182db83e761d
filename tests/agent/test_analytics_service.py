"""`mevagent classify`, `mevagent backfill` against anvil, and the sandwich detector's :8904-style API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from mevagent import metrics_names as names
from mevagent.analytics import classify_block
from mevagent.analytics.api import make_app
from mevagent.analytics.backfill import FileSink, backfill
from mevagent.analytics.live import LiveClassifier
from mevagent.analytics.monitor import DetectorConfig, RouterSpec, SandwichMonitor
from mevagent.cli import main
from mevagent.executor.rpc import HttpJsonRpc
from mevagent.metrics import AgentMetrics
from mevagent.pricing import Pricer, PricingConfig
from testbed.analytics import World, build_world, fetch_block, pool_store
from testbed.evm import Chain


@pytest.fixture(scope="module")
def world(chain: Chain) -> Iterator[World]:
    yield build_world(chain)


def rpc_url(world: World) -> str:
    return str(world.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


def sandwich_block(world: World) -> int:
    s, v = world.actors["searcher"], world.actors["victim1"]
    bought = world.router02.functions.getAmountsOut(10**20, [world.a.address, world.b.address]).call()[-1]
    number, _ = world.mine(
        [
            (world.v2_path_swap(s, [world.a, world.b], 10**20), s),
            (world.v2_path_swap(v, [world.a, world.b], 10**20), v),
            (world.v2_path_swap(s, [world.b, world.a], bought), s),
        ]
    )
    return number


def test_classify_cli_writes_its_shape(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    number = sandwich_block(world)
    raw = fetch_block(world.chain, number)
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps({k: raw[k] for k in ("block", "receipts", "traces")}))
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"block": {**raw["block"], "number": "soon"}, "receipts": raw["receipts"]}))
    out = tmp_path / "out"
    assert main(["classify", str(good), str(bad), "--out-dir", str(out)]) == 1
    assert f"{bad}: block.number: not a quantity" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [f"{number}.json"]  # nothing for the bad file
    written = orjson.loads((out / f"{number}.json").read_bytes())
    (sandwich,) = written["sandwiches"]
    assert set(sandwich) == {"frontrun_tx", "backrun_tx", "victim_txs", "sandwicher", "profit_token", "profit_amount"}
    assert isinstance(sandwich["profit_amount"], str) and int(sandwich["profit_amount"]) > 0
    assert sandwich["sandwicher"] == sandwich["sandwicher"].lower()
    assert {"sandwiches", "arbitrages", "liquidations", "jit", "swaps"} <= set(written)
    assert written == classify_block(raw).model_dump(mode="json")


def test_backfill_is_batched_and_resumes_from_its_cursor(world: World, tmp_path: Path) -> None:
    first = sandwich_block(world) - 4
    last = sandwich_block(world)
    out, cursor = tmp_path / "out", tmp_path / "cursor.json"
    done = asyncio.run(backfill(rpc_url(world), first, first + 2, FileSink(out), cursor=cursor, batch_size=2))
    assert done == 3 and orjson.loads(cursor.read_bytes()) == {"next": first + 3}
    # A second run over the whole range starts where the first stopped.
    assert (
        main(
            [
                "backfill",
                "--rpc",
                rpc_url(world),
                "--from",
                str(first),
                "--to",
                str(last),
                "--out-dir",
                str(out),
                "--cursor",
                str(cursor),
                "--batch",
                "3",
            ]
        )
        == 0
    )
    assert orjson.loads(cursor.read_bytes()) == {"next": last + 1}
    for number in range(first, last + 1):
        written = orjson.loads((out / f"{number}.json").read_bytes())
        assert written == classify_block(fetch_block(world.chain, number)).model_dump(mode="json"), number
    assert len(orjson.loads((out / f"{last}.json").read_bytes())["sandwiches"]) == 1
    # Geth-style nodes: the callTracer variant gives the same answer.
    geth = tmp_path / "geth"
    asyncio.run(backfill(rpc_url(world), last, last, FileSink(geth), traces="geth"))
    geth_result = orjson.loads((geth / f"{last}.json").read_bytes())
    assert geth_result["sandwiches"] == orjson.loads((out / f"{last}.json").read_bytes())["sandwiches"]


def test_backfill_refuses_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["backfill", "--rpc", "file:///etc/passwd", "--from", "1", "--to", "2", "--out-dir", str(tmp_path)]) == 2
    )
    assert "--rpc: not an http(s) URL" in capsys.readouterr().err
    assert (
        main(["backfill", "--rpc", "http://127.0.0.1:1", "--from", "5", "--to", "2", "--out-dir", str(tmp_path)]) == 2
    )
    assert "empty range 5..2" in capsys.readouterr().err


def test_offline_usd_values_come_from_the_live_price_source(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--pricing` (a chain's `pricing:` section): B at a configured price, A by the reference pair A/B. The
    backfill prices each block as the live classifier (the agent's Pricer on its pool store) does at that head:
    A from the pair's reserves at that very block; `mevagent classify` on block files has no pool state, so
    only B is priced there."""
    w, s, v = world, world.actors["searcher"], world.actors["victim2"]
    b, pair = w.addr(w.b), str(w.pairs["ab"].address).lower()
    pricing = {"native_token": b, "tokens": {b: {"usd": 2.0, "decimals": 18}, w.addr(w.a): {"reference_pool": pair}}}
    path = tmp_path / "pricing.yml"
    path.write_text(yaml.safe_dump({"pricing": pricing}))
    bought = w.router02.functions.getAmountsOut(10**20, [w.b.address, w.a.address]).call()[-1]
    in_b, _ = w.mine(
        [
            (w.v2_path_swap(s, [w.b, w.a], 10**20), s),
            (w.v2_path_swap(v, [w.b, w.a], 10**20), v),
            (w.v2_path_swap(s, [w.a, w.b], bought), s),
        ]
    )
    in_a = sandwich_block(w)
    config = PricingConfig.model_validate(pricing)

    async def live_and_backfill() -> dict[str, str]:
        async with aiohttp.ClientSession() as session:
            live = LiveClassifier("anvil", HttpJsonRpc(rpc_url(w), session).call, FileSink(tmp_path / "live"))
            live.price = Pricer(config, pool_store(w)).usd_per_unit  # the agent's store, right after the head
            result = await live.classify(in_a)
        await backfill(rpc_url(w), in_b, in_a, FileSink(tmp_path / "filled"), pricing=config, batch_size=2)
        return result.prices

    live_prices = asyncio.run(live_and_backfill())
    reserves = w.pairs["ab"].functions.getReserves().call(block_identifier=in_a)
    reserve_a, reserve_b = reserves[:2] if int(w.a.address, 16) < int(w.b.address, 16) else reserves[1::-1]
    assert live_prices == {w.addr(w.a): repr(reserve_b / reserve_a * (2.0 / 10**18))}
    filled = {n: orjson.loads((tmp_path / "filled" / f"{n}.json").read_bytes()) for n in (in_b, in_a)}
    assert filled[in_a]["prices"] == live_prices
    assert filled[in_b]["prices"] == {b: repr(2.0 / 10**18)} and filled[in_b]["sandwiches"][0]["profit_token"] == b
    # Offline files: the configured price only (a reference pool has no state without a node).
    files = []
    for number in (in_b, in_a):
        raw = fetch_block(w.chain, number)
        files.append(tmp_path / f"block{number}.json")
        files[-1].write_bytes(orjson.dumps({k: raw[k] for k in ("block", "receipts", "traces")}))
    out = tmp_path / "out"
    assert main(["classify", *map(str, files), "--out-dir", str(out), "--pricing", str(path)]) == 0
    assert orjson.loads((out / f"{in_b}.json").read_bytes())["prices"] == {b: repr(2.0 / 10**18)}
    assert orjson.loads((out / f"{in_a}.json").read_bytes())["prices"] == {}
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"native_token": b, "tokens": {b: {"usd": 2.0}}}))
    assert main(["classify", str(files[0]), "--out-dir", str(out), "--pricing", str(bad)]) == 2
    assert f"--pricing: {bad}: tokens." in capsys.readouterr().err


def test_detector_scores_pending_swaps_and_serves_them(world: World) -> None:
    w, victim = world, world.actors["victim2"]
    metrics = AgentMetrics()
    monitor = SandwichMonitor(
        DetectorConfig(chain="anvil", routers={w.router02.address: RouterSpec(), w.swap_router.address: RouterSpec()}),
        pool_store(w),
        metrics,
    )
    quote = w.router02.functions.getAmountsOut(10**21, [w.a.address, w.b.address]).call()[-1]
    request = w.chain.w3.provider.make_request
    request("evm_setAutomine", [False])
    try:
        pending = [
            w.send(w.v2_path_swap(victim, [w.a, w.b], 10**21, quote * 98 // 100), victim),
            w.send(w.v3_single_swap(victim, w.a, w.b, 10**18, 0), victim),
            w.send(w.a.functions.transfer(w.actors["user1"], 5), victim),  # not a router
        ]
        txs = [request("eth_getTransactionByHash", [h if h.startswith("0x") else "0x" + h])["result"] for h in pending]
    finally:
        request("evm_mine", [])
        request("evm_setAutomine", [True])
    signals = [monitor.observe(tx) for tx in txs]
    assert signals[0] is not None and signals[0].risk.max_profit > 0
    assert signals[1] is not None and signals[1].risk.max_profit == 0  # unlimited slippage but tiny: fees outweigh
    assert signals[2] is None
    assert metrics.value(names.PENDING_SWAPS, "anvil", "scored", suffix="_total") == 2
    assert metrics.value(names.SANDWICHABLE_SWAPS, "anvil", suffix="_total") == 1

    async def body() -> None:
        client = TestClient(TestServer(make_app(monitor), host="127.0.0.1"))
        await client.start_server()
        try:
            listed = await (await client.get("/opportunities?limit=10")).json()
            assert listed["acted_on"] is False
            assert [o["tx_hash"] for o in listed["opportunities"]] == [txs[1]["hash"], txs[0]["hash"]]
            assert listed["opportunities"][1]["risk"]["max_profit"] == str(signals[0].risk.max_profit)
            stats = await (await client.get("/stats")).json()
            assert stats["pending"] == {"scored": 2, "not_router": 1} and stats["acts_on_signals"] is False
            mempool = await (await client.get("/api/mempool/stats")).json()
            assert mempool["pending_seen"] == 3 and mempool["decoded_share"] == pytest.approx(2 / 3)
            assert mempool["sandwichable_share"] == 0.5
            assert mempool["sandwichable_value"][w.addr(w.a)]["max"] == str(signals[0].risk.max_profit)
            assert (await client.get("/opportunities?limit=0")).status == 400
            assert (await client.post("/opportunities")).status == 405
        finally:
            await client.close()

    asyncio.run(body())


def test_live_classifier_classifies_new_heads_in_the_background(world: World, tmp_path: Path) -> None:
    number = sandwich_block(world)
    metrics = AgentMetrics()

    async def body() -> None:
        async with aiohttp.ClientSession() as session:
            node = HttpJsonRpc(rpc_url(world), session)
            live = LiveClassifier("anvil", node.call, FileSink(tmp_path), metrics)
            task = asyncio.create_task(live.run())
            try:
                live.on_head(number - 1)
                live.on_head(number)  # before the first was classified: only the newest is
                for _ in range(500):
                    if live.classified and (tmp_path / f"{number}.json").exists():
                        break
                    await asyncio.sleep(0.01)
            finally:
                task.cancel()
        assert live.failed == 0 and live.skipped == 1
        written = orjson.loads((tmp_path / f"{number}.json").read_bytes())
        assert len(written["sandwiches"]) == 1 and written["sources"] == ["logs", "traces"]
        assert metrics.value(names.BLOCK_MEV, "anvil", "sandwich", suffix="_total") == 1

    asyncio.run(body())
