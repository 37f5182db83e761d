"""The fleet's flashloan view (:8903) end to end, against the real Redis and PostgreSQL: a real agent (as
`mevagent run` wires it, on anvil, following an `@aave/core-v3` market) publishes its flashloan providers on
the bus from its heartbeat task; the control plane (in this process, as `mevcontrol run` starts it, TLS)
keeps each agent's latest report and serves the fleet's `/providers/status`, and serves the fleet's
`/opportunities` from what its ingest committed: a dry-run liquidation the agent found, with its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from mevcontrol.api import start_listeners
from mevcontrol.config import ControlConfig
from mevcontrol.flashloans import STALE_S, ProvidersQuery
from mevcontrol.operations import Operations
from mevcontrol.service import Control
from web3 import Web3

from mevagent.bus import link
from testbed.aave import AaveMarket, ReserveSpec, deploy_aave
from testbed.control import Operator, bus_agent_config, control_config, tls_pair
from testbed.e2e import eventually, load, running
from testbed.evm import Chain
from testbed.pools import IpcAnvil
from testbed.services import Postgres, RedisServer

SPECS = [ReserveSpec("WETH", 18, 2_000 * 10**8), ReserveSpec("USDC", 6, 10**8)]
PREMIUM_BPS = 9
ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")


@pytest.fixture(scope="module")
def market(node: IpcAnvil) -> Iterator[AaveMarket]:
    chain = Chain(node.w3)
    built = deploy_aave(chain, SPECS)
    for spec in SPECS:
        chain.transact(built.configurator.functions.setReserveFlashLoaning(built.asset(spec.symbol), True))
    chain.transact(built.configurator.functions.updateFlashloanPremiumTotal(PREMIUM_BPS))
    yield built


@contextlib.asynccontextmanager
async def control_plane(config: ControlConfig) -> AsyncIterator[Control]:
    """What `mevcontrol run` starts (mevcontrol.cli.serve), in this event loop."""
    control = await Control.open(config)
    ops = Operations(control)
    runners = []
    try:
        await control.start()
        runners = await start_listeners(ops)
        yield control
    finally:
        for runner in runners:
            await runner.cleanup()
        await ops.close()
        await control.close()


def test_the_control_plane_serves_the_fleets_flashloan_providers_and_opportunities_on_8903(
    redis_server: RedisServer,
    postgres: Postgres,
    node: IpcAnvil,
    market: AaveMarket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(link, "PROVIDERS_EVERY_S", 0.3)  # the test does not wait 5 s between reports
    w3 = market.chain.w3
    lender, borrower = (Web3.to_checksum_address(f"0x{0x13D0 + i:040x}") for i in range(2))
    for user in (lender, borrower):
        w3.provider.make_request("anvil_impersonateAccount", [user])
    cert, key = tls_pair(tmp_path)
    data = yaml.safe_load(control_config(tmp_path, redis_server, postgres, [ALICE, VICTOR]).read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    config = ControlConfig.model_validate(data)
    base = f"https://127.0.0.1:{config.listen.flashloans_port}"
    agent_data = bus_agent_config(tmp_path / "fl1", node, redis_server, "fl1", token=secrets.token_hex(20))
    chain = agent_data["chains"][0]
    chain["wrapped_native"] = market.asset("WETH")
    chain["lending"] = [{"name": "aave_v3", "addresses_provider": str(market.provider.address)}]
    agent_data["strategies"] = {"aave_liquidation": {"min_profit_threshold": 0, "min_profit_bps": 0}}
    usdc, pool = market.asset("USDC").lower(), str(market.pool.address).lower()
    tls = ssl.create_default_context(cafile=str(cert))

    async def go() -> dict[str, Any]:
        async with (
            control_plane(config) as control,
            running(load(agent_data)) as (agent, api),
            aiohttp.ClientSession() as session,
        ):

            async def get(path: str, who: Operator | None = VICTOR) -> tuple[int, Any]:
                headers = who.auth if who is not None else {}
                async with session.get(base + path, headers=headers, ssl=tls) as response:
                    return response.status, await response.json()

            await asyncio.to_thread(market.supply, lender, "USDC", 1_000_000 * 10**6)
            cash = market.tokens["USDC"].functions.balanceOf(market.a_tokens["USDC"].address).call()
            assert cash == 1_000_000 * 10**6

            async def reported() -> dict[str, Any] | None:
                status, body = await get("/providers/status")
                assert status == 200, body
                for entry in body["providers"]:
                    available = {t["token"]: int(t["available"]) for t in entry["liquidity"]}
                    if entry["healthy"] and available.get(usdc) == cash:
                        return entry
                return None

            out: dict[str, Any] = {"fleet": await eventually(reported, 30, "the agent's providers at :8903")}
            _, own = await api.get("/providers/status")
            out["own"] = own["providers"]
            out["unauthenticated"] = (await get("/providers/status", None))[0]
            out["other_chain"] = (await get("/providers/status?chain=base"))[1]
            out["bad_query"] = await get("/providers/status?chain=NOT_A_NAME")
            out["stale"] = control.providers.status(ProvidersQuery(), now=time.time() + STALE_S + 5)

            # A price drop makes a position liquidatable; the agent (dry-run) reports it, the bus carries it.
            strategy = agent.chains["ethereum"].strategies["aave_liquidation"]
            await asyncio.to_thread(market.supply, borrower, "WETH", 10 * 10**18)
            await asyncio.to_thread(market.borrow, borrower, "USDC", 15_000 * 10**6)
            await eventually(lambda: _tracks(strategy, borrower.lower()), 30, "the borrower's position")
            await asyncio.to_thread(market.set_price, "WETH", 1_800 * 10**8)

            async def fleet_opportunity() -> dict[str, Any] | None:
                status, body = await get("/opportunities?strategy=aave_liquidation&hours=1")
                assert status == 200, body
                done = [o for o in body["opportunities"] if o["status"] != "pending"]
                return done[0] if done else None

            out["opportunity"] = await eventually(fleet_opportunity, 30, "the liquidation at :8903/opportunities")
            out["own_opportunities"] = await api.opportunities()
            out["other_strategy"] = (await get("/opportunities?strategy=dex_arb"))[1]
            return out

    out = asyncio.run(go())
    fleet = out["fleet"]
    assert fleet["agent"] == "fl1" and fleet["chain"] == "ethereum" and fleet["provider"] == "aave_v3"
    assert fleet["protocol"] == "aave_v3" and fleet["pool"] == pool and fleet["fee_bps"] == PREMIUM_BPS
    assert fleet["reported_age_s"] < 5 and fleet["last_update_block"] > 0
    # The agent's own answer for the same provider: the fleet view carries it unchanged (ages aside).
    (own,) = [p for p in out["own"] if p["provider"] == "aave_v3"]
    same = ("chain", "provider", "protocol", "pool", "fee_bps", "healthy")
    assert {k: own[k] for k in same} == {k: fleet[k] for k in same}
    assert out["unauthenticated"] == 401
    assert out["other_chain"] == {"providers": []}
    assert out["bad_query"][0] == 400 and out["bad_query"][1]["fields"] == ["chain"]
    (stale,) = out["stale"]["providers"]
    assert stale["healthy"] is False and "silent" in stale["detail"] and stale["liquidity"] == fleet["liquidity"]
    # The opportunity: what the agent found (its own /opportunities entry), with the outcome it reported.
    opportunity = out["opportunity"]
    (own_entry,) = [o for o in out["own_opportunities"] if o["strategy"] == "aave_liquidation"]
    assert opportunity["agent"] == "fl1" and opportunity["status"] == own_entry["status"] == "dry_run"
    assert opportunity["id"] == own_entry["id"] and opportunity["block"] == own_entry["block"]
    assert opportunity["liquidated_user"] == borrower.lower() == own_entry["user"]
    assert opportunity["amount_in"] == own_entry["amount_in"] == own_entry["debt_to_cover"]
    assert opportunity["profit_usd"] == pytest.approx(own_entry["profit_usd"], rel=1e-12)
    assert out["other_strategy"] == {"opportunities": []}


async def _tracks(strategy: Any, user: str) -> bool:
    book = strategy.book
    return book is not None and user in book._index and bool(book.position(user).debt)
