"""The host plan: one registry yields ports, firewall and scrape targets; tuning merges as documented."""

from __future__ import annotations

import json

from mevfleet import INVENTORY_DIR
from mevfleet.catalog import load_catalog
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan

from .conftest import SOLANA_AGENT

ALL_CHAINS = list(load_catalog().chains)


def one_box(**extra: str):
    fields = ", ".join(f"{k}: {v}" for k, v in extra.items())
    text = f"fleet: {{agent: {json.dumps(SOLANA_AGENT)}}}\n"
    text += f"hosts: {{big: {{chains: [{', '.join(ALL_CHAINS)}], address: 10.0.0.5{', ' + fields if fields else ''}}}}}"
    return compile_plan(parse_inventory(text, "f.yml")).hosts["big"]


def test_all_eight_chains_fit_on_one_box_without_collisions():
    plan = one_box(roles="[monitoring]")
    claimed = [(proto, port) for p in plan.ports() for proto in p.protocols for port in p.span()]
    assert len(claimed) == len(set(claimed))
    assert {s.chain for s in plan.services if s.chain} == set(ALL_CHAINS)


def test_first_chain_keeps_defaults_later_ones_shift():
    ports = {p.key: p.port for p in one_box().ports()}
    assert ports["ethereum.erigon.rpc"] == 8545  # first on the box: documented default
    assert ports["optimism.op-reth.rpc"] == 8645  # collides, moves by its port_shift (100)
    assert ports["bsc.bsc-geth.p2p"] == 30711  # a chain moves as a whole, so its ports stay recognisable
    assert ports["avalanche.avalanchego.http"] == 9650  # no collision: stays put


def test_nothing_but_p2p_and_ssh_is_open_to_the_internet():
    plan = one_box()
    public = {p.key for p in plan.ports() if p.exposure in ("public", "ssh")}
    assert all(
        k.split(".")[-1]
        in {
            "p2p",
            "p2p-eth67",
            "torrent",
            "caplin-discovery",
            "caplin-p2p",
            "gossip",
            "dynamic",
            "staking",
            "ssh",
        }
        for k in public
    )
    world = [r for r in plan.firewall.rules if r.sources is None]
    rpc_ports = {str(p.port) for p in plan.ports() if p.name in ("rpc", "ws", "metrics", "http", "api")}
    assert not rpc_ports & {port for r in world for port in r.ports}


def test_no_fleet_networks_means_fleet_ports_stay_closed():
    plan = compile_plan(parse_inventory("hosts: {n: {chains: [bsc]}}", "f.yml")).hosts["n"]
    assert all(r.sources is None for r in plan.firewall.rules)  # only public rules exist


def test_scrape_targets_derive_from_the_registry():
    fleet = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
    targets = {(t.host, t.target) for t in fleet.hosts["mon1"].scrape_targets}
    expected = {(h.name, f"{h.address}:{p.port}") for h in fleet.hosts.values() for p in h.ports() if p.scrape}
    assert targets == expected
    assert not any(h.scrape_targets for n, h in fleet.hosts.items() if n != "mon1")


def test_solana_raises_buffers_to_agave_values_and_ethereum_raises_map_count():
    plan = one_box()
    sysctls = plan.sysctls()
    assert sysctls["net.core.rmem_max"] == "134217728"  # Agave docs (profile default is 64 MiB)
    assert sysctls["vm.max_map_count"] == "16777216"  # Erigon docs beat Agave's 1000000
    assert int(sysctls["fs.nr_open"]) >= plan.nofile  # never below the open-file limit
    files = [f.path for f in plan.sysctl_files if "net.core.rmem_max" in f.values]
    assert files == ["/etc/sysctl.d/10-mevfleet-network-buffers.conf"]  # one key, one file


def test_inventory_override_wins_and_is_noted():
    plan = compile_plan(parse_inventory("hosts: {n: {chains: [bsc], sysctls: {vm.swappiness: 10}}}", "f.yml")).hosts[
        "n"
    ]
    (memory,) = [f for f in plan.sysctl_files if f.concern == "memory"]
    assert memory.values["vm.swappiness"] == "10" and memory.notes["vm.swappiness"] == "inventory override"


def test_hugepages_default_and_opt_out():
    assert one_box().sysctls()["vm.nr_hugepages"] == "2048"
    assert one_box(hugepages="0").sysctls()["vm.nr_hugepages"] == "0"


def test_cpu_plan_from_core_count():
    cpu = one_box(hardware="{cpus: 32}").cpu
    assert (cpu.node_cores, cpu.agent_cores, cpu.shared) == ("0-27", "28-31", False)
    assert one_box().cpu is None  # unknown core count: no pinning rather than a guess


def test_node_hosts_follow_the_monitoring_host_for_time():
    fleet = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
    assert fleet.hosts["eth1"].time.servers == ("172.30.87.10",)
    assert fleet.hosts["mon1"].time.serve_networks == ("172.30.87.0/24",)


# Run in a fresh interpreter: the inventory, catalog and release versions are read first (the caller's
# job, inputs.gather); then an audit hook (PEP 578: every open, directory listing, import of a new
# module, process and socket passes through one) records anything planning does beyond computing.
PURITY_PROBE = """
import json, sys
from mevfleet import INVENTORY_DIR
from mevfleet.inputs import gather
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan, plan_fleet
import encodings.unicode_escape  # a codec jinja2's lexer loads lazily for string literals in the args

inputs = gather()
inventories = [load_inventory(p) for p in sorted(INVENTORY_DIR.glob("*.yml"))]
IO = ("open", "os.listdir", "os.scandir", "os.stat", "import", "subprocess.Popen", "os.system", "socket.")
seen, recording = [], [True]


def hook(event, args):
    if recording[0] and event.startswith(IO):
        frame = sys._getframe(1)
        while frame and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back
        seen.append([event, str(args)[:160], frame and f"{frame.f_code.co_filename}:{frame.f_lineno}"])


sys.addaudithook(hook)
plans = [plan_fleet(inventory, inputs) for inventory in inventories]
recording[0] = False
loaded = [m for m in ("mevagent", "mevcontrol") if m in sys.modules]
same = all(fleet == compile_plan(inventory) for inventory, (fleet, _) in zip(inventories, plans))
print(json.dumps({
    "io": seen,
    "hosts": sum(len(fleet.hosts) for fleet, _ in plans),
    "problems": sum(len(problems) for _, problems in plans),
    "same_as_compile_plan": same,
    "agent_imported": loaded,
}))
"""


def test_plan_is_pure():
    """Planning reads no file, lists no directory, imports nothing new (neither the agent nor the control
    plane), starts no process and opens no socket; it gives what compile_plan gives, and gives it again."""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", PURITY_PROBE], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["io"] == []
    assert result["hosts"] >= 10 and result["problems"] == 0
    assert result["same_as_compile_plan"]
    # Not imported before or during planning: only compile_plan's judge step (after it) loads them.
    assert result["agent_imported"] == []
