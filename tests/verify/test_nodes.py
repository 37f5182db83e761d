"""Chain nodes, as the plan says: unit active and enabled, listening only where planned, RPC answering
with the chain's id, `current` on the pinned version, JWT copies identical and owner-only."""

from __future__ import annotations

import json

import pytest

from mevfleet.nodes.ops import rpc_command
from mevfleet.plan import HostPlan


def started(plan: HostPlan):
    return [n for n in plan.nodes if n.start]


def test_node_units_active_and_enabled(host, plan):
    for node in started(plan):
        unit = host.service(node.unit)
        assert unit.is_running and unit.is_enabled, f"{node.unit} is not active and enabled"


def test_skipped_nodes_say_why(host, plan):
    skipped = [n for n in plan.nodes if not n.start]
    if not skipped:
        pytest.skip("every node of this host runs")
    for node in skipped:
        # The unit is installed and systemd accepts it; it is not started because no binary exists here.
        assert host.file(f"/etc/systemd/system/{node.unit}.service").exists
        assert not host.service(node.unit).is_running
    pytest.skip("; ".join(f"{n.unit} not started: {n.skip_reason}" for n in skipped))


def test_current_points_at_the_pinned_version(host, plan):
    for node in started(plan):
        if node.runtime != "binary":
            continue
        link = host.file(node.link)
        assert link.is_symlink and link.linked_to == node.release_dir, f"{node.link} -> {link.linked_to}"
        assert host.file(node.executable).is_executable
        assert host.file(node.release_dir).user == "root", "a node must not be able to rewrite its own release"


def test_rpc_answers_with_the_chain_id(host, plan):
    for node in started(plan):
        if node.health is None or node.rpc_url is None:
            continue
        answer = host.check_output(rpc_command(node.rpc_url, node.health.method))
        result = json.loads(answer).get("result")
        if node.health.expect == "chain_id":
            assert result == hex(node.chain_id), f"{node.unit}: {node.health.method} -> {answer}"
        else:
            assert result is not None, f"{node.unit}: {answer}"


def test_listens_only_where_the_plan_says(host, plan):
    # By port, not by process: `ss -p` cannot see other users' sockets without CAP_SYS_PTRACE (containers).
    allowed = {"127.0.0.1", plan.address}
    listening = [line.split()[4] for line in host.check_output("ss -Htlnu").splitlines()]
    for node in started(plan):
        planned = {p.port for s in plan.services if s.unit == node.unit for p in s.ports}
        addresses = {a.rsplit(":", 1)[0].strip("[]") for a in listening if int(a.rsplit(":", 1)[1]) in planned}
        assert addresses, f"{node.unit} listens on none of its planned ports {sorted(planned)}"
        assert addresses <= allowed, f"{node.unit} listens on {addresses - allowed} (plan: {sorted(allowed)})"
        if node.ipc:
            assert host.socket(f"unix://{node.ipc}").is_listening, node.ipc


def test_jwt_identical_on_both_sides(host, plan):
    if not plan.jwts:
        pytest.skip("no client pair shares a JWT on this host")
    for jwt in plan.jwts:
        digests = set()
        for path, owner in jwt.copies:
            f = host.file(path)
            assert (f.user, f.group, f"{f.mode:04o}") == (owner, owner, "0600"), path
            assert len(f.content_string.strip()) == 64, f"{path} is not a 32-byte hex secret"
            digests.add(f.sha256sum)
        assert len(digests) == 1, f"{jwt.chain}: JWT copies differ: {', '.join(p for p, _ in jwt.copies)}"
