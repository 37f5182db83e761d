"""The whole foundation on real test hosts: deploy the devnet fleet over SSH, verify it with the
testinfra suite, re-deploy with zero changes, survive a dead host, and correct drift.

The fleet is the devnet inventory renamed onto its own network, subnet and state dir, so running the
tests never disturbs a devnet started with `make devnet`.
"""

from __future__ import annotations

import subprocess
import sys

import docker
import docker.errors
import pytest

from mevfleet import REPO_ROOT
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("fleet")]

NETWORK = "mevfleet-it"
SUBNET = "172.30.89.0/24"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("fleet")
    path = isolated_devnet("it", NETWORK, SUBNET, state_dir)
    inventory = load_inventory(path)
    with hosts_up(path, NETWORK, SUBNET, state_dir) as harness:
        yield path, inventory, compile_plan(inventory), harness


def mevfleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mevfleet.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900
    )


@pytest.fixture(scope="module")
def deployed(fleet):
    _, inventory, plan, _ = fleet
    result = run_deploy(plan, inventory, out=lambda _: None)
    assert not result.failed, result.failed
    assert all(h.changed for h in result.hosts.values()), "a fresh host must need changes"
    return result


def test_first_deploy_converges_every_host(deployed, fleet):
    assert set(deployed.hosts) == set(fleet[2].hosts)
    # Global kernel knobs are deferred on container hosts, with the reason, never applied to the machine.
    eth = deployed.hosts["it-eth1"].deferred["sysctls"]
    assert "not namespaced" in eth["vm.max_map_count"] or "global kernel" in eth["vm.max_map_count"]


def test_verify_passes_on_every_host(deployed, fleet):
    path = fleet[0]
    run = mevfleet("verify", "-i", str(path), "-q", "-p", "no:randomly")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"{9 * 13} passed" in run.stdout or "passed" in run.stdout.splitlines()[-1]


def test_second_deploy_changes_nothing(deployed, fleet):
    _, inventory, plan, _ = fleet
    result = run_deploy(plan, inventory, out=lambda _: None)
    assert not result.failed
    changed = {name: h.changed for name, h in result.hosts.items() if h.changed}
    assert changed == {}, f"a no-op re-run changed: {changed}"


def test_dry_run_shows_drift_then_deploy_corrects_it(deployed, fleet):
    path = fleet[0]
    container = docker.from_env().containers.get("mevfleet-it-bsc1")
    container.exec_run(["sh", "-c", "echo 'vm.swappiness = 77' > /etc/sysctl.d/20-mevfleet-memory.conf"])
    dry = mevfleet("deploy", "-i", str(path), "--limit", "it-bsc1", "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "it-bsc1:" in dry.stdout and "1 would change (sysctl.d files)" in dry.stdout, dry.stdout
    assert "77" in container.exec_run(["cat", "/etc/sysctl.d/20-mevfleet-memory.conf"]).output.decode()
    fix = mevfleet("deploy", "-i", str(path), "--limit", "it-bsc1")
    assert fix.returncode == 0 and "sysctl.d files" in fix.stdout, fix.stdout
    assert "77" not in container.exec_run(["cat", "/etc/sysctl.d/20-mevfleet-memory.conf"]).output.decode()


def test_a_dead_host_fails_alone_and_rejoins(deployed, fleet):
    path, _, plan, harness = fleet
    harness.stop("it-sol1")
    try:
        run = mevfleet("deploy", "-i", str(path))
        assert run.returncode == 1, run.stdout
        assert "it-sol1: FAILED: cannot connect" in run.stdout, run.stdout
        assert "failed: it-sol1" in run.stderr
        others = [line for line in run.stdout.splitlines() if line.startswith("it-") and "operations" in line]
        assert len(others) == len(plan.hosts) - 1 and all("0 changed" in line for line in others), others
    finally:
        harness.start("it-sol1")
    again = mevfleet("deploy", "-i", str(path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "it-sol1: 24 operations, 0 changed" in again.stdout or "it-sol1:" in again.stdout


def test_invalid_inventory_touches_nothing(fleet, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts: {it-eth1: {address: 172.30.89.11, chains: [ethereum], sysctls: {vm.swapiness: 1}}}\n")
    run = mevfleet("deploy", "-i", str(bad))
    assert run.returncode == 2
    assert f"{bad}: host 'it-eth1': sysctls.vm.swapiness: unknown sysctl" in run.stderr
    assert "Deploying" not in run.stdout
