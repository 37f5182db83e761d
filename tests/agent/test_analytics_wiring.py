"""MEV analytics as `mevagent run` wires it (mevagent.app.Agent, in-process), against a real anvil.

The agent tracks the world's Uniswap V2 and V3 factories over WebSocket, with the chain's pending
transactions and an `analytics:` section: a victim's swap sent to Router02 (held pending: automine off)
must come back scored from the detector's :8904-style routes on their own loopback port, its body
fetched by the agent from the node; once mined, the block must be classified into out_dir.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mevagent.config import AgentConfig, ConfigError
from testbed.analytics import World, build_world
from testbed.e2e import agent_config, eventually, load, running
from testbed.evm import Chain
from testbed.services import free_port


@pytest.fixture(scope="module")
def world(chain: Chain) -> Iterator[World]:
    yield build_world(chain)


def wired_config(world: World, directory: Path, **analytics: Any) -> AgentConfig:
    url = str(world.chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    chain = {
        "name": "anvil",
        "chain_id": world.chain.w3.eth.chain_id,
        "ws_url": url.replace("http://", "ws://"),
        "max_gas_price_gwei": 100,
        "factories": [
            {"kind": "v2", "address": world.v2_factory.address, "fork": "uniswap_v2"},
            {"kind": "v3", "address": world.v3_factory.address, "fork": "uniswap_v3"},
        ],
        "pending_transactions": True,
        "max_head_age_s": 3600,
        "max_state_age_s": 3600,
    }
    section = {
        "port": free_port(),
        "out_dir": str(directory / "classified"),
        "detector": {"anvil": {"routers": {world.router02.address: {}}}},
        **analytics,
    }
    return load(agent_config(directory, [chain], analytics=section, strategies={"dex_arb": {"enabled": False}}))


def test_mevagent_run_scores_pending_swaps_and_classifies_mined_blocks(world: World, tmp_path: Path) -> None:
    config = wired_config(world, tmp_path)
    assert config.analytics is not None
    base = f"http://127.0.0.1:{config.analytics.port}"
    victim = world.actors["victim2"]
    w3 = world.chain.w3

    async def scenario() -> None:
        async with running(config) as (agent, api), aiohttp.ClientSession() as session:
            await eventually(api.ready, 30, "/ready")
            quote = world.router02.functions.getAmountsOut(10**21, [world.a.address, world.b.address]).call()[-1]
            w3.provider.make_request("evm_setAutomine", [False])
            try:
                sent = world.send(world.v2_path_swap(victim, [world.a, world.b], 10**21, quote * 98 // 100), victim)
                tx_hash = sent if sent.startswith("0x") else "0x" + sent

                async def scored() -> dict[str, Any] | None:
                    async with session.get(f"{base}/opportunities?limit=10") as response:
                        listed = orjson.loads(await response.read())
                    return next((o for o in listed["opportunities"] if o["tx_hash"] == tx_hash), None)

                signal = await eventually(scored, 30, "the pending swap scored on /opportunities")
            finally:
                w3.provider.make_request("evm_mine", [])
                w3.provider.make_request("evm_setAutomine", [True])
            assert int(signal["risk"]["max_profit"]) > 0 and signal["risk"]["pool"] == world.pairs["ab"].address.lower()
            async with session.get(f"{base}/anvil/stats") as response:  # also under the chain's prefix
                stats = orjson.loads(await response.read())
            assert stats["pending"]["scored"] == 1 and stats["acts_on_signals"] is False
            block = w3.eth.block_number
            out = Path(config.analytics.out_dir or "") / f"{block}.json"  # type: ignore[union-attr]

            async def classified() -> dict[str, Any] | None:
                return orjson.loads(out.read_bytes()) if out.exists() else None

            result = await eventually(classified, 30, f"block {block} classified")
            assert [s["tx"] for s in result["swaps"]] == [tx_hash]
            assert result["sources"] == ["logs", "traces"]
            _, metrics = await api.get("/metrics")
            assert 'mev_pending_swaps_total{chain="anvil",outcome="scored"} 1.0' in metrics
            assert 'mev_pending_bodies_total{chain="anvil",outcome="fetched"}' in metrics
            assert agent.analytics is not None and agent.analytics.chains["anvil"].classifier is not None

    asyncio.run(scenario())


def test_analytics_config_refuses_a_detector_without_pending_transactions(world: World, tmp_path: Path) -> None:
    data = agent_config(
        tmp_path,
        [{"name": "anvil", "chain_id": 31337, "http_url": "http://127.0.0.1:1", "max_gas_price_gwei": 1}],
        analytics={"detector": {"anvil": {"routers": {world.router02.address: {}}}}},
    )
    with pytest.raises(ConfigError, match=r"analytics\.detector\.anvil: needs the chain's pending_transactions"):
        load(data)
    data["analytics"] = {"bind": "not-an-ip"}
    with pytest.raises(ConfigError, match="bind"):
        load(data)
