"""Rendered files checked by the real tools that read them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.inventory import load_inventory
from mevfleet.nft import Packet, verdict
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

FLEET = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))
NFT = shutil.which("nft") or "/usr/sbin/nft"
can_netns = os.geteuid() == 0 and os.path.exists(NFT) and shutil.which("unshare") is not None


def _file(host: str, path: str, container: bool = False) -> str:
    (f,) = [f for f in host_files(FLEET.hosts[host], HostFacts(container=container)) if f.path == path]
    return f.content


@pytest.mark.skipif(not can_netns, reason="needs root, nft and unshare to load a ruleset in a private netns")
@pytest.mark.parametrize("host", list(FLEET.hosts))
def test_ruleset_loads_in_a_network_namespace_and_does_what_the_plan_says(tmp_path, host):
    rules = tmp_path / "nftables.conf"
    rules.write_text(_file(host, "/etc/nftables.conf"))
    # A fresh network namespace: the real nft loads the real ruleset without touching this machine's.
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"{NFT} -f {rules} && {NFT} -j list table inet mevfleet"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ruleset = json.loads(out)
    plan = FLEET.hosts[host]
    assert verdict(ruleset, Packet("203.0.113.9", "tcp", plan.ssh_port)) == "accept"
    for p in plan.ports():
        expected = "accept" if p.exposure in ("public", "ssh") else "drop"
        assert verdict(ruleset, Packet("203.0.113.9", p.protocols[0], p.port)) == expected, p.key
        if p.exposure == "fleet":
            assert verdict(ruleset, Packet("10.20.5.5", p.protocols[0], p.port)) == "accept", p.key


def test_chrony_runs_without_clock_control_only_in_containers():
    assert '"-F 1 -x"' in _file("eth1", "/etc/default/chrony", container=True)
    assert '"-F 1"' in _file("eth1", "/etc/default/chrony")


def test_every_file_is_marked_managed():
    for f in host_files(FLEET.hosts["sol1"], HostFacts()):
        if f.path.endswith(".json"):
            json.loads(f.content)
        else:
            assert "mevfleet" in f.content.splitlines()[0] + f.content.splitlines()[1], f.path
