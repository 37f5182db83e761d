"""/providers/status from the running agent, on anvil against @aave/core-v3: a chain whose config lists an
Aave V3 market (its PoolAddressesProvider) has the Pool followed as a flashloan provider; the liquidity it
reports per token equals what each aToken holds, before and after supplies, a borrow and a flashloan the
test sends, its fee is the Pool's FLASHLOAN_PREMIUM_TOTAL, and a market that cannot be read is reported
unhealthy with the reason while the agent keeps running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mevagent.config import ConfigError
from testbed.aave import AaveMarket, ReserveSpec, deploy_aave, find
from testbed.e2e import agent_config, devnet_chain, eventually, load, running
from testbed.evm import Chain, deploy_token, deploy_v2_pair, set_v2_reserves
from testbed.pools import IpcAnvil

SPECS = [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)]
NOWHERE = "0x" + "0d" * 20  # no contract there


@pytest.fixture(scope="module")
def market(node: IpcAnvil) -> Iterator[AaveMarket]:
    chain = Chain(node.w3)
    built = deploy_aave(chain, SPECS)
    for spec in SPECS:
        chain.transact(built.configurator.functions.setReserveFlashLoaning(built.asset(spec.symbol), True))
    chain.transact(built.configurator.functions.updateFlashloanPremiumTotal(7))
    yield built


def _held(market: AaveMarket) -> dict[str, str]:
    return {
        market.asset(s).lower(): str(t.functions.balanceOf(market.a_tokens[s].address).call())
        for s, t in market.tokens.items()
    }


def _chain_with_markets(node: IpcAnvil, *markets: dict[str, str], **more: Any) -> dict[str, Any]:
    return {**devnet_chain(node), "lending": list(markets), **more}


def test_the_agent_reports_the_pools_liquidity_and_fee_as_its_logs_move_them(
    node: IpcAnvil, market: AaveMarket, tmp_path: Path
) -> None:
    chain = market.chain
    user = chain.account
    provider_address = str(market.provider.address)
    # A Uniswap V2 pair as a flash-swap provider beside the lending markets.
    token0, token1 = sorted((deploy_token(chain), deploy_token(chain)), key=lambda t: int(t.address, 16))
    pair = deploy_v2_pair(chain, token0, token1)
    set_v2_reserves(chain, pair, token0, token1, 10**21, 3 * 10**21)
    config = load(
        agent_config(
            tmp_path,
            [
                _chain_with_markets(
                    node,
                    {"name": "aave_v3", "addresses_provider": provider_address},
                    {"name": "broken", "addresses_provider": NOWHERE},
                    flash_providers=[{"name": "pair", "protocol": "uniswap_v2", "address": str(pair.address)}],
                )
            ],
        )
    )

    async def go() -> None:
        async with running(config) as (_agent, api):

            async def providers() -> dict[str, dict[str, Any]] | None:
                status, body = await api.get("/providers/status")
                assert status == 200, body
                by_name = {p["provider"]: p for p in body["providers"]}
                return by_name if by_name["aave_v3"]["healthy"] else None

            async def reports(expected: dict[str, str], block: int) -> dict[str, Any] | None:
                entry = (await providers() or {}).get("aave_v3")
                if entry is None or entry["last_update_block"] < block:
                    return None
                return entry if {x["token"]: x["available"] for x in entry["liquidity"]} == expected else None

            first = await eventually(providers, 30, "the Aave market loaded")
            aave = first["aave_v3"]
            assert aave["pool"] == str(market.pool.address).lower()
            assert aave["fee_bps"] == market.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call() == 7
            assert aave["chain"] == "ethereum" and aave["protocol"] == "aave_v3"
            assert {x["token"]: x["available"] for x in aave["liquidity"]} == _held(market)
            broken = first["broken"]
            assert not broken["healthy"] and broken["pool"] is None and broken["detail"]
            flash_pair = await eventually(lambda: _healthy(providers, "pair"), 30, "the pair loaded")
            assert flash_pair["protocol"] == "uniswap_v2" and flash_pair["pool"] == str(pair.address).lower()
            assert flash_pair["fee_bps"] == pytest.approx(3 * 10_000 / 997)
            lendable = {x["token"]: x["available"] for x in flash_pair["liquidity"]}
            assert lendable == {token0.address.lower(): str(10**21 - 1), token1.address.lower(): str(3 * 10**21 - 1)}

            # Moves the agent learns only from the Pool's logs.
            await asyncio.to_thread(market.supply, user, "WETH", 50 * 10**18)
            await asyncio.to_thread(market.supply, user, "USDC", 200_000 * 10**6)
            await asyncio.to_thread(market.borrow, user, "USDC", 30_000 * 10**6)
            receiver = await asyncio.to_thread(chain.deploy, find("MockFlashLoanSimpleReceiver"), provider_address)
            flash = market.pool.functions.flashLoanSimple(receiver.address, market.asset("WETH"), 10**19, b"", 0)
            await asyncio.to_thread(chain.transact, flash)
            block = int(chain.w3.eth.block_number)
            held = _held(market)
            assert held[market.asset("WETH").lower()] == str(50 * 10**18 + 7 * 10**19 // 10_000)  # the premium stayed
            entry = await eventually(lambda: reports(held, block), 30, "the liquidity after the moves")
            assert entry["last_update_age_s"] is not None and entry["healthy"]

    asyncio.run(go())


async def _healthy(providers: Any, name: str) -> dict[str, Any] | None:
    entry = (await providers() or {}).get(name)
    return entry if entry is not None and entry["healthy"] else None


def test_a_lending_market_is_validated_naming_the_field(node: IpcAnvil, tmp_path: Path) -> None:
    bad = {"name": "aave_v3", "addresses_provider": "0x1234"}
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.lending\.aave_v3\.addresses_provider"):
        load(agent_config(tmp_path, [_chain_with_markets(node, bad)]))
    twice = {"name": "aave_v3", "addresses_provider": NOWHERE}
    with pytest.raises(ConfigError, match=r"market name is listed twice"):
        load(agent_config(tmp_path, [_chain_with_markets(node, twice, twice)]))


def test_a_flash_provider_is_validated_naming_the_field(node: IpcAnvil, tmp_path: Path) -> None:
    def chain(*providers: dict[str, Any]) -> dict[str, Any]:
        return {**devnet_chain(node), "flash_providers": list(providers)}

    vault = {"name": "vault", "protocol": "balancer_v2", "address": NOWHERE}
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.flash_providers.*tokens: the Balancer vault"):
        load(agent_config(tmp_path, [chain(vault)]))
    pair = {"name": "pair", "protocol": "uniswap_v2", "address": NOWHERE, "fork": "biswap"}
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.flash_providers.*fork: flash swaps"):
        load(agent_config(tmp_path, [chain(pair)]))
    with pytest.raises(ConfigError, match=r"chains\.ethereum\.flash_providers.*protocol"):
        load(agent_config(tmp_path, [chain({**pair, "fork": "uniswap_v2", "protocol": "compound"})]))
    named_twice = {**vault, "tokens": [NOWHERE], "name": "aave_v3"}
    twice = {**chain(named_twice), "lending": [{"name": "aave_v3", "addresses_provider": NOWHERE}]}
    with pytest.raises(ConfigError, match=r"a provider name is listed twice"):
        load(agent_config(tmp_path, [twice]))
    ok = load(agent_config(tmp_path, [chain({**vault, "tokens": [NOWHERE]}, {**pair, "fork": "uniswap_v2"})]))
    assert [p.protocol for p in ok.chains[0].flash_providers] == ["balancer_v2", "uniswap_v2"]
