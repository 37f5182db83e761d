"""Chain knowledge is catalog data: a new OP-stack chain is one chains.yml entry, and the plan code names no
chain (network names, sequencers, the L1 and per-client quirks all come from the catalog)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mevfleet.catalog import CATALOG_DIR, load_catalog, read_catalog
from mevfleet.inventory import parse_inventory
from mevfleet.plan import compile_plan

THIRD = {
    "chain_id": 7777777,
    "max_gas_price_gwei": 10,
    "block_time": 2,
    "stand_in": {"client": "anvil", "rpc": "op-reth.rpc"},
    "parent": {"chain": "ethereum"},
    "op_stack": {
        "network": "third-mainnet",
        "reth_chain": "third",
        "sequencer_http": "https://sequencer.third.example",
    },
    "port_shift": 800,
    "limits": {"nofile": 1048576},
    "services": {
        "op-node": {
            "client": "op-node",
            "user": "thirdnode",
            "ports": {
                "p2p": {"port": 9222, "protocols": ["tcp", "udp"], "exposure": "public"},
                "rpc": {"port": 9545, "exposure": "loopback"},
                "metrics": {"port": 7300, "exposure": "monitoring", "scrape": "/metrics"},
            },
        },
        "op-reth": {
            "client": "op-reth",
            "user": "thirdreth",
            "ports": {
                "p2p": {"port": 30303, "protocols": ["tcp", "udp"], "exposure": "public"},
                "rpc": {"port": 8545, "exposure": "fleet"},
                "ws": {"port": 8546, "exposure": "fleet"},
                "authrpc": {"port": 8551, "exposure": "loopback"},
                "metrics": {"port": 6060, "exposure": "monitoring", "scrape": "/metrics"},
            },
        },
    },
}


def catalog_with(tmp_path: Path, name: str, chain: dict):
    """The package's catalog YAML copied, plus one chain appended to chains.yml: data only."""
    directory = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with (directory / "chains.yml").open("a") as chains:
        chains.write("\n" + yaml.safe_dump({name: chain}))
    return read_catalog(directory)


def op_args(tmp_path: Path) -> dict[str, dict[str, str]]:
    catalog = catalog_with(tmp_path, "third", THIRD)
    text = (
        "fleet: {nodes: mainnet}\n"
        "hosts: {l1: {chains: [ethereum], address: 10.0.0.4}, op: {chains: [optimism, base, third], address: 10.0.0.5}}"
    )
    plan = compile_plan(parse_inventory(text, "f.yml", catalog), catalog).hosts["op"]
    return {n.unit: " ".join(n.args) for n in plan.nodes}


def test_a_third_op_stack_chain_is_data_only_and_gets_its_own_identity(tmp_path):
    args = op_args(tmp_path)
    l1 = "--l1=http://10.0.0.4:8545 --l1.beacon=http://10.0.0.4:5555"
    for chain, network, reth, sequencer in (
        ("optimism", "op-mainnet", "optimism", "https://mainnet-sequencer.optimism.io"),
        ("base", "base-mainnet", "base", "https://mainnet-sequencer.base.org"),
        ("third", "third-mainnet", "third", "https://sequencer.third.example"),
    ):
        assert f"--network={network} " in args[f"{chain}-op-node"]
        assert l1 in args[f"{chain}-op-node"]  # the parent chain's node, from the fleet's L1 host
        assert f"node --chain {reth} " in args[f"{chain}-op-reth"]
        assert f"--rollup.sequencer-http {sequencer} " in args[f"{chain}-op-reth"]
    # Base's deeper derivation is a catalog field of Base, not a branch on its name.
    assert "--verifier.l1-confs=4" in args["base-op-node"]
    assert "l1-confs" not in args["third-op-node"] and "l1-confs" not in args["optimism-op-node"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.pop("op_stack"), "service op-node (client op-node) needs `op_stack`"),
        (lambda c: c.pop("parent"), "service op-node (client op-node) needs `parent`"),
        (lambda c: c["op_stack"].pop("sequencer_http"), "chains.third.op_stack.sequencer_http"),
        (lambda c: c["op_stack"].update(sequencer_http="http://plain.example"), "chains.third.op_stack.sequencer_http"),
        (lambda c: c.update(parent={"chain": "polygon"}), "parent chain polygon has no `serves_children`"),
        (lambda c: c.update(parent={"chain": "nowhere"}), "parent.chain 'nowhere' is not a chain of the catalog"),
    ],
)
def test_a_chain_missing_what_its_clients_read_is_refused_naming_it(tmp_path, change, named):
    chain = yaml.safe_load(yaml.safe_dump(THIRD))
    change(chain)
    with pytest.raises(ValidationError) as refused:
        catalog_with(tmp_path, "third", chain)
    assert named in str(refused.value).replace("\n  ", ".")


def test_client_quirks_are_catalog_fields():
    """AvalancheGo's C-chain config file and WebSocket path come from clients.yml."""
    from mevfleet.nodes import node_files
    from mevfleet.render import HostFacts

    plan = compile_plan(
        parse_inventory("fleet: {nodes: mainnet}\nhosts: {a: {chains: [avalanche], address: 10.0.0.6}}", "f.yml")
    ).hosts["a"]
    node = plan.nodes[0]
    assert f"{node.config_dir}/chains/C/config.json" in {f.path for f in node_files(plan, HostFacts())}
    assert plan.agent is not None
    assert plan.agent.chains[0].ws_url == "ws://10.0.0.6:9650/ext/bc/C/ws"
    assert plan.agent.chains[0].rpc_url == "http://10.0.0.6:9650/ext/bc/C/rpc"


def test_plan_code_names_no_chain():
    """No `if chain == "base"` and no literal L1: the plan, its concerns' planning and the nodes package read
    chains from the catalog."""
    package = Path(__file__).resolve().parents[2] / "deploy" / "mevfleet"
    planning = ("plan", "model", "registry", "kernel", "timesync", "firewall", "monitoring", "agent", "control")
    sources = [*(package / f"{name}.py" for name in planning), *sorted((package / "nodes").glob("*.py"))]
    names = "|".join(re.escape(c) for c in load_catalog().chains)
    literal = re.compile(rf"""(['"])({names})\1""")
    found = [f"{p.name}: {m.group(0)}" for p in sources for m in literal.finditer(p.read_text())]
    assert not found
