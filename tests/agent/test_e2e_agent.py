"""End to end: the whole agent, wired as `mevagent run` wires it, against a real anvil over IPC.

Uniswap V2 pairs from two factories and a V3 pool (published artifacts) are discovered from their
factories and bootstrapped by the agent itself; the ArbExecutor is deployed with the agent's own deploy
function and holds the base token. A trader's swap opens a price gap; the agent must find the cycle in
that very block. Live, it goes through the risk gate, is signed and sent as a bundle to a local builder
(a real HTTP server that includes it by forwarding it to the node), and the profit the contract keeps
equals the predicted profit to the wei. In dry-run nothing is sent: the owner's nonce, the contract's
balance and the chain stay as they were, and /opportunities shows what it would have earned. The
emergency stop, set through the API with the token, blocks the next execution and survives a restart.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mevagent import metrics_names as names
from testbed.arb import BuilderBehaviour, LocalBuilder, builders
from testbed.e2e import CHAIN, Api, World, eventually, running, world_config
from testbed.e2e import in_block as _in_block
from testbed.e2e import settle as _settle
from testbed.e2e import settled as _settled
from testbed.strategy import E18


def config(world: World, directory: Path, builder: LocalBuilder, *, live: bool, **sections: Any) -> Any:
    return world_config(world, directory, builder.url, live=live, **sections)


@contextlib.asynccontextmanager
async def ready_agent(
    world: World, tmp_path: Path, *, live: bool, behaviour: BuilderBehaviour | None = None
) -> AsyncIterator[tuple[Any, Api, LocalBuilder]]:
    """One local builder that includes what it gets (unless `behaviour` says otherwise) and the agent
    on the world's chain, once /ready answers: (agent, api, builder)."""
    behaviour = behaviour or BuilderBehaviour("builder", include=True)
    async with (
        builders([behaviour], world.http_url) as (builder,),
        running(config(world, tmp_path, builder, live=live)) as (agent, api),
    ):
        await eventually(api.ready, 30, "/ready")
        yield agent, api, builder


async def _strategy_counters(api: Api) -> dict[str, float]:
    """The dex_arb strategy counters of this chain on the metrics listener, by metric name."""
    async with api.session.get(api.metrics_url) as response:
        text = await response.text()
    labels = {"chain": CHAIN, "strategy": "dex_arb"}
    found = {
        s.name.removesuffix("_total"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels == labels
    }
    return {m.name: found[m.name] for m in names.STRATEGY_COUNTERS}


def _profit(entry: dict[str, Any]) -> int:
    return int(entry["amount_out"]) - int(entry["amount_in"])


def _exact(world: World, agent: Any, entries: list[dict[str, Any]], nonce: int, inventory: int) -> None:
    """Every execution that landed kept exactly its predicted profit, in the block it landed in; nothing
    else was signed (the nonce moved once per landing) and the contract holds exactly their sum more.

    A landing moves pool A, which can open a smaller gap against another pool: that one is found in the
    landing's block and executed too, on its own state, so it is checked the same way.
    """
    landed = [e for e in entries if e["status"] == "landed"]
    reports = {r.opportunity_id: r for r in agent.chains[CHAIN].executor.reports}
    contract = world.w3.to_checksum_address(world.deployment.address)
    for entry in landed:
        receipt = world.w3.eth.get_transaction_receipt(entry["tx_hashes"][0])
        at = receipt["blockNumber"]
        kept = world.dex.w.functions.balanceOf(contract).call(block_identifier=at) - world.dex.w.functions.balanceOf(
            contract
        ).call(block_identifier=at - 1)
        assert kept == _profit(entry) > 0, entry
        assert reports[entry["id"]].profit_wei == _profit(entry)
        assert entry["realized_profit_usd"] == pytest.approx(entry["profit_usd"])
    assert world.nonce() == nonce + len(landed)
    assert world.inventory() - inventory == sum(_profit(e) for e in landed)


def test_live_the_gap_is_found_in_its_block_and_lands_with_the_predicted_profit_to_the_wei(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    world = clean_e2e_world

    async def scenario() -> None:
        async with ready_agent(world, tmp_path, live=True) as (agent, api, _builder):
            nonce, inventory = world.nonce(), world.inventory()
            block = await asyncio.to_thread(world.gap)
            landed = await _settled(api, block, "landed")
            await _settle(agent, world)
            _exact(world, agent, await api.opportunities(), nonce, inventory)
            assert landed["realized_profit_usd"] == pytest.approx(landed["profit_usd"])
            status, relays = await api.get("/relays/status")
            assert status == 200 and relays["endpoints"][0]["name"] == "builder"
            assert relays["endpoints"][0]["ok"] >= 1
            _, metrics = await api.get("/metrics")
            assert f'mev_opportunities_found_total{{chain="{CHAIN}",strategy="dex_arb"}}' in metrics
            assert f'mev_profit_total{{chain="{CHAIN}",strategy="dex_arb"}}' in metrics

    asyncio.run(scenario())


def test_dry_run_sends_nothing_and_shows_what_it_would_have_earned(clean_e2e_world: World, tmp_path: Path) -> None:
    world = clean_e2e_world

    async def scenario() -> None:
        async with ready_agent(world, tmp_path, live=False) as (agent, api, builder):
            nonce, inventory = world.nonce(), world.inventory()
            block = await asyncio.to_thread(world.gap)
            entry = await _settled(api, block, "dry_run")
            await _settle(agent, world)
            assert entry["realized_profit_usd"] > 0
            assert entry["realized_profit_usd"] == pytest.approx(entry["profit_usd"])
            (report,) = [r for r in agent.chains[CHAIN].executor.reports if r.opportunity_id == entry["id"]]
            assert report.profit_wei == _profit(entry)  # the contract's eth_call, to the wei
            assert "would keep" in entry["reason"]
            # The strategy's own counters, read from its stats at scrape time: the search that found it.
            counters = await _strategy_counters(api)
            assert counters["mev_strategy_pool_updates"] > 0 and counters["mev_strategy_cycles_checked"] > 0
            assert counters["mev_strategy_cycles_sized"] >= 1 and counters["mev_strategy_verify_mismatches"] == 0

        # Nothing signed, nothing sent, nothing mined after the trader's swap.
        assert builder.received == []
        assert (world.nonce(), world.inventory(), world.w3.eth.block_number) == (nonce, inventory, block)

    asyncio.run(scenario())


def test_emergency_stop_through_the_api_blocks_the_next_execution_and_survives_a_restart(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    world = clean_e2e_world

    async def scenario() -> None:
        async with builders([BuilderBehaviour("builder", include=True)], world.http_url) as (builder,):
            settings = config(world, tmp_path, builder, live=True)
            nonce, inventory = world.nonce(), world.inventory()
            async with running(settings) as (agent, api):
                await eventually(api.ready, 30, "/ready")
                status, _ = await api.post("/emergency/stop", {"reason": "e2e"}, token=False)
                assert status == 401
                _, stats = await api.get("/stats")
                assert stats["risk"]["emergency_stop"]["engaged"] is False
                status, body = await api.post("/emergency/stop", {"reason": "e2e"})
                assert status == 200 and body["state"]["emergency_stop"]["engaged"] is True
                block = await asyncio.to_thread(world.gap)
                refused = await _settled(api, block, "rejected")
                assert refused["reason"].startswith("emergency_stop")
                await _settle(agent, world)
            assert (world.nonce(), world.inventory()) == (nonce, inventory)
            assert builder.received == []

            # A new process on the same state directory: still stopped, so the gap it finds at start stays.
            async with running(settings) as (agent, api):
                await eventually(api.ready, 30, "/ready")
                _, stats = await api.get("/stats")
                assert stats["risk"]["emergency_stop"]["engaged"] is True
                again = await _settled(api, block, "rejected")
                assert again["reason"].startswith("emergency_stop")
                await _settle(agent, world)
                assert (world.nonce(), world.inventory()) == (nonce, inventory)
                assert builder.received == []

                # Released: the next gap is executed.
                status, _ = await api.post("/emergency/resume", {})
                assert status == 200
                block = await asyncio.to_thread(world.gap, 2 * E18)
                await _settled(api, block, "landed")
                await _settle(agent, world)
                _exact(world, agent, await api.opportunities(), nonce, inventory)

    asyncio.run(scenario())


def test_profit_and_gas_changed_through_the_api_apply_from_the_next_block(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    world = clean_e2e_world

    async def scenario() -> None:
        async with ready_agent(world, tmp_path, live=False) as (agent, api, builder):
            runtime = agent.chains[CHAIN]

            async def announced() -> dict[str, float] | None:
                counters = await _strategy_counters(api)
                return counters if counters["mev_strategy_pool_updates"] > 0 else None

            before = await eventually(announced, 30, "the strategy to count the pools announced at start")
            status, _ = await api.post("/config/profit", {"strategies": {"dex_arb": {"min_profit_threshold": 1e6}}})
            assert status == 200
            # The change built a new strategy with fresh stats: its counters still never go back.
            after = await _strategy_counters(api)
            assert all(after[name] >= value for name, value in before.items()), (before, after)
            status, _ = await api.post("/config/gas", {"priority_fee_gwei": 2})
            assert status == 200
            strategy = runtime.strategies["dex_arb"]
            assert strategy.config.min_profit_threshold == 1e6
            assert strategy.config.priority_fee_wei == runtime.executor.config.priority_fee_wei == 2 * 10**9
            block = await asyncio.to_thread(world.gap)
            await _settle(agent, world)
            assert [e for e in await api.opportunities() if e["block"] == block] == []
            moved = await _strategy_counters(api)
            assert moved["mev_strategy_pool_updates"] > after["mev_strategy_pool_updates"]

            status, _ = await api.post("/config/profit", {"strategies": {"dex_arb": {"min_profit_threshold": 0}}})
            assert status == 200
            block = await asyncio.to_thread(world.gap, 2 * E18)
            entry = await _settled(api, block, "dry_run")
            assert entry["gas_price"] == str(2 * 10**9)
        assert builder.received == []

    asyncio.run(scenario())


def test_stopping_lets_the_execution_in_flight_land_and_reach_the_risk_gate(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    """What SIGTERM does (mevagent.app.serve calls Agent.stop): a bundle out at a slow builder still lands."""
    world = clean_e2e_world

    async def scenario() -> None:
        async with ready_agent(
            world, tmp_path, live=True, behaviour=BuilderBehaviour("builder", include=True, delay_s=0.5)
        ) as (agent, _api, builder):
            nonce, inventory = world.nonce(), world.inventory()
            block = await asyncio.to_thread(world.gap)

            async def sent() -> bool:
                return agent.engine.stats()["in_flight"] == 1 and len(builder.received) > 0

            await eventually(sent, 30, "a bundle in flight at the builder")
            await agent.stop()
            entries = agent.engine.recent.since(0, 1000)
            assert _in_block(entries, block, "landed") is not None
            assert agent.gate.snapshot()["in_flight"] == 0  # its outcome was recorded: nothing reserved
            _exact(world, agent, entries, nonce, inventory)

    asyncio.run(scenario())


def test_failing_builders_trip_the_circuit_breaker_and_a_probe_closes_it(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    """A real local builder answering 503: every live execution fails, the breaker opens after the configured
    number in a row and refuses the next one before anything is signed; after the cool-down one probe
    goes through, lands (the builder includes again) and closes it."""
    world = clean_e2e_world
    risk = {"max_consecutive_failures": 2, "circuit_breaker_cooldown_s": 1.0}

    async def scenario() -> None:
        async with builders([BuilderBehaviour("builder", status=503)], world.http_url) as (builder,):
            nonce, inventory = world.nonce(), world.inventory()
            async with running(config(world, tmp_path, builder, live=True, risk=risk)) as (agent, api):
                await eventually(api.ready, 30, "/ready")
                for amount in (10 * E18, 2 * E18):
                    block = await asyncio.to_thread(world.gap, amount)
                    failed = await _settled(api, block, "failed")
                    assert "503" in failed["reason"], failed
                    await _settle(agent, world)
                _, exposure = await api.get("/exposure/current")
                assert exposure["circuit_breakers"][CHAIN]["state"] == "open", exposure
                block = await asyncio.to_thread(world.gap, 2 * E18)
                refused = await _settled(api, block, "rejected")
                assert refused["reason"].startswith("circuit_breaker"), refused
                await _settle(agent, world)
                # Failed and refused executions moved no money: every failed bundle's nonce was released.
                assert (world.nonce(), world.inventory()) == (nonce, inventory)

                builder.behaviour = BuilderBehaviour("builder", include=True)
                await asyncio.sleep(risk["circuit_breaker_cooldown_s"])
                block = await asyncio.to_thread(world.gap, 2 * E18)
                await _settled(api, block, "landed")
                await _settle(agent, world)
                _, exposure = await api.get("/exposure/current")
                assert exposure["circuit_breakers"][CHAIN]["state"] == "closed", exposure
                _exact(world, agent, await api.opportunities(), nonce, inventory)

    asyncio.run(scenario())
