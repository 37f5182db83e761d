"""Rendered files checked by the real tools that read them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from pydantic import ValidationError

from mevfleet import INVENTORY_DIR
from mevfleet.inventory import load_inventory
from mevfleet.model import FileSpec
from mevfleet.nft import Packet, verdict
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

from .systemd_units import verify_problems

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
    assert verdict(ruleset, Packet("203.0.113.9", "tcp", plan.ssh.port)) == "accept"
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


# What chronyc 4.3 prints with -c: a node host that measured its fleet server 30 s ahead (selected), an
# upstream server it never reached, and its tracking line (System time 30 s: the correction it owes the
# clock and, with -x, never makes).
CHRONYC_SOURCES = "^,*,10.20.0.10,2,6,377,12,-30.000120,-30.000125,0.000210\n^,?,192.0.2.1,0,6,0,-,0.0,0.0,0.0\n"
CHRONYC_TRACKING = "0A14000A,10.20.0.10,3,1765000000.5,-30.000110,-0.000012,0.0001,-3.1,0.0,0.05,0.0002,0.0003,64.2,"
CHRONYC_TRACKING += "Normal\n"


def _chrony_metrics(tmp_path, answers: bool) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    from mevfleet.render import render

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    chronyc = bin_dir / "chronyc"
    body = (
        f'case "$*" in *sources*) printf %s "{CHRONYC_SOURCES}";; *tracking*) printf %s "{CHRONYC_TRACKING}";; esac'
        if answers
        else "echo '506 Cannot talk to daemon' >&2; exit 1"
    )
    chronyc.write_text(f"#!/bin/sh\n{body}\n")
    chronyc.chmod(0o755)
    script = tmp_path / "mevfleet-chrony-metrics"
    script.write_text(render("time/mevfleet-chrony-metrics.sh.j2", plan=FLEET.hosts["eth1"], textfile_dir=tmp_path))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run([str(script)], env=env, check=True, timeout=30)
    out = tmp_path / "mevfleet-chrony.prom"
    assert oct(out.stat().st_mode & 0o777) == "0o644" and sorted(p.name for p in tmp_path.glob("*.prom*")) == [out.name]
    return {
        s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(out.read_text())
        for s in family.samples
    }


def test_chrony_metrics_export_what_chrony_measured(tmp_path):
    metrics = _chrony_metrics(tmp_path, answers=True)
    assert metrics == {
        "mevfleet_chrony_up": 1.0,
        "mevfleet_chrony_system_offset_seconds": -30.00011,
        "mevfleet_chrony_source_offset_seconds,source=10.20.0.10": -30.000125,
        "mevfleet_chrony_source_error_seconds,source=10.20.0.10": 0.00021,
        "mevfleet_chrony_source_reach,source=10.20.0.10": 255.0,
        "mevfleet_chrony_source_selected,source=10.20.0.10": 1.0,
        "mevfleet_chrony_source_offset_seconds,source=192.0.2.1": 0.0,
        "mevfleet_chrony_source_error_seconds,source=192.0.2.1": 0.0,
        "mevfleet_chrony_source_reach,source=192.0.2.1": 0.0,
        "mevfleet_chrony_source_selected,source=192.0.2.1": 0.0,
    }


def test_chrony_metrics_say_chronyd_is_down_and_do_not_fail(tmp_path):
    # A failed oneshot would leave systemd `degraded` (verify fails the host) for a chronyd that is down,
    # which the alert and verify name better.
    assert _chrony_metrics(tmp_path, answers=False) == {"mevfleet_chrony_up": 0.0}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_chrony_metrics_unit_and_timer(tmp_path):
    files = {f.path: f.content for f in host_files(FLEET.hosts["eth1"], HostFacts())}
    names = [f"mevfleet-chrony-metrics.{suffix}" for suffix in ("service", "timer")]
    units = {name: files[f"/etc/systemd/system/{name}"] for name in names}
    problems = verify_problems(tmp_path, units, "mevfleet-chrony-metrics.timer")
    assert not problems, problems


def test_a_declared_file_is_a_template_or_content_never_both_nor_neither():
    """Every concern declares its files as FileSpec; one that says both (or nothing) is refused where it is
    declared, not rendered to something neither meant."""
    FileSpec(path="/etc/a", concern="x", template="logs/logrotate.j2")
    FileSpec(path="/etc/a", concern="x", content="")  # an empty file is content
    for wrong in ({"template": "logs/logrotate.j2", "content": "x"}, {}):
        with pytest.raises(ValidationError, match="exactly one"):
            FileSpec(path="/etc/a", concern="x", **wrong)
