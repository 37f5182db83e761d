"""The agent's place in the host plan: which hosts get it, what its config says, what its unit allows."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from mevagent.config import validate
from mevfleet import INVENTORY_DIR
from mevfleet.agent import agent_files, install_script
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))


def test_every_evm_node_host_gets_one_agent_and_no_other_host_does():
    for fleet in (DEVNET, PRODUCTION):
        for name, plan in fleet.hosts.items():
            evm = [c for c in plan.chains if c != "solana"]
            assert (plan.agent is not None) == bool(evm), name
            if plan.agent:
                assert [c.chain for c in plan.agent.chains] == evm
                assert "python3-venv" in plan.packages
    # No agent on the Solana host means no scrape target that could only ever be down.
    agent_targets = {t.host for h in DEVNET.hosts.values() for t in h.scrape_targets if t.job == "mevagent"}
    assert agent_targets == {n for n, h in DEVNET.hosts.items() if h.agent}


def test_agent_reads_its_own_node_and_is_dry_run_by_default():
    agent = DEVNET.hosts["op1"].agent
    assert agent.chains[0].ipc == "/run/optimism-anvil/node.ipc"
    assert agent.node_groups == ("opreth",)
    assert agent.api_bind == "127.0.0.1" and agent.metrics_bind == DEVNET.hosts["op1"].address
    assert not any(c.live for h in DEVNET.hosts.values() if h.agent for c in h.agent.chains)
    avax = PRODUCTION.hosts["avax1"].agent.chains[0]
    assert avax.ws_url.endswith("/ext/bc/C/ws"), "AvalancheGo serves the C-chain's WebSocket at /ext/bc/C/ws"


def test_rendered_config_is_what_the_agent_accepts(tmp_path):
    token = tmp_path / "api.token"
    token.write_text("x" * 64)
    token.chmod(0o600)
    for plan in DEVNET.hosts.values():
        for path, _, context, mode, group in agent_files(plan):
            if path.endswith(".yml"):
                data = yaml.safe_load(context["config_yaml"])
                data["api"]["token_file"] = str(token)
                # The bus password is a secret file on the host too (the deploy copies it there).
                assert data["bus"]["password_file"] == "/etc/mevagent/redis.password"
                data["bus"]["password_file"] = str(token)
                config = validate(data)
                assert config.chains[0].live is False
                assert config.bus is not None and config.bus.agent == config.bus.username == plan.name
                assert config.api.bind == "127.0.0.1" and config.api.control_bind == plan.listen_address
                assert (mode, group) == ("0640", "mevagent")


def test_live_chain_needs_endpoints_and_bad_limits_are_refused_naming_the_field():
    text = "fleet: {agent: {live: [base], risk: {max_position_size_usd: -1}}}\nhosts: {b: {chains: [base]}}"
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    message = str(exc.value)
    assert "fleet.agent.risk: max_position_size_usd" in message
    assert "fleet.agent.endpoints.base: a live chain needs at least one endpoint" in message
    with pytest.raises(InventoryError) as exc:
        parse_inventory("fleet: {agent: {live: [solana]}}\nhosts: {s: {chains: [solana]}}", "f.yml")
    assert "fleet.agent.live[0]" in str(exc.value)


def test_live_chain_config_names_key_files_the_operator_installs():
    text = (
        "fleet: {agent: {live: [base], endpoints: {base: [{name: seq, url: 'https://seq.example', "
        "kind: private_tx}]}}}\nhosts: {b: {chains: [base], address: 10.0.0.9}}"
    )
    chain = compile_plan(parse_inventory(text, "f.yml")).hosts["b"].agent.config["chains"][0]
    assert chain["live"] is True and chain["signing_key_file"] == "/etc/mevagent/keys/base.key"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    plan = DEVNET.hosts["eth1"]
    unit = next(f for f in host_files(plan, HostFacts()) if f.path.endswith("mevagent.service"))
    path = tmp_path / "mevagent.service"
    path.write_text(unit.content.replace(plan.agent.release_root + "/current/venv/bin/mevagent", "/bin/true"))
    run = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    problems = [line for line in run.stderr.splitlines() if "mevagent.service" in line and "Unknown" in line]
    assert not problems, run.stderr
    assert "CPUAffinity=1" in unit.content and "SupplementaryGroups=ethereumjs" in unit.content  # the real pair


def test_install_checks_checksum_and_python_before_switching():
    script = install_script(DEVNET.hosts["eth1"].agent, "ab" * 32)
    assert script.index("checksum mismatch") < script.index("python3 -m venv")
    assert script.index("sys.version_info") < script.index("rm -rf")
    assert script.rindex(".mevfleet-sha256") > script.index("pip")
