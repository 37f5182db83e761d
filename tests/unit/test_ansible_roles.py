"""The Ansible engine without hosts: roles/ pass ansible-lint's production profile, one role per concern,
and the hand-off gives the roles every file the pyinfra engine manages, byte for byte, in host vars that
Ansible reads back unchanged (no string templated, no mode turned into a number)."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.utils.yaml import from_yaml

from mevfleet import REPO_ROOT
from mevfleet import control as control_ops
from mevfleet import nodes as node_ops
from mevfleet.ansible_engine.handoff import Probe, Stage, host_vars, host_vars_yaml
from mevfleet.ansible_engine.run import PLAYBOOKS, ROLES
from mevfleet.desired import DEFERRED_REPORT, Desired
from mevfleet.engine.files import sha256
from mevfleet.inventory import load_inventory
from mevfleet.model import JwtPlan
from mevfleet.nodes.jwt import jwt_script
from mevfleet.plan import compile_plan
from mevfleet.probe import FileState, HostState
from mevfleet.render import HostFacts, host_files

CONCERNS = (
    "base",
    "firewall",
    "ssh",
    "hardening",
    "kernel",
    "time",
    "logs",
    "monitoring",
    "nodes",
    "agent",
    "control",
)


@pytest.fixture(scope="module")
def devnet():
    return compile_plan(load_inventory(REPO_ROOT / "inventory" / "devnet.yml"))


def test_roles_pass_ansible_lint_production_profile():
    lint = Path(sys.executable).parent / "ansible-lint"
    run = subprocess.run(
        [str(lint), "--offline", "--profile", "production", "--format", "pep8", str(ROLES), str(PLAYBOOKS)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "'production'" in run.stdout + run.stderr


def test_one_role_per_concern_with_its_settings_in_defaults():
    assert sorted(p.name for p in ROLES.iterdir() if p.is_dir()) == sorted(CONCERNS)
    for role in CONCERNS:
        assert (ROLES / role / "tasks" / "main.yml").is_file(), role
        assert (ROLES / role / "defaults" / "main.yml").is_file(), role


def converged(plan) -> HostState:
    """A container host whose releases are installed (so the hand-off builds no artifact)."""
    state = HostState(container=True, proc_sys_writable=False)
    for node in plan.nodes:
        if node_ops.installs(node):
            state.files[node_ops.marker(node)] = FileState("0644", "root", "root", sha256(f"{node.artifact.sha256}\n"))
    if plan.agent:
        from mevfleet.agent import marker

        state.files[marker(plan.agent)] = FileState("0644", "root", "root", "x")
    if plan.control:
        state.files[control_ops.marker(plan.control)] = FileState("0644", "root", "root", "x")
    return state


def handed_over(value) -> list[dict]:
    """Every file entry anywhere in the host vars (dicts with src and path)."""
    if isinstance(value, dict):
        found = [value] if {"src", "path", "mode", "owner"} <= value.keys() else []
        return found + [f for v in value.values() for f in handed_over(v)]
    if isinstance(value, list):
        return [f for v in value for f in handed_over(v)]
    return []


def test_host_vars_hand_every_managed_file_over_byte_for_byte(devnet, tmp_path):
    for name, plan in devnet.hosts.items():
        probe = Probe(state=converged(plan), drift_lines=[])
        data, report, _ = host_vars(Desired(plan), probe, Stage(tmp_path), None, None)
        entries = {e["path"]: e for e in handed_over(data) if e["src"].startswith(str(tmp_path))}
        planned = {f.path: f for f in host_files(plan, HostFacts(container=True, proc_sys_writable=False))}
        assert set(entries) == set(planned) | {DEFERRED_REPORT}, name
        for path, f in planned.items():
            entry = entries[path]
            assert Path(entry["src"]).read_bytes() == f.content.encode(), path
            assert (entry["mode"], entry["owner"], entry["group"]) == (f.mode, f.owner, f.group), path
        assert report["sysctls"], f"{name}: a container host defers its global sysctls"
        assert not set(data["mevfleet_sysctls_live"]) & set(report["sysctls"]), "a deferred sysctl is applied"


def test_ansible_reads_the_host_vars_back_unchanged(devnet, tmp_path):
    plan = devnet.hosts["eth1"]
    data, _, _ = host_vars(Desired(plan), Probe(state=converged(plan), drift_lines=[]), Stage(tmp_path), None, None)
    text = host_vars_yaml(data)
    back = from_yaml(text)
    assert back == data
    # Modes stay strings ('0644', not YAML 1.1's octal 420).
    assert {e["mode"] for e in handed_over(back)} <= {"0600", "0640", "0644", "0700", "0750", "0755"}


def _as_ansible_sees_it(tmp_path: Path, host_vars_text: str) -> str:
    """The host var as a real Ansible run reads it from host_vars/ (local connection, debug module)."""
    (tmp_path / "host_vars").mkdir(parents=True)
    (tmp_path / "host_vars" / "localhost.yml").write_text(host_vars_text)
    (tmp_path / "inventory.yml").write_text("all: {hosts: {localhost: {ansible_connection: local}}}\n")
    (tmp_path / "ansible.cfg").write_text("")
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    ansible = str(Path(sys.executable).parent / "ansible")
    run = subprocess.run(
        [ansible, "-i", "inventory.yml", "localhost", "-m", "debug", "-a", "var=mevfleet_script"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_a_string_holding_jinja_is_never_templated_by_ansible(tmp_path):
    script = "echo {{ 6 * 7 }}"
    seen = _as_ansible_sees_it(tmp_path / "tagged", host_vars_yaml({"mevfleet_script": script}))
    assert "echo {{ 6 * 7 }}" in seen and "42" not in seen, seen
    # The control: the same value dumped without the tag is evaluated, which is what the tag prevents.
    plain = _as_ansible_sees_it(tmp_path / "plain", yaml.safe_dump({"mevfleet_script": script}))
    assert "echo 42" in plain, plain


def test_the_nodes_role_restarts_only_the_nodes_whose_jwt_copy_it_rewrote(tmp_path):
    """roles/nodes/tasks/jwt.yml run for real on this machine: an execution client and two beacon nodes with
    three different secrets. Both beacon copies differ from the execution client's, yet only one beacon node
    is restarted (the other keeps the chain going); a second run changes nothing."""
    me = getpass.getuser()
    paths = [tmp_path / side / "jwt.hex" for side in ("el", "cl", "cl2")]
    for path, content in zip(paths, ("a", "b", "c"), strict=True):
        path.parent.mkdir()
        path.write_text(content * 64)
        path.chmod(0o600)
    jwt = JwtPlan(chain="ethereum", copies=tuple((str(p), me) for p in paths), units=("el", "cl", "cl2"))
    jwts = [{"chain": jwt.chain, "script": jwt_script(jwt), "copies": [{"path": p, "owner": o} for p, o in jwt.copies]}]
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "localhost.yml").write_text(host_vars_yaml({"mevfleet_jwts": jwts}))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    tasks = REPO_ROOT / "roles" / "nodes" / "tasks" / "jwt.yml"
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"nodes_jwt_mode": "0600"},
                    "tasks": [
                        {"ansible.builtin.import_tasks": str(tasks)},
                        {"ansible.builtin.copy": {"content": "{{ nodes_jwt_changed | to_json }}", "dest": "{{ out }}"}},
                    ],
                }
            ]
        )
    )
    (tmp_path / "ansible.cfg").write_text("")
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    playbook = str(Path(sys.executable).parent / "ansible-playbook")

    def changed(run: int) -> list[str]:
        out = tmp_path / f"changed{run}.json"
        done = subprocess.run(
            [playbook, "-i", "inventory.yml", "play.yml", "-e", f"out={out}"],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(out.read_text())

    assert changed(1) == [str(paths[0]), str(paths[1])]
    assert {p.read_text() for p in paths} == {"c" * 64}
    assert changed(2) == []
