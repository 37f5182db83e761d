"""Protection, on the whole agent as `mevagent run` wires it, against a real anvil (IPC) and a local builder.

- Each execution records what a sandwich could have taken from it had it been public: the live
  execution's exposure (priced after the bundle went out, before its block moved the pools) equals the
  dry-run's of the same opportunity from the same chain state (priced on the untouched pools), and is
  shown on /opportunities and counted in mev_execution_sandwich_exposure_usd.
- On a live bundle chain our signed transaction reaches the builder only: anvil's pending-transaction
  filter (which does see the trader's public swap) never lists it, the node does not know its hash,
  and the signer's nonce does not move.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from testbed.arb import BuilderBehaviour, LocalBuilder, builders
from testbed.e2e import CHAIN, Api, World, eventually, running, world_config


@contextlib.asynccontextmanager
async def agent_on(
    world: World, tmp_path: Path, *, live: bool, include: bool
) -> AsyncIterator[tuple[Any, Api, LocalBuilder]]:
    async with (
        builders([BuilderBehaviour("builder", include=include)], world.http_url) as (builder,),
        running(world_config(world, tmp_path, builder.url, live=live)) as (agent, api),
    ):
        await eventually(api.ready, 30, "/ready")
        yield agent, api, builder


async def settled(api: Api, block: int, statuses: set[str]) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        entries = await api.opportunities()
        return next((e for e in entries if e["block"] == block and e["status"] in statuses), None)

    return await eventually(probe, 40, f"an opportunity of block {block} settled as {statuses}")


def exposure_of_the_gap(world: World, tmp_path: Path, *, live: bool) -> dict[str, Any]:
    tmp_path.mkdir()

    async def scenario() -> dict[str, Any]:
        async with agent_on(world, tmp_path, live=live, include=True) as (agent, api, _builder):
            block = await asyncio.to_thread(world.gap)
            entry = await settled(api, block, {"landed" if live else "dry_run"})
            (report,) = [r for r in agent.chains[CHAIN].executor.reports if r.opportunity_id == entry["id"]]
            assert report.sandwich_exposure is not None and str(report.sandwich_exposure) == entry["sandwich_exposure"]
            _, metrics = await api.get("/metrics")
            assert f'mev_execution_sandwich_exposure_usd_total{{chain="{CHAIN}"}}' in metrics
            return entry

    return asyncio.run(scenario())


def test_each_execution_records_what_a_public_sandwich_could_have_taken(e2e_world: World, tmp_path: Path) -> None:
    world = e2e_world
    snapshot = world.dex.chain.snapshot()
    try:
        dry = exposure_of_the_gap(world, tmp_path / "dry", live=False)
    finally:
        world.dex.chain.revert(snapshot)
    snapshot = world.dex.chain.snapshot()
    try:
        landed = exposure_of_the_gap(world, tmp_path / "live", live=True)
    finally:
        world.dex.chain.revert(snapshot)
    assert (landed["amount_in"], landed["amount_out"]) == (dry["amount_in"], dry["amount_out"])  # one opportunity
    assert int(dry["sandwich_exposure"]) > 0  # the contract's minimum leaves room: a public cycle would lose it
    assert landed["sandwich_exposure"] == dry["sandwich_exposure"]
    assert landed["sandwich_exposure_usd"] == pytest.approx(dry["sandwich_exposure_usd"])


def test_our_transactions_never_reach_the_public_mempool_on_a_bundle_chain(
    clean_e2e_world: World, tmp_path: Path
) -> None:
    world = clean_e2e_world
    request = world.w3.provider.make_request

    async def scenario() -> None:
        # The builder receives but includes nothing: whatever reached anvil otherwise would show.
        async with agent_on(world, tmp_path, live=True, include=False) as (_agent, api, builder):
            pending_filter = request("eth_newPendingTransactionFilter", [])["result"]
            nonce = world.nonce()
            block = await asyncio.to_thread(world.gap)
            await eventually(lambda: _some(builder.bundles), 30, "a bundle at the builder")
            raw = builder.bundles[0].params["txs"][0]
            ours = "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()
            seen: set[str] = set()
            for _ in range(4):  # past every target block: the execution gives up
                seen |= {h.lower() for h in request("eth_getFilterChanges", [pending_filter])["result"]}
                assert ours not in _txpool_hashes(request)
                request("evm_mine", [])
            await settled(api, block, {"failed"})
            seen |= {h.lower() for h in request("eth_getFilterChanges", [pending_filter])["result"]}
            trader = request("eth_getBlockByNumber", [hex(block), False])["result"]["transactions"]
            assert trader and set(h.lower() for h in trader) <= seen  # the filter sees public transactions
            assert ours not in seen
            assert request("eth_getTransactionByHash", [ours])["result"] is None
            assert world.nonce() == nonce
            assert {b.params["txs"][0] for b in builder.bundles} == {raw}  # only the builder got it

    asyncio.run(scenario())


async def _some(items: list[Any]) -> bool:
    return bool(items)


def _txpool_hashes(request: Any) -> set[str]:
    content = request("txpool_content", [])["result"]
    return {
        tx["hash"].lower()
        for section in ("pending", "queued")
        for by_nonce in content.get(section, {}).values()
        for tx in by_nonce.values()
    }
