"""What the plan opens and serves: no port for a service that does not run on the host, the bus only to
the hosts that hold its password, fleet-exposed RPC without debug/trace/admin namespaces, the devnet's
anvil (which cannot turn those off) on loopback only, one orphan line in chrony.conf."""

from __future__ import annotations

import json
import re

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.catalog import load_catalog
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))


def _opened(plan) -> set[str]:
    return {port for rule in plan.firewall.rules for port in rule.ports}


def _file(plan, path: str) -> str:
    (f,) = [f for f in host_files(plan, HostFacts()) if f.path == path]
    return f.content


def test_the_monitoring_host_opens_no_port_for_a_service_it_does_not_run():
    devnet, production = DEVNET.hosts["mon1"], PRODUCTION.hosts["mon1"]
    # journal-remote fleets (the devnet) run neither Grafana nor Loki; alloy fleets no journal-remote.
    journals = str(DEVNET.hosts["eth1"].log_senders[0].upload)  # eth1's port for its journal on mon1
    assert not {"3000", "3100"} & _opened(devnet) and journals in _opened(devnet)
    assert {"3000", "3100"} <= _opened(production) and journals not in _opened(production)
    # The control plane (on the first monitoring host) serves its operator URLs to the allowlist only.
    for fleet in (DEVNET, PRODUCTION):
        plan = fleet.hosts["mon1"]
        (rule,) = [r for r in plan.firewall.rules if "mevcontrol.risk" in r.comment]
        assert {"8080", "8900", "8903", "8908"} <= set(rule.ports) and rule.comment.startswith("operator:")
        assert "5432" not in _opened(plan), "PostgreSQL is on loopback"
        assert not any("8080" in _opened(h) for n, h in fleet.hosts.items() if n != "mon1")
    assert "/etc/grafana/grafana.ini" not in {f.path for f in host_files(devnet, HostFacts())}


def test_the_bus_is_open_only_to_hosts_that_hold_its_password():
    # Every agent and the control plane hold a bus password: Redis opens to their hosts alone.
    for fleet in (DEVNET, PRODUCTION):
        (rule,) = [r for r in fleet.hosts["mon1"].firewall.rules if "redis" in r.comment]
        holders = sorted(f"{h.listen_address}/32" for h in fleet.hosts.values() if h.agent or h.control)
        assert rule.ports == ("6379",) and sorted(rule.sources) == holders
    assert "bind 10.20.0.10 127.0.0.1" in _file(PRODUCTION.hosts["mon1"], "/etc/redis/redis.conf")
    # Without the flag no host holds it: the firewall opens the bus to nobody.
    inventory = load_inventory(INVENTORY_DIR / "production.example.yml")
    catalog = load_catalog()
    agent = catalog.fleet.node_host["mevagent"].model_copy(update={"bus_client": False})
    control = catalog.fleet.monitoring["mevcontrol"].model_copy(update={"bus_client": False})
    fleet_services = catalog.fleet.model_copy(
        update={"node_host": {"mevagent": agent}, "monitoring": {**catalog.fleet.monitoring, "mevcontrol": control}}
    )
    plan = compile_plan(inventory, catalog.model_copy(update={"fleet": fleet_services}))
    assert not [r for r in plan.hosts["mon1"].firewall.rules if "redis" in r.comment]


def test_agent_apis_open_to_the_control_host_only_and_loopback_without_one():
    for fleet in (DEVNET, PRODUCTION):
        control = fleet.hosts["mon1"].listen_address
        for plan in fleet.hosts.values():
            if plan.agent is None:
                continue
            (rule,) = [r for r in plan.firewall.rules if "mevagent.api" in r.comment]
            assert rule.sources == (f"{control}/32",) and rule.ports == ("8780",)
            assert (plan.agent.api_bind, plan.agent.api_control_bind) == ("127.0.0.1", plan.listen_address)
    # No monitoring host, no control plane: the API stays on loopback and nothing is opened.
    alone = compile_plan(parse_inventory("hosts: {b: {chains: [base], address: 10.0.0.9}}", "f.yml"))
    agent = alone.hosts["b"].agent
    assert agent is not None and agent.api_control_bind is None and "bus" not in agent.config
    assert not [r for r in alone.hosts["b"].firewall.rules if "8780" in r.ports]


API = re.compile(r"--(http|ws)\.api[= ](\S+)")


@pytest.mark.parametrize("name", ["eth1", "arb1", "op1", "base1", "poly1", "bsc1"])
def test_fleet_exposed_rpc_serves_only_the_namespaces_the_agent_needs(name):
    plan = PRODUCTION.hosts[name]
    for node in plan.nodes:
        args = " ".join(node.args)
        pinned = dict(API.findall(args))
        # Erigon serves WebSocket on its HTTP port, with --http.api's list: a WS server of its own only
        # where the plan gives it a `ws` port.
        servers = ["http"] + (["ws"] if any(p.key == f"{node.chain}.{node.service}.ws" for p in plan.ports()) else [])
        for server in servers:
            if re.search(rf"--{server}[ .]", args):
                # An unpinned list is the client's default, which differs by client and version.
                assert server in pinned, f"{node.unit}: --{server}.api not set"
        for server, value in pinned.items():
            assert set(value.split(",")) <= {"eth", "net", "web3", "txpool"}, (node.unit, server, value)


def test_avalanche_c_chain_serves_no_debug_namespace():
    config = json.loads(
        _file(PRODUCTION.hosts["avax1"], "/etc/mevfleet/nodes/avalanche-avalanchego/chains/C/config.json")
    )
    assert not [api for api in config["eth-apis"] if "debug" in api or "tracer" in api]


def test_anvil_is_never_reachable_from_the_fleet():
    for plan in DEVNET.hosts.values():
        for node in plan.nodes:
            if node.client == "anvil":
                assert "--host 127.0.0.1 --port" in " ".join(node.args), node.args
                assert not [a for a in node.args if "--host 172." in a]
        anvil_ports = {str(p.port) for p in plan.ports() if p.service == "anvil"}
        assert all(p.exposure == "loopback" for p in plan.ports() if p.service == "anvil")
        assert not anvil_ports & _opened(plan), plan.name


@pytest.mark.parametrize("fleet", [DEVNET, PRODUCTION], ids=["devnet", "production"])
def test_local_orphan_stratum_is_written_once(fleet):
    for plan in fleet.hosts.values():
        chrony = _file(plan, "/etc/chrony/chrony.conf")
        expected = 1 if plan.time.serve_networks or not plan.time.servers else 0
        assert chrony.count("local stratum 10 orphan") == expected, plan.name


def test_no_grafana_secret_or_user_where_grafana_is_not_planned():
    from mevfleet.monitoring import GRAFANA_ADMIN_PASSWORD, secrets

    devnet, production = DEVNET.hosts["mon1"], PRODUCTION.hosts["mon1"]
    assert GRAFANA_ADMIN_PASSWORD not in {s.path for s in secrets(devnet)}
    assert "grafana" not in {u.name for u in devnet.users}
    assert GRAFANA_ADMIN_PASSWORD in {s.path for s in secrets(production)}
    assert "grafana" in {u.name for u in production.users}
