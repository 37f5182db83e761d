"""The agent's place in the host plan: which hosts get it, what its config says, what its unit allows."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from mevagent.config import validate
from mevfleet import INVENTORY_DIR
from mevfleet.agent import agent_files
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan
from mevfleet.release import agent_release
from mevfleet.render import HostFacts, host_files

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))


def test_every_node_host_gets_one_agent_and_no_other_host_does():
    for fleet in (DEVNET, PRODUCTION):
        for name, plan in fleet.hosts.items():
            assert (plan.agent is not None) == bool(plan.chains), name
            if plan.agent:
                assert [c.chain for c in plan.agent.chains] == list(plan.chains)
                assert "python3-venv" in plan.packages
    # An agent's scrape target exactly where an agent runs (none that could only ever be down).
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
        for f in agent_files(plan, HostFacts()):
            if f.path.endswith(".yml"):
                data = yaml.safe_load(f.context["config_yaml"])
                data["api"]["token_file"] = str(token)
                # The bus password is a secret file on the host too (the deploy copies it there).
                assert data["bus"]["password_file"] == "/etc/mevagent/redis.password"
                data["bus"]["password_file"] = str(token)
                config = validate(data)
                assert config.chains[0].live is False
                assert config.bus is not None and config.bus.agent == config.bus.username == plan.name
                assert config.api.bind == "127.0.0.1" and config.api.control_bind == plan.listen_address
                assert (f.mode, f.group) == ("0640", "mevagent")


def test_live_chain_needs_endpoints_and_bad_limits_are_refused_naming_the_field():
    text = "fleet: {agent: {live: [base], risk: {max_position_size_usd: -1}}}\nhosts: {b: {chains: [base]}}"
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    message = str(exc.value)
    assert "fleet.agent.risk: max_position_size_usd" in message
    assert "fleet.agent.endpoints.base: a live chain needs at least one endpoint" in message
    with pytest.raises(InventoryError) as exc:
        parse_inventory("fleet: {agent: {live: [solan]}}\nhosts: {s: {chains: [solana]}}", "f.yml")
    assert "fleet.agent.live[0]: not a chain of the catalog: 'solan'" in str(exc.value)


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
    script = agent_release(DEVNET.hosts["eth1"].agent).install_script("ab" * 32)
    assert script.index("checksum mismatch") < script.index("python3 -m venv")
    assert script.index("sys.version_info") < script.index("rm -rf")
    assert script.rindex(".mevfleet-sha256") > script.index("pip")


def test_inventory_sets_a_chains_own_agent_settings_and_the_plan_keeps_its_keys(tmp_path):
    router, wbnb = "0x10ED43C718714eb63d5aA57B78B54704E256024E", "0xbb4CdB9CBd36B01bD1cBaEBF2De08d9173bc095c"
    settings = {"swap_router": router, "wrapped_native": wbnb, "base_tokens": [wbnb], "max_daily_loss_usd": 250}
    text = yaml.safe_dump(
        {
            "fleet": {"agent": {"chains": {"bsc": settings}, "engine": {"max_in_flight": 4}}},
            "hosts": {
                "b": {"chains": ["bsc"], "address": "10.0.0.9"},
                "e": {"chains": ["ethereum"], "address": "10.0.0.10"},
            },
        }
    )
    fleet = compile_plan(parse_inventory(text, "f.yml"))
    bsc = fleet.hosts["b"].agent.config["chains"][0]
    assert (bsc["swap_router"], bsc["wrapped_native"], bsc["max_daily_loss_usd"]) == (router, wbnb, 250)
    assert bsc["live"] is False and bsc["name"] == "bsc", "the plan's own keys stay"
    assert "swap_router" not in fleet.hosts["e"].agent.config["chains"][0], "only the chain it was set for"
    assert fleet.hosts["e"].agent.config["engine"] == {"max_in_flight": 4}
    token = tmp_path / "api.token"
    token.write_text("x" * 64)
    token.chmod(0o600)
    data = fleet.hosts["b"].agent.config | {"api": fleet.hosts["b"].agent.config["api"] | {"token_file": str(token)}}
    data.pop("bus", None)
    assert validate(data).chains[0].swap_router == router.lower()


@pytest.mark.parametrize(
    ("chains", "named"),
    [
        ("{bsc: {live: true}}", "fleet.agent.chains.bsc.live: set by the plan, not the inventory"),
        ("{bsc: {swap_router: '0x12'}}", "fleet.agent.chains.bsc: swap_router"),
        ("{bsc: {no_such_setting: 1}}", "fleet.agent.chains.bsc: no_such_setting"),
        (
            "{bsc: {leg_venues: [{pool: '0x36696169C63e42cd08ce11f5deeBbCeBae652050', "
            "router: '0xB971eF87ede563556b2ED4b1C0b0019111Dd85d2', kind: swap_router02, fee: 2500}]}}",
            "fleet.agent.chains.bsc: leg_venues.0.fee: fee 2500 is not a Uniswap V3 fee tier (100, 500, 3000, 10000",
        ),
        ("{solan: {swap_router: '0x10ED43C718714eb63d5aA57B78B54704E256024E'}}", "fleet.agent.chains.solan"),
    ],
)
def test_bad_chain_settings_are_refused_naming_the_field(chains, named):
    text = f"fleet: {{agent: {{chains: {chains}}}}}\nhosts: {{b: {{chains: [bsc], address: 10.0.0.9}}}}"
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    assert named in str(exc.value)


def _agent_token(tmp_path) -> str:
    token = tmp_path / "api.token"
    token.write_text("x" * 64)
    token.chmod(0o600)
    return str(token)


def test_the_agent_beside_mev_boost_polls_it_at_the_catalogs_port_and_others_do_not(tmp_path):
    eth = PRODUCTION.hosts["eth1"]
    # The port the plan gave mev-boost's API (the catalog's, loopback), not a number of the agent's own.
    api = next(p for p in eth.ports() if p.key == "ethereum.mev-boost.api")
    assert api.exposure == "loopback"
    [chain] = eth.agent.config["chains"]
    assert chain["mev_boost"] == {"url": f"http://127.0.0.1:{api.port}", "poll_s": 12, "timeout_ms": 950 + 1000}
    data = eth.agent.config | {"api": eth.agent.config["api"] | {"token_file": _agent_token(tmp_path)}}
    data.pop("bus", None)  # its password is a file the deploy copies to the host
    config = validate(data)
    assert config.chains[0].mev_boost is not None and config.chains[0].mev_boost.url == chain["mev_boost"]["url"]
    # No other host runs mev-boost: no other agent polls one, the devnet's included (its nodes are stand-ins).
    for fleet in (PRODUCTION, DEVNET):
        for name, plan in fleet.hosts.items():
            if plan.agent is not None and (fleet, name) != (PRODUCTION, "eth1"):
                assert all("mev_boost" not in c for c in plan.agent.config["chains"]), name


def test_mev_boost_follows_the_inventorys_port_and_relay_timeout_and_is_not_the_inventorys_to_set():
    text = (
        "fleet: {mev_boost_timeouts: {getheader_ms: 800, getpayload_ms: 3000, regval_ms: 3000}}\n"
        "hosts: {e: {chains: [ethereum], address: 10.0.0.10, ports: {ethereum.mev-boost.api: 18650}}}"
    )
    plan = compile_plan(parse_inventory(text, "f.yml")).hosts["e"]
    assert plan.agent.config["chains"][0]["mev_boost"] == {
        "url": "http://127.0.0.1:18650", "poll_s": 12, "timeout_ms": 1800
    }  # fmt: skip
    assert "-addr 127.0.0.1:18650" in next(n for n in plan.nodes if n.client == "mev-boost").args
    text = (
        "fleet: {agent: {chains: {ethereum: {mev_boost: {url: 'http://127.0.0.1:1'}}}}}\n"
        "hosts: {e: {chains: [ethereum], address: 10.0.0.10}}"
    )
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "f.yml"))
    assert "fleet.agent.chains.ethereum.mev_boost: set by the plan, not the inventory" in str(exc.value)
