"""mevfleet.space: the df probe run by this machine's own shell, and the one threshold the alert, the deploy
and verify share."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from mevfleet import REPO_ROOT, space
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan


def _probe(paths: tuple[str, ...]) -> list[space.Filesystem]:
    out = subprocess.run(["sh", "-c", space.probe_command(paths)], capture_output=True, text=True, check=True)
    return space.parse(out.stdout.splitlines())


def test_probe_reads_each_filesystem_once_and_skips_missing_paths(tmp_path):
    odd = tmp_path / "a dir; with $(odd) name"
    odd.mkdir()
    filesystems = _probe(("/", "/etc", str(odd), "/no/such/path"))
    mounts = [fs.mount for fs in filesystems]
    assert "/" in mounts and len(mounts) == len(set(mounts))
    assert all(fs.size_kib > 0 and 0 <= fs.avail_kib <= fs.size_kib and fs.fstype for fs in filesystems)


def test_below_the_alert_threshold_is_named_and_refused_only_without_room_to_deploy():
    ok = space.Filesystem("/", 1000, 500, "ext4")
    full = space.Filesystem("/var/lib/mevagent", 32768, 1024, "tmpfs")  # 3.1% free
    big = space.Filesystem("/var/lib/reth", 4 * 1024**3, 100 * 1024**2, "xfs")  # 2.4% free, 100 GiB left
    machine = space.Filesystem("/", 252 * 1024**2, 1024, "overlay")  # a container's root: the machine's disk
    assert space.short_of_room([ok, full, big, machine]) == [full, big]
    space.refuse_if_full([ok, big, machine])
    with pytest.raises(space.DiskFull, match=r"/var/lib/mevagent: 1\.0 MiB free of 32\.0 MiB \(97% used\)"):
        space.refuse_if_full([ok, full, big])


def test_threshold_is_the_alerts():
    rules = yaml.safe_load((REPO_ROOT / "dashboards/rules/hosts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DiskAlmostFull"]
    assert f"< {space.MIN_FREE_RATIO}" in rule["expr"]
    assert f'fstype!~"{"|".join(sorted(space.IGNORED_TYPES))}"' in rule["expr"].replace("\n", "")


def test_write_paths_cover_node_data_and_agent_state():
    plan = compile_plan(load_inventory(REPO_ROOT / "inventory/devnet.yml")).hosts["eth1"]
    paths = space.write_paths(plan)
    assert plan.agent is not None and plan.agent.state_dir in paths
    assert all(n.data_dir in paths for n in plan.nodes) and "/etc" in paths
