"""Who is kept out: every planned port of every host, loaded into the real nft in a private network
namespace, is tried from a source of every exposure class (fleet, monitoring, operator, bus, outside) and
must be accepted only from its own class. Widening one class's sources (the monitoring class to the whole
private network: exporters open to every fleet host) must be caught by the same check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.inventory import load_inventory
from mevfleet.model import FirewallPlan, HostPlan
from mevfleet.nft import exposure_classes, exposure_violations, representatives
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

NFT = shutil.which("nft") or "/usr/sbin/nft"
can_netns = os.geteuid() == 0 and os.path.exists(NFT) and shutil.which("unshare") is not None
FLEETS = {name: load_inventory(INVENTORY_DIR / f"{name}.yml") for name in ("devnet", "production.example")}
PLANS = {name: compile_plan(inventory) for name, inventory in FLEETS.items()}
HOSTS = [pytest.param(fleet, host, id=f"{fleet}-{host}") for fleet, plan in PLANS.items() for host in plan.hosts]


def loaded(plan: HostPlan, tmp_path) -> dict:
    """The host's ruleset as the kernel holds it after `nft -f`, in a network namespace of its own."""
    (f,) = [f for f in host_files(plan, HostFacts()) if f.path == "/etc/nftables.conf"]
    rules = tmp_path / "nftables.conf"
    rules.write_text(f.content)
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"{NFT} -f {rules} && {NFT} -j list table inet mevfleet"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def widened_monitoring(plan: HostPlan, networks: tuple[str, ...]) -> HostPlan:
    rules = tuple(
        r.model_copy(update={"sources": networks}) if r.comment.startswith("monitoring:") else r
        for r in plan.firewall.rules
    )
    firewall: FirewallPlan = plan.firewall.model_copy(update={"rules": rules})
    return plan.model_copy(update={"firewall": firewall})


def test_every_class_has_a_source_of_its_own():
    for name, inventory in FLEETS.items():
        classes = exposure_classes(inventory, PLANS[name])
        picked = representatives(classes)
        assert {"fleet", "monitoring", "operator", "outside"} <= set(picked), (name, picked)
        # The fleet's representative is a fleet host that is neither the monitoring host nor an operator.
        assert picked["fleet"] not in {picked["monitoring"], picked["operator"]}, picked


@pytest.mark.skipif(not can_netns, reason="needs root, nft and unshare to load a ruleset in a private netns")
@pytest.mark.parametrize(("fleet", "host"), HOSTS)
def test_every_port_is_accepted_only_from_its_own_class(fleet, host, tmp_path):
    inventory, plan = FLEETS[fleet], PLANS[fleet].hosts[host]
    classes = exposure_classes(inventory, PLANS[fleet])
    wrong = exposure_violations(loaded(plan, tmp_path), plan, classes, inventory.fleet.ssh_sources)
    assert not wrong, "\n".join(wrong)


@pytest.mark.skipif(not can_netns, reason="needs root, nft and unshare to load a ruleset in a private netns")
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_monitoring_sources_widened_to_the_private_network_are_caught(fleet, tmp_path):
    inventory = FLEETS[fleet]
    classes = exposure_classes(inventory, PLANS[fleet])
    plan = PLANS[fleet].hosts["eth1"]
    widened = widened_monitoring(plan, tuple(inventory.fleet.private_networks))
    wrong = exposure_violations(loaded(widened, tmp_path), widened, classes, inventory.fleet.ssh_sources)
    # node_exporter and the agent's metrics now answer every fleet host (and, on the devnet, the operator,
    # whose address is inside the private network): exactly those ports are flagged, from the fleet.
    fleet_source = representatives(classes)["fleet"]
    assert wrong and all("(monitoring) tcp/" in w and ": accept, expected drop" in w for w in wrong), wrong
    flagged = {w.split(" ")[0] for w in wrong if f" from fleet {fleet_source}:" in w}
    assert flagged == {p.key for p in plan.ports() if p.exposure == "monitoring"}, wrong
