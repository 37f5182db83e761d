"""The whole foundation on real test hosts: deploy the devnet fleet over SSH, verify it with the
testinfra suite, re-deploy with zero changes, survive a dead host, and correct drift.

The fleet is the devnet inventory renamed onto its own network, subnet and state dir, so running the
tests never disturbs a devnet started with `make devnet`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from xml.etree import ElementTree

import docker
import docker.errors
import pytest

from mevfleet import REPO_ROOT
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.model import HostPlan
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


def verify_module(name: str):
    """A tests/verify module, loaded by path (`mevfleet verify` runs that suite; it is not collected here)."""
    spec = importlib.util.spec_from_file_location(f"verify_{name}", REPO_ROOT / "tests" / "verify" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Verify tests that skip where they do not apply: where the plan says they apply, they must pass (a skip
# there would hide a missing agent, monitoring stack, control plane or node).
APPLIES: dict[str, Callable[[HostPlan], bool]] = {
    **{
        f"test_agent::{t}": lambda p: p.agent is not None
        for t in (
            "test_unit_active_enabled_as_its_own_user",
            "test_release_is_the_planned_version",
            "test_systemd_exposure_within_target",
            "test_secrets_are_owner_only",
            "test_dry_run_unless_planned_live",
            "test_api_on_loopback_and_mutations_need_the_token",
            "test_metrics_served_for_the_monitoring_host",
        )
    },
    "test_agent::test_pinned_to_the_agent_cores": lambda p: p.agent is not None and p.cpu is not None,
    **{
        f"test_monitoring::{t}": lambda p: "monitoring" in p.roles
        for t in (
            "test_services_running_and_enabled",
            "test_listening_only_on_planned_addresses",
            "test_prometheus_scrapes_exactly_the_planned_targets_and_every_host_is_up",
            "test_alertmanager_receives_from_prometheus",
        )
    },
    **{
        f"test_control::{t}": lambda p: p.control is not None
        for t in (
            "test_units_running_hardened_as_their_own_users",
            "test_postgresql_scram_on_loopback_and_schema_migrated",
            "test_every_agent_connected_with_a_fresh_lease",
        )
    },
    **{
        f"test_nodes::{t}": lambda p: any(n.start for n in p.nodes)
        for t in (
            "test_node_units_active_and_enabled",
            "test_current_points_at_the_pinned_version",
            "test_rpc_answers_with_the_chain_id",
            "test_listens_only_where_the_plan_says",
        )
    },
    # What each host's plan does not carry (another chain's node, the agent, monitoring, the control plane):
    # the verify test's own rule.
    "test_removed::test_nothing_the_plan_dropped_is_left": verify_module("test_removed").applies,
}


def verify_outcomes(path, report) -> dict[str, str]:
    """`mevfleet verify`'s outcome per test and host ("test_nodes::test_x[host]": passed, skipped, failure or
    error), from pytest's JUnit report."""
    run = mevfleet("verify", "-i", str(path), "-q", "-p", "no:randomly", f"--junitxml={report}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"] = (kinds or ["passed"])[0]
    return outcomes


def test_verify_passes_on_every_host(deployed, fleet, tmp_path):
    path, _, plan, _ = fleet
    outcomes = verify_outcomes(path, tmp_path / "verify.xml")
    assert not {t: o for t, o in outcomes.items() if o not in ("passed", "skipped")}
    # Every host was verified, and every test that applies to a host by its plan passed there.
    assert set(plan.hosts) <= {t.rsplit("[", 1)[-1].rstrip("]") for t in outcomes}
    hidden = [
        f"{test}[{host}]"
        for host, host_plan in plan.hosts.items()
        for test, applies in APPLIES.items()
        if applies(host_plan) and outcomes.get(f"{test}[{host}]") != "passed"
    ]
    assert not hidden, f"skipped or missing where the plan says they apply: {hidden}"
    counts = {o: list(outcomes.values()).count(o) for o in ("passed", "skipped")}
    print(f"\nverify: {counts['passed']} passed, {counts['skipped']} skipped, {len(outcomes)} in all")


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
