"""The agent on a Solana host: one agent per host for all its chains, its Solana chain read from the
planned node's ports, its `solana:` section from the inventory with the plan's block engine, dry-run."""

from __future__ import annotations

import json

import pytest
import yaml

from mevagent.config import validate
from mevfleet import INVENTORY_DIR
from mevfleet.agent import agent_files
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.model import HostPlan
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts

from .conftest import SOLANA_AGENT

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
REGION = {"name": "ny", "url": "https://ny.mainnet.block-engine.jito.wtf/api/v1/bundles"}
UNLISTED_POOL = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"  # a pool the section does not list
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def fleet(agent: dict, chains: str = "[base, solana]", nodes: str = "mainnet"):
    text = f"fleet: {{nodes: {nodes}, agent: {json.dumps(agent)}}}\n"
    text += f"hosts: {{b: {{chains: {chains}, address: 10.0.0.9}}}}"
    return compile_plan(parse_inventory(text, "f.yml"))


def with_region(**solana: object) -> dict:
    section = SOLANA_AGENT["chains"]["solana"]["solana"] | {"block_engines": [REGION]} | solana
    return {"chains": {"solana": {"solana": section}}}


def agent_config(plan: HostPlan, tmp_path):
    """The rendered agent.yml, as the agent's own loader takes it (its secret files made here)."""
    token = tmp_path / "api.token"
    token.write_text("x" * 64)
    token.chmod(0o600)
    config, _ = agent_files(plan, HostFacts())
    assert config.path == plan.agent.config_path
    data = yaml.safe_load(config.context["config_yaml"])
    data["api"]["token_file"] = str(token)
    data.pop("bus", None)
    return validate(data)


def test_devnet_solana_host_runs_the_agent_on_its_simulator(tmp_path):
    sol1 = DEVNET.hosts["sol1"]
    (chain,) = sol1.agent.chains
    (node,) = sol1.nodes
    rpc = next(p for p in sol1.ports() if p.service == "solana-standin" and p.name == "rpc")
    assert (chain.chain, chain.vm, chain.node_unit, chain.live) == ("solana", "svm", node.unit, False)
    # Solana JSON-RPC, its WebSocket and the Jito block engine: all the simulator's one planned port.
    assert chain.rpc_url == chain.http_url == f"http://{sol1.listen_address}:{rpc.port}/"
    assert chain.ws_url == f"ws://{sol1.listen_address}:{rpc.port}"
    assert chain.block_engine_url == f"http://{sol1.listen_address}:{rpc.port}/api/v1/bundles"
    assert sol1.agent.node_groups == (node.user,)
    unit = next(f.context for f in agent_files(sol1, HostFacts()) if f.path.endswith(".service"))["agent"]
    assert unit.chains[0].node_unit == "solana-solana-standin"
    config = agent_config(sol1, tmp_path)
    (solana,) = config.chains
    assert solana.solana is not None and solana.live is False and solana.signing_key_file is None
    assert [r.url for r in solana.solana.block_engines] == [chain.block_engine_url]
    assert [p.address for p in solana.solana.pools] == [
        "3yhvSRXkPLexUp9k4MvbnrBYU1NVqrYpLEYnwfUb3Eru",
        "FoQJRC7omkfnNuvRVV9ArizTwn1v9Sd5QrG32yLFFZxi",
    ]
    assert set(config.strategies) == {"dex_arb", "solana_arb"}


def test_evm_and_solana_host_gets_one_agent_with_both(tmp_path):
    plan = fleet(with_region()).hosts["b"]
    base, solana = plan.agent.chains
    assert (base.chain, base.vm, solana.chain, solana.vm) == ("base", "evm", "solana", "svm")
    assert base.ipc and solana.ipc is None and solana.block_engine_url is None
    ports = {p.key: p.port for p in plan.ports()}
    # Agave: JSON-RPC on `rpc`, PubSub on its own `pubsub` port.
    assert solana.http_url == f"http://10.0.0.9:{ports['solana.agave.rpc']}/"
    assert solana.ws_url == f"ws://10.0.0.9:{ports['solana.agave.pubsub']}"
    assert set(plan.agent.node_groups) == {n.user for n in plan.nodes if n.unit in (base.node_unit, solana.node_unit)}
    config = agent_config(plan, tmp_path)
    assert [c.name for c in config.chains] == ["base", "solana"]
    assert config.chains[0].solana is None and config.chains[1].solana is not None
    assert [r.url for r in config.chains[1].solana.block_engines] == [REGION["url"]]
    assert not any(c.live for c in config.chains)


def test_live_solana_signs_with_the_payer_keypair_and_needs_a_block_engine():
    plan = fleet(with_region() | {"live": ["solana"]}).hosts["b"]
    (solana,) = [c for c in plan.agent.config["chains"] if c["name"] == "solana"]
    assert solana["live"] is True and solana["signing_key_file"] == "/etc/mevagent/keys/solana.json"
    assert "searcher_key_file" not in solana and "endpoints" not in solana
    with pytest.raises(InventoryError) as exc:
        fleet({"live": ["solana"], **SOLANA_AGENT}, chains="[solana]")
    assert "fleet.agent.chains.solana.solana.block_engines: a live chain needs a block-engine region" in str(exc.value)
    # On the devnet the simulator's block engine is the plan's.
    devnet = fleet({"live": ["solana"], **SOLANA_AGENT}, chains="[solana]", nodes="devnet").hosts["b"]
    assert devnet.agent.chains[0].live and devnet.agent.chains[0].block_engine_url


@pytest.mark.parametrize(
    ("agent", "named"),
    [
        ({}, "fleet.agent.chains.solana: solana.pools: Field required"),
        (with_region(sol_usd=None), "fleet.agent.chains.solana: solana: give exactly one of sol_usd"),
        (
            with_region(sol_usd=None, sol_usd_pool={"address": UNLISTED_POOL, "usd_mint": USDC, "usd_decimals": 6}),
            f"solana: sol_usd_pool.address {UNLISTED_POOL} is not one of pools",
        ),
        (with_region(pools=[]), "fleet.agent.chains.solana: solana.pools"),
        ({"chains": {"solana": {"contract": "0x10ED43C718714eb63d5aA57B78B54704E256024E"}}}, "chains.solana"),
        ({**with_region(), "endpoints": {"solana": [REGION | {"kind": "bundle"}]}}, "fleet.agent.endpoints.solana"),
        ({"chains": {"solana": {"ws_url": "ws://10.0.0.1:1"}}}, "chains.solana.ws_url: set by the plan"),
    ],
)
def test_bad_solana_settings_are_refused_naming_the_field(agent, named):
    with pytest.raises(InventoryError) as exc:
        fleet(agent)
    assert named in str(exc.value)


def test_the_plan_owns_the_block_engine_its_host_serves():
    with pytest.raises(InventoryError) as exc:
        fleet(with_region(), chains="[solana]", nodes="devnet")
    assert "fleet.agent.chains.solana.solana.block_engines: set by the plan" in str(exc.value)
