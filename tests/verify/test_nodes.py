"""Chain nodes, as the plan says: unit active and enabled, listening only where planned, RPC answering
with the chain's id, `current` on the pinned version, JWT copies identical and owner-only."""

from __future__ import annotations

import json
import shlex

import pytest

from mevfleet.catalog import load_catalog
from mevfleet.model import HostPlan
from mevfleet.nodes.beacon import beacon_probe, parse_beacon
from mevfleet.nodes.ops import rpc_command


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
        ports = [p for s in plan.services if s.unit == node.unit for p in s.ports]
        planned = {p.port for p in ports}
        # A client that cannot bind one address for a port (catalog listens_all): the firewall guards it.
        wildcard = {p.port for p in ports if p.name in load_catalog().clients[node.client].listens_all}
        bound = [(a.rsplit(":", 1)[0].strip("[]"), int(a.rsplit(":", 1)[1])) for a in listening]
        addresses = {a for a, port in bound if port in planned - wildcard}
        assert addresses or wildcard, f"{node.unit} listens on none of its planned ports {sorted(planned)}"
        assert addresses <= allowed, f"{node.unit} listens on {addresses - allowed} (plan: {sorted(allowed)})"
        if node.ipc:
            assert host.socket(f"unix://{node.ipc}").is_listening, node.ipc


def test_jwt_identical_on_both_sides(host, plan):
    if not plan.jwts:
        pytest.skip("no client pair shares a JWT on this host")
    for jwt in plan.jwts:
        digests = {}
        for path, owner in jwt.copies:
            f = host.file(path)
            assert (f.user, f.group, f"{f.mode:04o}") == (owner, owner, "0600"), path
            assert len(f.content_string.strip()) == 64, f"{path} is not a 32-byte hex secret"
            digests[path] = f.sha256sum
        first, *others = jwt.copies
        wrong = [f"{p} ({o})" for p, o in others if digests[p] != digests[first[0]]]
        assert not wrong, (
            f"{jwt.chain}: JWT differs from {first[0]} ({first[1]}) in {', '.join(wrong)}: "
            f"the Engine API will refuse the other side; `mevfleet deploy` repairs it"
        )


def _engine_call(host, url: str, jwt_file: str | None) -> str:
    """HTTP status of engine_exchangeCapabilities, with a token made on the host from jwt_file (or none)."""
    body = '{"jsonrpc":"2.0","id":1,"method":"engine_exchangeCapabilities","params":[[]]}'
    auth = ""
    if jwt_file:
        # The secret never leaves the host: the HS256 token is made there, by python3 (Debian base).
        token = (
            "import base64,hashlib,hmac,json,sys,time;"
            "b=lambda d:base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b'=').decode();"
            "m=b({'alg':'HS256','typ':'JWT'})+'.'+b({'iat':int(time.time())});"
            "k=bytes.fromhex(open(sys.argv[1]).read().strip().removeprefix('0x'));"
            "print(m+'.'+base64.urlsafe_b64encode(hmac.new(k,m.encode(),hashlib.sha256).digest()).rstrip(b'=').decode())"
        )
        auth = f'-H "Authorization: Bearer $(python3 -c {shlex.quote(token)} {shlex.quote(jwt_file)})"'
    return host.check_output(
        f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' {auth} "
        f"--data {shlex.quote(body)} {shlex.quote(url)} || true"
    )


def test_engine_api_requires_the_jwt(host, plan):
    engines = [
        (n, p.port)
        for n in started(plan)
        if n.jwt
        for s in plan.services
        if s.unit == n.unit
        for p in s.ports
        if p.name == "authrpc" and p.exposure == "loopback"
    ]
    if not engines:
        pytest.skip("no execution client with an Engine API runs on this host")
    for node, port in engines:
        url = f"http://127.0.0.1:{port}"
        assert _engine_call(host, url, None) == "401", f"{node.unit}: Engine API answers without the JWT"
        assert _engine_call(host, url, node.jwt) == "200", f"{node.unit}: Engine API refuses its own JWT"


def test_beacon_nodes_synced_and_healthy(host, plan):
    beacons = [n for n in started(plan) if n.beacon_url]
    if not beacons:
        pytest.skip("no consensus client on this host")
    for node in beacons:
        state = parse_beacon(host.check_output(beacon_probe(node.beacon_url)).splitlines())
        assert state.head_slot is not None, f"{node.unit}: no answer from {node.beacon_url}/eth/v1/node/syncing"
        assert state.health == 200 and state.is_syncing is False, f"{node.unit}: {state}"
        # Peered with the chain's other beacon nodes on this host: a restarted one range-syncs from them.
        if node.beacon_peers:
            assert (state.peers or 0) >= 1, f"{node.unit}: no peer (planned: {', '.join(node.beacon_peers)})"


def test_each_paired_beacon_node_has_its_peer_guard(host, plan):
    paired = [n for n in started(plan) if n.beacon_url and n.beacon_peers]
    if not paired:
        pytest.skip("no pair of beacon nodes on this host")
    processes = host.check_output("ps -eo unit=,args=").splitlines()
    for node in paired:
        # In the node's own unit (it stops with the node), started by the unit's ExecStartPost.
        guards = [
            line for line in processes
            if line.split()[:1] == [f"{node.unit}.service"] and f"{node.config_dir}/peer-guard.mjs" in line
        ]  # fmt: skip
        assert len(guards) == 1, f"{node.unit}: {len(guards)} peer guard(s) running in its unit"
