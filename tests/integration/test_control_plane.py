"""The fleet control plane deployed by the real engine on real test hosts: one monitoring/control host and
two node hosts running anvil and the agent. PostgreSQL, Redis (ACL user per agent, no eviction, AOF),
mevcontrol over TLS; the verify suite passes over SSH; an operator's `curl -X POST .../emergency/stop`
stops every agent and lists each one's acknowledgement; stopping the control plane lets every agent's
risk lease expire within the TTL (as the agents' own heartbeats say) and starting it renews them; a
second deploy changes nothing. Last, a node host loses the agent and the control host the monitoring role:
the next deploy removes what each no longer has and keeps its data (docs/deploy.md, "Removal").

Signing stopping on a live chain when the lease expires is proven on a live anvil chain in
tests/agent/control/test_lease_anvil.py; the agents here are dry-run (no signing keys on test hosts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import docker
import docker.errors
import pytest
import yaml

from mevfleet import REPO_ROOT
from mevfleet.agent import UNIT
from mevfleet.control import CONFIG_DIR as CONTROL_CONFIG_DIR
from mevfleet.control import POSTGRES_DATA, POSTGRES_UNIT, operator_token
from mevfleet.control import UNIT as CONTROL_UNIT
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet, wait_until
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.model import FleetPlan
from mevfleet.monitoring import REDIS_AUTH, redis_cli
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("control_plane")]

NETWORK = "mevfleet-control"
SUBNET = "172.30.123.0/24"
MON, AGENTS = "ctl-mon1", ("ctl-arb1", "ctl-op1")
LEASE_TTL_S = 6.0
# An agent heartbeats every second; the control plane grants three times per TTL.
EXPIRED_WITHIN_S = LEASE_TTL_S + 10
RENEWED_WITHIN_S = 60


class Fleet(NamedTuple):
    plan: FleetPlan
    path: Path
    state: Path
    ca: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state = tmp_path_factory.mktemp("control")
    path = isolated_devnet("ctl", NETWORK, SUBNET, state, hosts=(MON, *AGENTS))
    doc = yaml.safe_load(path.read_text())
    doc["fleet"]["control"] = {"lease_ttl_s": LEASE_TTL_S}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    # The fleet CA and the agents' secrets of this fleet only (the deploy keeps them beside the CA).
    previous = os.environ.get("MEVFLEET_CA_DIR")
    os.environ["MEVFLEET_CA_DIR"] = str(state / "ca")
    try:
        with hosts_up(path, NETWORK, SUBNET, state):
            inventory = load_inventory(path)
            plan = compile_plan(inventory)
            result = run_deploy(plan, inventory, out=lambda _: None)
            assert not result.failed, result.failed
            yield Fleet(plan, path, state, state / "ca" / "ca.pem")
    finally:
        if previous is None:
            os.environ.pop("MEVFLEET_CA_DIR", None)
        else:
            os.environ["MEVFLEET_CA_DIR"] = previous


def _exec(host: str, command: str) -> str:
    container = docker.from_env().containers.get(TestHost(host, "").container_name)
    code, out = container.exec_run(["sh", "-c", command])
    assert code == 0, out.decode()
    return out.decode()


class Operator:
    """An operator on this machine (the allowlisted gateway) with a token fetched from the control host
    into a 0600 header file: curl reads it with -H @file, so the token is never on a command line."""

    def __init__(self, fleet: Fleet, name: str):
        control = fleet.plan.hosts[MON].control
        assert control is not None
        self.base = f"https://{control.bind}:{control.risk_port}"
        self.ca = fleet.ca
        self.header = fleet.state / f"{name}.header"
        token = _exec(MON, f"cat {operator_token(name)}").strip()
        fd = os.open(self.header, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"Authorization: Bearer {token}\n")

    def curl(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, Any]:
        command = ["curl", "-sS", "-m", "30", "--cacert", str(self.ca), "-X", method, "-w", "\n%{http_code}"]
        if auth:
            command += ["-H", f"@{self.header}"]
        if body is not None:
            command += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        run = subprocess.run([*command, self.base + path], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        text, _, status = run.stdout.rpartition("\n")
        return int(status), json.loads(text) if text.strip() else None


def _heartbeats(fleet: Fleet) -> dict[str, dict]:
    """Each agent's newest heartbeat, read from the bus itself (the control plane may be stopped), over
    TLS like every bus client (Redis has no plain port)."""
    cli = redis_cli(fleet.plan.hosts[MON])
    raw = _exec(MON, f"REDISCLI_AUTH=$(cut -d' ' -f2 {REDIS_AUTH}) {cli} --raw XREVRANGE mev:events + - COUNT 400")
    newest: dict[str, dict] = {}
    for line in raw.splitlines():
        if line.startswith("{") and '"kind":"heartbeat"' in line:
            event = json.loads(line)
            newest.setdefault(event["agent"], event)
    return newest


def test_verify_suite_passes_for_the_control_plane(fleet):
    """The operators' checks over SSH: the control plane, the agents' side of it, ports by exposure in the
    live rulesets, and every unit's sandbox (PostgreSQL's and mevcontrol's included)."""
    verify = REPO_ROOT / "tests" / "verify"
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--inventory={fleet.path}",
            str(verify / "test_control.py"), str(verify / "test_firewall.py"), str(verify / "test_agent.py"),
            f"{verify / 'test_hardening.py'}::test_every_unit_the_deploy_runs_is_sandboxed",
            f"{verify / 'test_monitoring.py'}::test_redis_refuses_without_the_password_and_answers_with_it",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_emergency_stop_with_curl_stops_every_agent_and_lists_their_acks(fleet):
    alice, bob, viewer = (Operator(fleet, n) for n in ("operator1", "operator2", "viewer"))
    assert alice.curl("POST", "/emergency/stop", {"reason": "test"}, auth=False)[0] == 401
    assert viewer.curl("POST", "/emergency/stop", {"reason": "test"})[0] == 403
    status, answer = alice.curl("POST", "/emergency/stop", {"reason": "integration test"})
    assert status == 200, answer
    assert set(answer["agents"]) == set(AGENTS) and answer["not_answered"] == []
    for name, ack in answer["agents"].items():
        assert ack == {"api": "acknowledged", "bus": "acked"}, (name, ack)
    # Each agent says so itself, in its heartbeats on the bus.
    wait_until(
        "every agent's heartbeat shows the stop",
        15,
        lambda: _all_beats(fleet, lambda h: h["emergency_stop"]),
        every_s=1.0,
    )
    # Resuming takes a second operator.
    status, request = alice.curl("POST", "/emergency/resume", {})
    assert status == 202, request
    assert alice.curl("POST", f"/approvals/{request['approval_id']}/approve")[0] == 403
    status, approved = bob.curl("POST", f"/approvals/{request['approval_id']}/approve")
    assert status == 200, approved
    wait_until("every agent resumed", 30, lambda: _all_beats(fleet, lambda h: not h["emergency_stop"]), every_s=1.0)


def _all_beats(fleet: Fleet, condition: Callable[[dict], bool], after: float = 0.0) -> dict[str, dict] | None:
    """Every agent's newest heartbeat (sent after `after`, unix s) if each meets `condition`, else None."""
    beats = _heartbeats(fleet)
    if set(beats) == set(AGENTS) and all(h["at"] > after and condition(h) for h in beats.values()):
        return beats
    return None


def test_leases_expire_when_the_control_plane_stops_and_renew_when_it_returns(fleet):
    wait_until("fresh leases", RENEWED_WITHIN_S, lambda: _all_beats(fleet, lambda h: h["lease_fresh"]), every_s=1.0)
    _exec(MON, "systemctl stop mevcontrol.service")
    stopped = time.time()
    try:
        # The agents keep heartbeating into Redis while nobody renews: within the TTL they say it expired.
        expired = wait_until(
            "every agent's lease expired",
            EXPIRED_WITHIN_S,
            lambda: _all_beats(fleet, lambda h: not h["lease_fresh"], stopped),
            every_s=1.0,
        )
        assert all(h["lease_expires_in_s"] <= 0 for h in expired.values()), expired
    finally:
        _exec(MON, "systemctl start mevcontrol.service")
    restarted = time.time()
    wait_until(
        "leases renewed",
        RENEWED_WITHIN_S,
        lambda: _all_beats(fleet, lambda h: h["lease_fresh"], restarted),
        every_s=1.0,
    )


def test_status_shows_the_control_plane_and_every_agent_connected(fleet):
    from click.testing import CliRunner

    from mevfleet.cli import main

    result = CliRunner().invoke(main, ["status", "-i", str(fleet.path)])
    assert result.exit_code == 0, result.output
    assert f"control plane on {MON}: mevcontrol active, postgresql active" in result.output
    for name in AGENTS:
        line = next(line for line in result.output.splitlines() if line.strip().startswith(f"agent {name} "))
        assert line.endswith(" ok"), line


def test_a_second_deploy_changes_nothing(fleet):
    inventory = load_inventory(fleet.path)
    result = run_deploy(compile_plan(inventory), inventory, out=lambda _: None)
    assert not result.failed, result.failed
    changed = {name: host.changed for name, host in result.hosts.items() if host.changed}
    assert not changed, f"a no-op re-run changed: {changed}"


def test_a_host_that_changes_chain_and_one_that_loses_the_monitoring_role_are_cleaned_up(fleet, tmp_path):
    """Last here (it changes the fleet): ctl-op1 becomes a Solana host (its Optimism node goes; its agent
    stays and searches the simulator's pools), ctl-mon1 loses the monitoring role (a Solana host too: no
    monitoring, no control plane, and with it the fleet's log shipping; an agent now). One pyinfra deploy
    stops, disables and removes what each host no longer has and keeps its data; the verify suite passes
    (its test_removed.py names any leftover; test_agent.py checks each agent's chains are ready); a third
    run changes nothing. (A host left without any chain loses its agent: tests/unit/test_removed_concerns.py
    runs that removal by a real shell and a real Ansible run.)"""
    doc = yaml.safe_load(fleet.path.read_text())
    doc["hosts"][AGENTS[1]]["chains"] = ["solana"]
    doc["hosts"][MON] = {"address": doc["hosts"][MON]["address"], "chains": ["solana"]}
    path = tmp_path / "dropped.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inventory = load_inventory(path)
    plan = compile_plan(inventory)
    before, after = fleet.plan.hosts[AGENTS[1]].agent, plan.hosts[AGENTS[1]].agent
    assert [c.chain for c in before.chains] == ["optimism"] and [c.chain for c in after.chains] == ["solana"]
    assert fleet.plan.hosts[MON].agent is None and plan.hosts[MON].agent is not None
    assert plan.hosts[MON].control is None
    (node,) = fleet.plan.hosts[AGENTS[1]].nodes

    started = time.monotonic()
    result = run_deploy(plan, inventory, out=lambda _: None)
    deployed = time.monotonic() - started
    assert not result.failed, result.failed
    done = {name: " | ".join(host.changed) for name, host in result.hosts.items()}
    assert f"{node.unit} removed (no longer planned; data dir kept)" in done[AGENTS[1]]
    assert "searcher agent" not in done[AGENTS[1]]
    for name in ("monitoring services", "control plane", "log shipping"):
        assert f"{name} removed (no longer planned; " in done[MON], (name, done[MON])
    assert "log shipping removed" in done[AGENTS[0]] and "searcher agent" not in done[AGENTS[0]]

    def sh(host: str, command: str) -> str:
        return _exec(host, f"{command} 2>/dev/null || true").strip()

    gone = f"systemctl list-unit-files --no-legend {node.unit}.service {CONTROL_UNIT} 2>/dev/null | wc -l"
    solana = "solana-solana-standin.service"
    assert sh(AGENTS[1], f"systemctl is-active {UNIT} {solana}; {gone}").split() == ["active", "active", "0"]
    assert sh(AGENTS[1], f"test -d {node.data_dir} && echo kept") == "kept"
    assert "solana:" in sh(AGENTS[1], f"cat {after.config_path}")
    services = f"{CONTROL_UNIT} {POSTGRES_UNIT} prometheus.service prometheus-alertmanager.service redis-server.service"
    assert set(sh(MON, f"systemctl is-active {services}").split()) == {"inactive"}
    packaged = "postgresql.service prometheus.service prometheus-alertmanager.service redis-server.service"
    enabled = sh(MON, f'for u in {packaged}; do systemctl is-enabled "$u"; done').split()
    assert enabled == ["disabled"] * 4, enabled
    assert sh(MON, f"ls -d {CONTROL_CONFIG_DIR} {REDIS_AUTH}") == ""
    assert sh(MON, f"test -d {POSTGRES_DATA} && test -d /var/lib/prometheus && echo kept") == "kept"
    assert sh(MON, f"systemctl is-active {solana} {UNIT}").split() == ["active", "active"]

    started = time.monotonic()
    verify = REPO_ROOT / "tests" / "verify"
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--inventory={path}",
            str(verify / "test_removed.py"), str(verify / "test_agent.py"), str(verify / "test_services.py"),
            str(verify / "test_firewall.py"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )  # fmt: skip
    verified = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]

    started = time.monotonic()
    again = run_deploy(compile_plan(inventory), inventory, out=lambda _: None)
    assert not again.failed, again.failed
    assert not {n: h.changed for n, h in again.hosts.items() if h.changed}, "the run after the removals changed"
    print(f"\nremovals deploy {deployed:.1f} s, verify {verified:.1f} s, no-op {time.monotonic() - started:.1f} s")
