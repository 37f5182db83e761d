"""Flashloan-funded arbitrage in the running agent, on anvil: the e2e world's DEX (published Uniswap V2/V3
artifacts) with the ArbExecutor holding none of the base token W, and an @aave/core-v3 market lending W
followed by the chain's monitor (`lending` in the chain's config). A trader opens a gap; the dex_arb
strategy finds the cycle in its block, the executor finds the contract cannot pay for it, takes the loan
from the Aave pool (the only provider), and the bundle lands through a local builder: the contract keeps
exactly what /opportunities predicted, net of the premium, and the premium is the pool's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mevagent.lending.aave_v3 import percent_mul
from testbed.aave import ReserveSpec, deploy_aave
from testbed.arb import BuilderBehaviour, builders
from testbed.e2e import World, build_world, eventually, running, world_config
from testbed.evm import ANVIL, MAX_UINT256, Chain

PREMIUM_BPS = 9


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    if not ANVIL.is_file():
        pytest.skip("anvil is missing: run `make setup` (npm ci) first")
    built = build_world(tmp_path_factory.mktemp("keys"))
    try:
        chain = Chain(built.w3)
        w = built.dex.w
        market = deploy_aave(chain, [ReserveSpec("W", 18, 10**8)], existing={"W": w})
        chain.transact(market.configurator.functions.setReserveFlashLoaning(w.address, True))
        chain.transact(market.configurator.functions.updateFlashloanPremiumTotal(PREMIUM_BPS))
        chain.transact(w.functions.approve(market.pool.address, MAX_UINT256))
        chain.transact(market.pool.functions.supply(w.address, 10_000 * 10**18, chain.account, 0))
        # The contract's inventory goes back to the test's account: every cycle must be borrowed for.
        owner = built.w3.to_checksum_address(built.deployment.owner)
        built.w3.provider.make_request("anvil_impersonateAccount", [owner])
        contract = built.w3.eth.contract(address=built.w3.to_checksum_address(built.deployment.address), abi=_abi())
        tx = contract.functions.withdraw(w.address, chain.account, built.inventory()).transact(
            {"from": owner, "gas": 200_000, "gasPrice": 0}
        )
        built.w3.eth.wait_for_transaction_receipt(tx, timeout=30)
        assert built.inventory() == 0
        yield built, str(market.provider.address)
    finally:
        built.node.close()


def _abi() -> list[dict[str, Any]]:
    from mevagent.executor.contract import artifact

    return artifact()["abi"]


def test_the_agent_flash_funds_a_cycle_its_contract_cannot_pay_for_and_keeps_the_prediction(
    world: tuple[World, str], tmp_path: Path
) -> None:
    built, provider = world
    lending = {"lending": [{"name": "aave_v3", "addresses_provider": provider}]}

    async def scenario() -> list[dict[str, Any]]:
        async with builders([BuilderBehaviour("builder", include=True)], built.http_url) as (builder,):
            config = world_config(built, tmp_path, builder.url, live=True, chain_extra=lending)
            async with running(config) as (agent, api):
                await eventually(api.ready, 30, "/ready")
                await eventually(lambda: _provider_ready(agent), 30, "the Aave market followed")
                block = await asyncio.to_thread(built.gap)

                async def landed() -> list[dict[str, Any]] | None:
                    entries = [e for e in await api.opportunities() if e["status"] == "landed"]
                    return entries if any(e["block"] == block for e in entries) else None

                return await eventually(landed, 30, f"a landed opportunity of block {block}")

    entries = asyncio.run(scenario())
    contract = built.w3.to_checksum_address(built.deployment.address)
    w = built.dex.w
    first = min(entries, key=lambda e: e["seq"])
    assert first["funding"] == "aave_v3", first  # the contract held nothing: the loan paid for it
    assert int(first["loan_fee"]) == percent_mul(int(first["loan_amount"]), PREMIUM_BPS)
    assert int(first["amount_out"]) == int(first["cycle_out"]) - int(first["loan_fee"])
    for entry in entries:  # each landing kept exactly its prediction, in its own block
        at = built.w3.eth.get_transaction_receipt(entry["tx_hashes"][0])["blockNumber"]
        kept = w.functions.balanceOf(contract).call(block_identifier=at) - w.functions.balanceOf(contract).call(
            block_identifier=at - 1
        )
        assert kept == int(entry["amount_out"]) - int(entry["amount_in"]) > 0, entry


async def _provider_ready(agent: Any) -> bool:
    flash = agent.chains["anvil"].flash
    return flash is not None and bool(flash.providers())
