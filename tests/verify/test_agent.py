"""The searcher agent, as the plan says: running hardened on its own cores, dry-run unless the inventory
made a chain live, its API on loopback and refusing unauthenticated changes, secrets owner-only."""

from __future__ import annotations

import json
import re
import time

import pytest

from mevfleet.agent import link, release_dir
from mevfleet.model import HostPlan

# The target for `systemd-analyze security mevagent.service` (0 = locked down, 10 = exposed).
MAX_EXPOSURE = 2.0


@pytest.fixture
def agent(plan: HostPlan):
    if plan.agent is None:
        pytest.skip("no agent on this host (no chain)")
    return plan.agent


def test_unit_active_enabled_as_its_own_user(host, agent):
    unit = host.service("mevagent")
    assert unit.is_running and unit.is_enabled
    pid = host.check_output("systemctl show -p MainPID --value mevagent")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == agent.user


def test_release_is_the_planned_version(host, agent):
    current = host.file(link(agent))
    assert current.is_symlink and current.linked_to == release_dir(agent)


def test_pinned_to_the_agent_cores(host, agent):
    if agent.cpu_affinity is None:
        pytest.skip("the host's core count is unknown: no CPU plan")
    pid = host.check_output("systemctl show -p MainPID --value mevagent")
    allowed = host.check_output(f"grep Cpus_allowed_list /proc/{pid}/status").split()[-1]
    assert allowed == agent.cpu_affinity


def test_systemd_exposure_within_target(host, agent):
    out = host.check_output("systemd-analyze security --no-pager mevagent.service | tail -n 1")
    score = float(re.search(r"([0-9.]+)", out.split(":", 1)[1]).group(1))
    assert score <= MAX_EXPOSURE, out


def test_secrets_are_owner_only(host, agent):
    token = host.file(agent.token_file)
    assert token.exists and token.mode == 0o600 and token.user == agent.user
    keys = host.file(agent.keys_dir)
    assert keys.is_directory and keys.mode == 0o700 and keys.user == agent.user
    for key in host.check_output(f"find {agent.keys_dir} -type f").split():
        assert host.file(key).mode == 0o600, key


def test_dry_run_unless_planned_live(host, agent):
    config = host.file(agent.config_path)
    assert config.mode == 0o640 and config.group == agent.user
    lines = config.content_string
    for chain in agent.chains:
        assert f"live: {'true' if chain.live else 'false'}" in lines


def test_api_on_loopback_and_mutations_need_the_token(host, agent):
    url = f"http://{agent.api_bind}:{agent.api_port}"
    health = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' {url}/health")
    assert health.stdout == "200", health.stdout
    anonymous = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' -X POST {url}/emergency/stop")
    assert anonymous.stdout == "401", "an unauthenticated emergency stop must be refused"
    listening = host.check_output(f"ss -Htln 'sport = :{agent.api_port}'")
    # Loopback, and the private address the control host reaches (its firewall opening: test_control.py).
    allowed = ("127.0.0.1:", "[::1]:", *([f"{agent.api_control_bind}:"] if agent.api_control_bind else []))
    assert all(line.split()[3].startswith(allowed) for line in listening.splitlines()), listening


def test_metrics_served_for_the_monitoring_host(host, agent):
    body = host.check_output(f"curl -sf http://{agent.metrics_bind}:{agent.metrics_port}/metrics")
    assert "mev_opportunities_found" in body
    status = json.loads(host.check_output(f"curl -sf http://{agent.api_bind}:{agent.api_port}/health"))
    assert status, "health answers a JSON document"


def test_ready_names_every_planned_chain_and_solana_has_its_pools(host, agent):
    """/ready checks each planned chain by name; a Solana chain is ready (its node's slot moves and every
    configured pool is read: on the devnet, the pools the simulator holds from its start)."""
    url = f"http://{agent.api_bind}:{agent.api_port}/ready"
    solana = {c.chain for c in agent.chains if c.vm == "svm"}
    wanted = {f"{c.chain}:node_synced" for c in agent.chains}
    deadline = time.monotonic() + 60  # a just-restarted agent reads its pools within seconds
    while True:
        out = host.run(f"curl -s {url}").stdout
        checks = {c["name"]: c for c in json.loads(out)["checks"]} if out.strip() else {}
        pending = [c for name, c in checks.items() if name.split(":")[0] in solana and not c["ok"]]
        if (wanted <= set(checks) and not pending) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert wanted <= set(checks), sorted(checks)
    assert not pending, pending
