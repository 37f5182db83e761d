"""Chain nodes on real test hosts: install with the sha256 checked on the host, verify, zero-change
re-run, rolling upgrade and rollback between two pinned anvil releases, a failing health gate that stops
the rollout at its first host, and a corrupted artifact that fails only its own host.

A small fleet of its own (network mevfleet-nodes): two hosts run Arbitrum (so a rollout has a second host
to stop before), one runs Optimism and BSC side by side (shifted ports, two stand-ins), one Solana
(rendered and checked, not started).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import time

import docker
import docker.errors
import pytest
import yaml

from mevfleet import REPO_ROOT
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("nodes")]

NETWORK = "mevfleet-nodes"
SUBNET = "172.30.93.0/24"
OLD, NEW = "1.7.0", "1.7.1"  # both pinned in clients.yml; NEW is the catalog default
HOSTS = {"nd-arb1": ["arbitrum"], "nd-arb2": ["arbitrum"], "nd-op1": ["optimism", "bsc"], "nd-sol1": ["solana"]}


def mevfleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mevfleet.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600
    )


def write_inventory(path, base: dict, **extra) -> str:
    doc = {**base, **extra}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("nodes")
    doc = yaml.safe_load(isolated_devnet("nd", NETWORK, SUBNET, state_dir).read_text())
    # base1's and poly1's addresses for the second Arbitrum host and the shared Optimism+BSC host.
    addresses = {"nd-arb1": "arb1", "nd-arb2": "base1", "nd-op1": "op1", "nd-sol1": "sol1"}
    doc["hosts"] = {
        name: {"address": doc["hosts"][f"nd-{src}"]["address"], "chains": HOSTS[name]}
        for name, src in addresses.items()
    }
    path = state_dir / "inventory.yml"
    write_inventory(path, doc)
    with hosts_up(path, NETWORK, SUBNET, state_dir) as harness:
        yield path, doc, harness, state_dir


@pytest.fixture(scope="module")
def deployed(fleet):
    path = fleet[0]
    started = time.monotonic()
    run = mevfleet("deploy", "-i", str(path))
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    print(f"\nfirst deploy of {len(HOSTS)} node hosts: {seconds:.1f} s")
    return run


def status(path) -> dict[tuple[str, str], list[str]]:
    run = mevfleet("status", "-i", str(path))
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    return {(r[0], r[1]): r for r in rows}


def test_first_deploy_starts_every_stand_in(deployed, fleet):
    rows = status(fleet[0])
    for host, chains in HOSTS.items():
        for chain in chains:
            row = rows[(host, chain)]
            if chain == "solana":
                # The LiteSVM simulator, from the agent's release: no version of its own to match.
                assert row[3] == "active" and row[4].isdigit() and "simulator" in " ".join(row), row
            else:
                # state, head, lag, peers, version
                assert row[3] == "active" and row[4].isdigit() and row[-1] == NEW, row


def test_verify_passes(deployed, fleet):
    run = mevfleet("verify", "-i", str(fleet[0]), *(f"--limit={h}" for h in HOSTS), "-q", "-p", "no:randomly", "-rs")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_second_deploy_changes_nothing(deployed, fleet):
    started = time.monotonic()
    run = mevfleet("deploy", "-i", str(fleet[0]))
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout
    lines = [line for line in run.stdout.splitlines() if line.startswith("nd-") and "operations" in line]
    assert len(lines) == len(HOSTS) and all(" 0 changed" in line for line in lines), lines
    print(f"\nno-op re-run of {len(HOSTS)} node hosts: {seconds:.1f} s")


def test_upgrade_then_rollback(deployed, fleet):
    path = fleet[0]
    started = time.monotonic()
    up = mevfleet("upgrade", "-i", str(path), "arbitrum", "--to", OLD)
    upgrade_s = time.monotonic() - started
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.index("nd-arb1:") < up.stdout.index("nd-arb2:"), "one host at a time, in inventory order"
    rows = status(path)
    assert rows[("nd-arb1", "arbitrum")][-1] == OLD and rows[("nd-arb2", "arbitrum")][-1] == OLD
    assert rows[("nd-op1", "optimism")][-1] == NEW, "another chain's node is never touched"
    # Recorded: a plain deploy keeps what was rolled out.
    assert load_inventory(path).hosts["nd-arb1"].versions == {"arbitrum.anvil": OLD}
    again = mevfleet("deploy", "-i", str(path), "--limit", "nd-arb1", "--limit", "nd-arb2")
    assert again.returncode == 0 and again.stdout.count(" 0 changed") == 2, again.stdout

    started = time.monotonic()
    back = mevfleet("rollback", "-i", str(path), "arbitrum")
    rollback_s = time.monotonic() - started
    assert back.returncode == 0, back.stdout + back.stderr
    rows = status(path)
    assert rows[("nd-arb1", "arbitrum")][-1] == NEW and rows[("nd-arb2", "arbitrum")][-1] == NEW
    assert rows[("nd-arb1", "arbitrum")][3] == "active"
    print(f"\nupgrade of 2 hosts: {upgrade_s:.1f} s; rollback: {rollback_s:.1f} s")


def broken_release(tmp_path) -> tuple[str, str]:
    """A well-formed, correctly pinned release whose binary cannot serve: only a health gate catches it."""
    archive = tmp_path / "anvil-broken.tgz"
    script = b"#!/bin/sh\necho 'this release is broken on purpose' >&2\nexit 1\n"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("package/bin/anvil")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return str(archive), hashlib.sha256(archive.read_bytes()).hexdigest()


def test_failed_health_gate_stops_the_rollout_at_the_first_host(deployed, fleet, tmp_path):
    _, doc, _, _ = fleet
    archive, digest = broken_release(tmp_path)
    inv = tmp_path / "broken.yml"
    write_inventory(inv, doc, artifacts={"anvil": {"0.0.0-broken": {"path": archive, "sha256": digest}}})
    run = mevfleet("upgrade", "-i", str(inv), "arbitrum", "--to", "0.0.0-broken", "--timeout", "8")
    assert run.returncode == 1, run.stdout
    assert "nd-arb1: FAILED health gate" in run.stdout and "nd-arb2" not in run.stdout, run.stdout
    assert "upgrade stopped at nd-arb1" in run.stderr
    rows = status(inv)
    # The failed host is back on what it ran, healthy; the next host was never touched.
    assert rows[("nd-arb1", "arbitrum")][3] == "active" and rows[("nd-arb1", "arbitrum")][-1] == NEW
    assert rows[("nd-arb2", "arbitrum")][-1] == NEW
    assert load_inventory(inv).hosts["nd-arb1"].versions == {}


def test_corrupted_artifact_fails_only_its_host_and_switches_nothing(deployed, fleet, tmp_path):
    _, doc, _, _ = fleet
    corrupted = tmp_path / "anvil-1.7.0.tgz"
    corrupted.write_bytes(b"not the anvil 1.7.0 tarball")
    pinned = compile_plan(load_inventory(fleet[0])).hosts["nd-op1"].nodes[0]
    sha_170 = "d07d3036457c281d385a0ee84100608d2a580efb7b84098a8273d08e2f0fef4e"
    inv = tmp_path / "corrupted.yml"
    hosts = {**doc["hosts"], "nd-op1": {**doc["hosts"]["nd-op1"], "versions": {"optimism.anvil": OLD}}}
    write_inventory(
        inv, {**doc, "hosts": hosts}, artifacts={"anvil": {OLD: {"path": str(corrupted), "sha256": sha_170}}}
    )
    run = mevfleet("deploy", "-i", str(inv), "--limit", "nd-op1", "--limit", "nd-arb2")
    assert run.returncode == 1, run.stdout
    assert "nd-op1: FAILED" in run.stdout and "checksum mismatch for anvil 1.7.0" in run.stdout, run.stdout
    assert "nd-arb2: " in run.stdout and "nd-arb2: FAILED" not in run.stdout
    container = docker.from_env().containers.get(TestHost("nd-op1", "").container_name)
    link = container.exec_run(["readlink", pinned.link]).output.decode().strip()
    assert link == pinned.release_dir, "the running version must stay"
    assert container.exec_run(["test", "-e", f"/opt/mevfleet/anvil/{OLD}"]).exit_code != 0
    assert container.exec_run(["systemctl", "is-active", f"{pinned.unit}.service"]).output.decode().strip() == "active"


def test_a_chain_removed_from_the_inventory_is_removed_from_its_host(deployed, fleet, tmp_path):
    """nd-op1 loses BSC: its unit is stopped, disabled and removed with its config and links, its data dir
    stays, Optimism keeps running, the next run changes nothing; adding BSC back restores the host."""
    path, doc, _, _ = fleet
    bsc = next(n for n in compile_plan(load_inventory(path)).hosts["nd-op1"].nodes if n.chain == "bsc")
    inv = tmp_path / "without-bsc.yml"
    write_inventory(
        inv, {**doc, "hosts": {**doc["hosts"], "nd-op1": {**doc["hosts"]["nd-op1"], "chains": ["optimism"]}}}
    )
    gone = next(r for r in compile_plan(load_inventory(inv)).hosts["nd-op1"].remove if r.unit == bsc.unit)
    container = docker.from_env().containers.get(TestHost("nd-op1", "").container_name)

    def sh(command: str) -> str:
        return container.exec_run(["sh", "-c", command]).output.decode().strip()

    started = time.monotonic()
    run = mevfleet("deploy", "-i", str(inv), "--limit", "nd-op1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{bsc.unit} removed" in run.stdout, run.stdout
    assert sh(f"systemctl is-active {bsc.unit}.service") == "inactive"
    assert sh(f"systemctl list-unit-files --no-legend {bsc.unit}.service") == ""
    assert sh(f"ls -d {gone.unit_file} {gone.config_dir} {gone.link_dir} 2>/dev/null") == ""
    assert sh(f"test -d {bsc.data_dir} && echo kept") == "kept"
    assert sh("systemctl is-active optimism-anvil.service") == "active"
    again = mevfleet("deploy", "-i", str(inv), "--limit", "nd-op1")
    assert again.returncode == 0 and " 0 changed" in again.stdout, again.stdout
    back = mevfleet("deploy", "-i", str(path), "--limit", "nd-op1")
    assert back.returncode == 0, back.stdout[-3000:]
    assert sh(f"systemctl is-active {bsc.unit}.service") == "active"
    print(f"\nremove a chain, no-op, add it back on one host: {time.monotonic() - started:.1f} s")
