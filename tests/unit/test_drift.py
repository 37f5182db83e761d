"""Live drift judged by the real nft: the planned ruleset and hand-made changes to it are loaded in a private
network namespace, listed the way the deploy lists a host's, and each change must be named (and only
changes: counters and meter entries filled by traffic are runtime state, not drift). Also: time service
openings come from the service registry, and the NTP port is open to every node host."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.drift import Expected, LiveState, findings, normal_key, ruleset_drift
from mevfleet.inventory import load_inventory
from mevfleet.nft import Packet, verdict
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
NFT = shutil.which("nft") or "/usr/sbin/nft"
can_netns = os.geteuid() == 0 and os.path.exists(NFT) and shutil.which("unshare") is not None
needs_netns = pytest.mark.skipif(not can_netns, reason="needs root, nft and unshare for a private netns")


def _ruleset(host: str) -> str:
    (f,) = [f for f in host_files(DEVNET.hosts[host], HostFacts(container=True)) if f.path == "/etc/nftables.conf"]
    return f.content


def _listed(tmp_path, ruleset: str, then: str = "", json: bool = False) -> str:
    rules = tmp_path / "nftables.conf"
    rules.write_text(ruleset)
    listing = f"{NFT} -j list ruleset" if json else f"{NFT} -s list ruleset"
    script = f"{NFT} -f {rules} && {then or 'true'} && {listing}"
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, check=True).stdout


@needs_netns
def test_an_untouched_ruleset_has_no_drift_even_with_runtime_state(tmp_path):
    planned = _listed(tmp_path, _ruleset("eth1"))
    # A meter entry (SSH rate limit per source) is what traffic leaves behind: state, not drift.
    meter = f"{NFT} add element inet mevfleet ssh_meter_v4 '{{ 203.0.113.5 }}'"
    live = _listed(tmp_path, _ruleset("eth1"), then=meter)
    assert "203.0.113.5" in live
    assert ruleset_drift(live, planned, keep_docker_tables=False) == []


@needs_netns
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("insert rule inet mevfleet input tcp dport 5555 accept", "tcp dport 5555 accept"),
        ("add table ip rogue", "table ip rogue is not in the plan"),
        (("add chain inet mevfleet sneaky", "insert rule inet mevfleet input jump sneaky"), "jump sneaky"),
        ("chain inet mevfleet input '{ policy accept; }'", "policy accept"),
    ],
)
def test_each_hand_made_change_is_named_and_fixed(tmp_path, change, named):
    planned = _listed(tmp_path, _ruleset("eth1"))
    changes = (change,) if isinstance(change, str) else change
    live = _listed(tmp_path, _ruleset("eth1"), then=" && ".join(f"{NFT} {c}" for c in changes))
    drifts = ruleset_drift(live, planned, keep_docker_tables=False)
    assert drifts and all(d.kind == "firewall" and d.fix for d in drifts), drifts
    assert any(named in d.what or named in d.detail for d in drifts), drifts


@needs_netns
def test_docker_tables_are_left_alone_only_where_the_plan_runs_containers(tmp_path):
    planned = _listed(tmp_path, _ruleset("eth1"))
    live = _listed(tmp_path, _ruleset("eth1"), then=f"{NFT} add table ip nat && {NFT} add table ip filter")
    assert ruleset_drift(live, planned, keep_docker_tables=True) == []
    assert {d.what for d in ruleset_drift(live, planned, keep_docker_tables=False)} == {
        "table ip nat is not in the plan",
        "table ip filter is not in the plan",
    }


@needs_netns
def test_the_monitoring_host_serves_ntp_to_every_fleet_host(tmp_path):
    import json

    mon = DEVNET.hosts["mon1"]
    ntp = [p for p in mon.ports() if p.key == "fleet.ntp.ntp"]
    assert ntp and ntp[0].protocols == ("udp",) and ntp[0].port == 123 and ntp[0].exposure == "fleet"
    ruleset = json.loads(_listed(tmp_path, _ruleset("mon1"), json=True))
    for name, plan in DEVNET.hosts.items():
        if name != "mon1":
            assert mon.address in plan.time.servers
            assert verdict(ruleset, Packet(plan.address, "udp", 123)) == "accept", name
    assert verdict(ruleset, Packet("203.0.113.7", "udp", 123)) == "drop"


def test_unplanned_files_unit_overrides_and_keys_are_named():
    want = Expected(
        ruleset="",
        files=frozenset({"/etc/ssh/sshd_config.d/90-mevfleet.conf", "/etc/systemd/system/eth-anvil.service"}),
        units=("eth-anvil.service",),
        authorized_keys=("ssh-ed25519 AAAAplanned",),
    )
    live = LiveState(
        dir_files={"/etc/ssh/sshd_config.d": ["/etc/ssh/sshd_config.d/00-password.conf"]},
        units={
            "eth-anvil.service": {
                "Id": "eth-anvil.service",
                "LoadState": "loaded",
                "UnitFileState": "masked",
                "ActiveState": "failed",
                "FragmentPath": "/etc/systemd/system/eth-anvil.service",
                "DropInPaths": "/etc/systemd/system/eth-anvil.service.d/override.conf",
            }
        },
        authorized_keys=["ssh-ed25519 AAAAplanned operator@laptop", "ssh-rsa AAAAextra intruder"],
    )
    named = {(d.kind, d.what) for d in findings(want, live)}
    assert named == {
        ("owned-files", "/etc/ssh/sshd_config.d/00-password.conf: not planned in /etc/ssh/sshd_config.d"),
        ("unit-override", "eth-anvil.service: /etc/systemd/system/eth-anvil.service.d/override.conf is not planned"),
        ("unit-state", "eth-anvil.service: masked"),
        ("authorized-keys", "/root/.ssh/authorized_keys: 1 key(s) not in the inventory, 0 missing"),
    }
    # A package's own file in an owned directory is not drift.
    live.packaged = {"/etc/ssh/sshd_config.d/00-password.conf"}
    assert "owned-files" not in {d.kind for d in findings(want, live)}


def test_key_comments_do_not_count():
    assert normal_key("ssh-ed25519 AAAA x@y") == normal_key("ssh-ed25519 AAAA")
    assert normal_key('command="/bin/sh" ssh-ed25519 AAAA') != normal_key("ssh-ed25519 AAAA")
