"""What the plan removes per concern beyond node units (test_removed_chains.py): the agent on a host left
without a chain, the monitoring services and the control plane on a host that lost the `monitoring`
role, log shipping in a fleet left without a monitoring host. Units stopped and disabled, the files mevfleet
wrote and the secrets removed; data and state directories, signing keys and releases kept. Planned things
are never removed, and a package's own config alone never makes a removal due. Both engines run the same
script: here by a real shell and by a real Ansible run of roles/base's task (the Docker test hosts run it
through the pyinfra engine: tests/integration/test_control_plane.py)."""

from __future__ import annotations

import fnmatch
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml

from mevfleet import INVENTORY_DIR, REPO_ROOT, agent, control, monitoring
from mevfleet.ansible_engine.handoff import Probe, Stage, host_vars
from mevfleet.ansible_engine.run import ROLES
from mevfleet.desired import (
    OWNED_GLOBS,
    Desired,
    directories,
    planned_paths,
    probe_args,
    removal_script,
    removals,
    to_remove,
)
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.model import FleetPlan, HostPlan, Removal
from mevfleet.nodes.artifacts import MARKER
from mevfleet.plan import compile_plan
from mevfleet.probe import HostState, parse, script

from .conftest import SOLANA_AGENT

BEFORE = {
    "fleet": {"nodes": "devnet", "private_networks": ["10.0.0.0/24"], "agent": SOLANA_AGENT},
    "hosts": {
        "mon": {"address": "10.0.0.2", "roles": ["monitoring"]},
        "n1": {"address": "10.0.0.5", "chains": ["arbitrum"]},
        "n2": {"address": "10.0.0.6", "chains": ["optimism"]},
    },
}

# The monitoring host becomes a Solana host (a host needs a chain or a role): no monitoring, no control plane.
SOLANA_ONLY = {"address": "10.0.0.2", "chains": ["solana"]}
# A node host left without a chain (a monitoring host now): no node, no agent.
NO_CHAIN = {"address": "10.0.0.6", "roles": ["monitoring"]}


def fleet(doc: dict) -> FleetPlan:
    return compile_plan(parse_inventory(yaml.safe_dump(doc), "f.yml"))


def changed(**hosts: dict) -> FleetPlan:
    return fleet({**BEFORE, "hosts": {**BEFORE["hosts"], **hosts}})


def named(plan: HostPlan) -> dict[str, Removal]:
    return {r.name: r for r in removals(plan)}


def under(path: str, removed: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in removed)


def test_a_host_left_without_a_chain_removes_the_agent_and_keeps_its_state_keys_and_releases():
    before = fleet(BEFORE).hosts["n2"]
    assert before.agent is not None and "searcher agent" not in named(before)
    # A Solana host keeps its agent; a host left without any chain does not.
    assert changed(n2={"address": "10.0.0.6", "chains": ["solana"]}).hosts["n2"].agent is not None
    after = changed(n2=NO_CHAIN).hosts["n2"]
    assert after.agent is None
    gone = named(after)["searcher agent"]
    assert gone.units == (agent.UNIT,)
    assert {agent.UNIT_FILE, before.agent.config_path, before.agent.token_file} <= set(gone.paths)
    assert {agent.link(before.agent), f"{before.agent.release_root}/previous"} <= set(gone.paths)
    assert {control.AGENT_REDIS_PASSWORD, control.AGENT_BUS_CA} <= set(gone.paths)
    for kept in (before.agent.state_dir, before.agent.keys_dir, agent.release_dir(before.agent)):
        assert not under(kept, gone.paths), kept
    assert gone.task == (
        "searcher agent removed (no longer planned; /var/lib/mevagent, signing keys in /etc/mevagent/keys and "
        "releases kept)"
    )


def test_a_host_that_loses_the_monitoring_role_removes_monitoring_and_the_control_plane_keeping_data():
    before = fleet(BEFORE).hosts["mon"]
    assert before.control is not None and not {"monitoring services", "control plane"} & set(named(before))
    after = changed(mon=SOLANA_ONLY).hosts["mon"]
    assert after.control is None and not monitoring.is_monitoring(after)
    dropped = named(after)
    watch = dropped["monitoring services"]
    assert set(monitoring.monitoring_units(before)) <= set(watch.units)
    assert {monitoring.REDIS_AUTH, "/etc/prometheus/prometheus.yml"} <= set(watch.paths)
    # A package's own config is removed with the concern but is no sign that mevfleet put it there.
    assert "/etc/prometheus/prometheus.yml" not in watch.evidence and monitoring.REDIS_AUTH in watch.evidence
    plane = dropped["control plane"]
    assert plane.units[0] == control.UNIT and control.POSTGRES_UNIT in plane.units
    assert {control.UNIT_FILE, control.CONFIG_DIR, control.link()} <= set(plane.paths)
    for kept in (*monitoring.MONITORING_HOST_DATA, control.POSTGRES_DATA, f"{control.POSTGRES_ETC}/pg_hba.conf"):
        assert not any(under(kept, r.paths) for r in dropped.values()), kept
    for unit, data in (("postgresql", control.POSTGRES_DATA), ("prometheus", "/var/lib/prometheus")):
        assert data in (plane if unit == "postgresql" else watch).task, unit
    # Left without a monitoring host, every host stops shipping its logs.
    assert "log shipping" in dropped and "log shipping" in named(changed(mon=SOLANA_ONLY).hosts["n1"])
    assert "log shipping" not in named(fleet(BEFORE).hosts["n1"])


@pytest.mark.parametrize("shipper", ["alloy", "journal-remote"])
@pytest.mark.parametrize(
    ("host", "change"),
    [
        ("n2", {"n2": NO_CHAIN}),
        ("mon", {"mon": SOLANA_ONLY}),
        ("n1", {"mon": SOLANA_ONLY}),
    ],
)
def test_every_file_the_plan_stops_giving_a_host_is_removed_or_kept_by_name(shipper, host, change):
    """The removal lists are kept beside the files they undo: whatever file, secret or copy a host's plan
    held before and not after is among the removed paths (or under one), except what is kept on purpose."""
    shipping = {"monitoring": {"log_shipper": shipper}}
    doc = {**BEFORE, "fleet": {**BEFORE["fleet"], **shipping}}
    before = fleet(doc).hosts[host]
    after = fleet({**doc, "hosts": {**doc["hosts"], **change}}).hosts[host]
    gone = planned_paths(before) - planned_paths(after) - {d.path for d in directories(before)}
    releases = {p for p in gone if p.endswith("/" + MARKER)}  # releases are kept
    removed = tuple(p for r in removals(after) for p in r.paths)
    # Files the deploy owns by pattern (a journal receiver's drop-in per sending host) go as stale files.
    stale = {p for p in gone if any(fnmatch.fnmatch(p, g) for g in OWNED_GLOBS)}
    left = sorted(p for p in gone - releases - stale if not under(p, removed))
    assert left == ([f"{control.POSTGRES_ETC}/pg_hba.conf"] if host == "mon" else []), left
    assert gone, "the change drops nothing: the test would prove nothing"


@pytest.mark.parametrize("inventory", ["devnet.yml", "production.example.yml"])
def test_nothing_planned_is_ever_removed_or_stopped(inventory):
    """Each concern proposes only what its host does not have (the guard in desired.removals finds
    nothing to take out); no removal touches a planned path, a directory holding one, or a planned unit."""
    for name, plan in compile_plan(load_inventory(INVENTORY_DIR / inventory)).hosts.items():
        proposed = {
            r.name: r
            for r in (*agent.removals(plan), *monitoring.removals(plan), *control.removals(plan))
            if r.concern != "nodes"
        }
        kept = {r.name: r for r in removals(plan) if r.concern != "nodes"}
        assert kept == proposed, name
        planned, running = planned_paths(plan), set(probe_args(plan)["units"])
        for r in removals(plan):
            assert not [p for p in planned if under(p, r.paths)], (name, r.name)
            assert not running & set(r.units), (name, r.name)


def test_the_guard_keeps_a_planned_path_and_unit_out_of_a_removal(monkeypatch):
    plan = fleet(BEFORE).hosts["n2"]
    assert plan.agent is not None
    sloppy = Removal(
        concern="agent",
        name="sloppy",
        units=(agent.UNIT, "gone.service"),
        paths=(plan.agent.config_path, "/etc/mevagent", "/etc/gone.conf"),
        kept="nothing",
    )
    monkeypatch.setattr(agent, "removals", lambda _: [sloppy])
    (guarded,) = [r for r in removals(plan) if r.name == "sloppy"]
    assert guarded.paths == ("/etc/gone.conf",) and guarded.units == ("gone.service",)


def test_the_one_probe_asks_only_about_markers_and_a_package_config_alone_changes_nothing():
    plan = changed(mon=SOLANA_ONLY).hosts["n1"]
    asked = set(probe_args(plan)["present"])
    assert monitoring.REDIS_AUTH in asked and "/etc/redis/redis.conf" not in asked
    assert to_remove(plan, {"/etc/redis/redis.conf", "/etc/prometheus/prometheus.yml"}) == []
    due = to_remove(plan, {monitoring.REDIS_AUTH, monitoring.JOURNAL_TLS_DIR})
    assert [r.name for r in due] == ["monitoring services", "log shipping"]
    # Read by a real shell, the way both engines run the probe.
    out = subprocess.run(
        ["sh", "-c", script(files=(), dirs=(), sysctls=(), globs=(), present=("/", "/nonexistent/x"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert parse(out.splitlines()).present == {"/"}


def test_the_control_planes_removal_is_due_on_its_own_files_not_on_redis_tls_alone():
    """Every host without the control plane asks after it: a Redis TLS directory an operator made there
    (Redis's generic place) must not stop and delete anything; mevcontrol's unit file or config dir must,
    and then only the plane's own files in that directory go, never the directory with the operator's."""
    plan = fleet(BEFORE).hosts["n1"]
    assert plan.control is None
    asked = set(probe_args(plan)["present"])
    assert control.REDIS_TLS_DIR not in asked and {control.UNIT_FILE, control.CONFIG_DIR} <= asked
    assert to_remove(plan, {control.REDIS_TLS_DIR}) == []
    ours = {control.REDIS_TLS_CERT, control.REDIS_TLS_KEY, control.REDIS_TLS_CA}
    for sign in (control.UNIT_FILE, control.CONFIG_DIR):
        (due,) = to_remove(plan, {sign, control.REDIS_TLS_DIR})
        assert due.name == "control plane" and ours <= set(due.paths) and control.REDIS_TLS_DIR not in due.paths


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_loaded_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fleet_test_demands_a_pass_exactly_where_verify_checks_removals():
    """tests/integration/test_fleet.py's APPLIES takes test_removed's rule from the verify module itself.
    Run with a host that has nothing left on it, over the sample inventories, a fleet that dropped concerns
    and a host that drops nothing, the verify test skips exactly where that rule says it does not apply."""
    verify_removed = REPO_ROOT / "tests" / "verify" / "test_removed.py"
    verify = _load(verify_removed)
    rule = _load(REPO_ROOT / "tests" / "integration" / "test_fleet.py").APPLIES[
        "test_removed::test_nothing_the_plan_dropped_is_left"
    ]
    assert inspect.getsourcefile(rule) == str(verify_removed) and rule.__name__ == "applies"
    nothing_left = SimpleNamespace(run=lambda command: SimpleNamespace(stdout=""))
    # An alloy fleet: a journal-remote fleet's monitoring host always drops the shared journal receiver.
    alloy = {**BEFORE["fleet"], "monitoring": {"log_shipper": "alloy"}}
    mon = {**SOLANA_ONLY, "roles": ["monitoring"], "chains": ["arbitrum"]}
    whole = fleet({**BEFORE, "fleet": alloy, "hosts": {"mon": mon}})
    plans = [
        *compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml")).hosts.values(),
        *compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml")).hosts.values(),
        *changed(mon=SOLANA_ONLY).hosts.values(),
        whole.hosts["mon"].model_copy(update={"remove": ()}),  # agent, monitoring, control plane: drops nothing
    ]
    checked = []
    for plan in plans:
        try:
            verify.test_nothing_the_plan_dropped_is_left(nothing_left, plan)
            checked.append(True)
        except pytest.skip.Exception:
            checked.append(False)
    assert checked == [rule(p) for p in plans]
    assert set(checked) == {True, False}


@pytest.fixture
def recorded(tmp_path) -> tuple[Removal, Path, dict[str, str]]:
    """A removal of agent-like files under tmp_path (names a shell would misread, quoted or not), and a
    systemctl recorder on PATH: there is no systemd outside the test hosts."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\n')
    (bin_dir / "systemctl").chmod(0o755)
    etc = root / "etc $(touch pwned)"
    (etc / "keys").mkdir(parents=True)
    (etc / "keys" / "arbitrum.key").write_text("key\n")
    (etc / "agent.yml").write_text("x: 1\n")
    (etc / "api.token").write_text("t\n")
    (root / "opt" / "v1").mkdir(parents=True)
    (root / "opt" / "current").symlink_to(root / "opt" / "v1")
    removal = Removal(
        concern="agent",
        name="searcher agent",
        units=("mevagent.service", "it's.service"),
        paths=(str(etc / "agent.yml"), str(etc / "api.token"), str(root / "opt" / "current")),
        markers=(str(etc / "agent.yml"),),
        kept="keys and releases",
    )
    return removal, tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _after(removal: Removal, tmp_path: Path) -> None:
    assert not any(Path(p).exists() or Path(p).is_symlink() for p in removal.paths)
    etc = Path(removal.paths[0]).parent
    assert (etc / "keys" / "arbitrum.key").read_text() == "key\n" and (tmp_path / "root" / "opt" / "v1").is_dir()
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()
    assert (tmp_path / "calls").read_text().splitlines() == [
        "disable --now mevagent.service",
        "disable --now it's.service",
        "daemon-reload",
        "reset-failed mevagent.service",
        "reset-failed it's.service",
    ]


def test_the_removal_script_stops_in_order_removes_and_keeps_data(recorded):
    removal, tmp_path, env = recorded
    subprocess.run(["sh", "-c", removal_script(removal)], env=env, check=True, cwd=tmp_path)
    _after(removal, tmp_path)


def test_a_real_ansible_run_of_the_base_roles_task_runs_the_same_script(recorded):
    """roles/base/tasks/removed.yml, run by ansible-playbook on this machine (local connection) with the
    host var the hand-off writes; the pyinfra engine runs the same script (engine/units.ensure_removed)."""
    removal, tmp_path, env = recorded
    work = tmp_path / "ansible"
    (work / "host_vars").mkdir(parents=True)
    entry = {"name": removal.task, "script": removal_script(removal)}
    (work / "host_vars" / "localhost.yml").write_text(yaml.safe_dump({"mevfleet_removed": [entry]}))
    (work / "inventory.yml").write_text("all: {hosts: {localhost: {ansible_connection: local}}}\n")
    (work / "play.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Removal",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [{"ansible.builtin.include_role": {"name": "base", "tasks_from": "removed"}}],
                }
            ]
        )
    )
    (work / "ansible.cfg").write_text(f"[defaults]\nroles_path = {ROLES}\n")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "play.yml"],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, **env, "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(work)},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "changed=1" in run.stdout and removal.task in run.stdout
    _after(removal, tmp_path)


def test_the_hand_off_gives_the_roles_each_due_removal_with_its_script(tmp_path):
    plan = changed(n2=NO_CHAIN).hosts["n2"]
    state = HostState(container=True, proc_sys_writable=False, present={agent.UNIT_FILE})
    data, _, _ = host_vars(Desired(plan), Probe(state=state, drift_lines=[]), Stage(tmp_path), None, None)
    (gone,) = to_remove(plan, state.present)
    assert data["mevfleet_removed"] == [{"name": gone.task, "script": removal_script(gone)}]
    empty, _, _ = host_vars(
        Desired(plan), Probe(state=HostState(container=True), drift_lines=[]), Stage(tmp_path), None, None
    )
    assert empty["mevfleet_removed"] == []
