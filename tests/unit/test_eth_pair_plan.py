"""The devnet's real Ethereum pair as the plan and the catalog describe it: four hardened units (execution,
two peered beacon nodes, the validator client using both), one JWT shared by execution and beacon nodes,
the Engine API on loopback only, the beacon API and every client's metrics on their planned exposures and
scraped, npm bundles pinned by the registry's integrity, systemd accepting the units, the beacon nodes'
genesis script against a real HTTP server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.catalog import load_catalog
from mevfleet.engine.nodes import jwt_restarts
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.model import HostPlan
from mevfleet.nodes.artifacts import ArtifactError
from mevfleet.nodes.npm import check_lock, lock_dir, recipe_id, sha512_integrity
from mevfleet.nodes.planning import unpinned_artifacts
from mevfleet.plan import compile_plan
from mevfleet.probe import FileState, HostState
from mevfleet.render import HostFacts, ManagedFile, host_files
from testbed.services import free_port

EL, CL, VC = "ethereum-ethereumjs", "ethereum-lodestar", "ethereum-lodestar-validator"
CL2 = "ethereum-lodestar2"
INVENTORY = """
fleet: {nodes: devnet, private_networks: [10.9.0.0/24], real_clients: [ethereum]}
hosts:
  mon1: {address: 10.9.0.10, roles: [monitoring]}
  eth1: {address: 10.9.0.11, chains: [ethereum, arbitrum]}
"""


def _node_files(plan: HostPlan) -> list[ManagedFile]:
    """The nodes' files as they land on a host (rendered by host_files)."""
    return [f for f in host_files(plan, HostFacts()) if f.concern == "nodes"]


@pytest.fixture(scope="module")
def fleet():
    return compile_plan(parse_inventory(INVENTORY, "f.yml"))


def units(plan) -> dict:
    return {n.unit: n for n in plan.nodes}


def test_eth1_runs_the_pair_and_other_chains_keep_anvil(fleet):
    eth1 = fleet.hosts["eth1"]
    nodes = units(eth1)
    assert {n.client for n in eth1.nodes if n.chain == "ethereum"} == {
        "ethereumjs",
        "lodestar-beacon",
        "lodestar-validator",
    }
    assert nodes["arbitrum-anvil"].client == "anvil"
    assert nodes[EL].release_dir == "/opt/mevfleet/ethereumjs/0.10.5"
    # Beacon and validator come from one npm bundle: one release dir, two `current` links.
    assert nodes[CL].release_dir == nodes[VC].release_dir == "/opt/mevfleet/lodestar/1.5.1"
    assert nodes[CL].link != nodes[VC].link
    assert nodes[CL].after == nodes[CL2].after == (EL,) and nodes[VC].after == (CL,)
    assert nodes[CL2].client == "lodestar-beacon" and nodes[CL2].release_dir == nodes[CL].release_dir
    assert len({n.user for n in eth1.nodes}) == len(eth1.nodes), "each client runs as its own user"
    # The agent's execution node is the real client.
    assert [c.node_unit for c in eth1.agent.chains if c.chain == "ethereum"] == [EL]
    # The shipped devnet does the same on eth1.
    devnet = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))
    assert EL in units(devnet.hosts["eth1"]) and "arbitrum-anvil" in units(devnet.hosts["arb1"])
    assert unpinned_artifacts(devnet) == []


def test_one_jwt_for_execution_and_beacon_engine_api_on_loopback(fleet):
    eth1 = fleet.hosts["eth1"]
    nodes = units(eth1)
    [jwt] = [j for j in eth1.jwts if j.chain == "ethereum"]
    assert jwt.copies == (
        ("/var/lib/ethereumjs/jwt.hex", "ethereumjs"),
        ("/var/lib/lodestar/jwt.hex", "lodestar"),
        ("/var/lib/lodestar2/jwt.hex", "lodestar2"),
    )
    assert nodes[VC].jwt is None, "the validator never holds the Engine API secret"
    authrpc = next(p for p in eth1.ports() if p.key == "ethereum.ethereumjs.authrpc")
    el = " ".join(nodes[EL].args)
    assert f"--rpcEngine --rpcEngineAddr 127.0.0.1 --rpcEnginePort {authrpc.port} --jwtSecret {jwt.copies[0][0]}" in el
    for unit, (copy, _) in zip((CL, CL2), jwt.copies[1:], strict=True):
        assert f"--execution.urls http://127.0.0.1:{authrpc.port} --jwt-secret {copy}" in " ".join(nodes[unit].args)
    assert authrpc.exposure == "loopback"
    opened = {p for rule in eth1.firewall.rules for p in rule.ports}
    assert str(authrpc.port) not in opened, "the Engine API is never opened in the firewall"


def test_a_jwt_repair_restarts_only_the_units_whose_copy_it_rewrites(fleet):
    [jwt] = [j for j in fleet.hosts["eth1"].jwts if j.chain == "ethereum"]

    def state(**shas: str | None) -> HostState:
        files = {}
        for path, owner in jwt.copies:
            sha = shas.get(owner, "a" * 64)
            files[path] = None if sha is None else FileState(mode="0600", owner=owner, group=owner, sha256=sha)
        return HostState(files=files)

    assert jwt_restarts(jwt, state()) == ()
    # A beacon node's copy diverging: that node alone restarts, its peer keeps the chain going.
    assert jwt_restarts(jwt, state(lodestar="b" * 64)) == (CL,)
    assert jwt_restarts(jwt, state(lodestar2=None)) == (CL2,)
    # The execution client's copy missing: the beacon nodes' secret is kept, the execution client restarts.
    assert jwt_restarts(jwt, state(ethereumjs=None)) == (EL,)
    # Both beacon copies differing from the execution client's: never both beacon nodes at once. The
    # secret most copies hold is kept; on a tie the last copy's, so the execution client restarts.
    assert jwt_restarts(jwt, state(lodestar="b" * 64, lodestar2="b" * 64)) == (EL,)
    assert jwt_restarts(jwt, state(lodestar="b" * 64, lodestar2="c" * 64)) == (EL, CL)
    # No secret anywhere (first deploy): all of them.
    assert jwt_restarts(jwt, state(ethereumjs=None, lodestar=None, lodestar2=None)) == (EL, CL, CL2)
    wrong_owner = state()
    wrong_owner.files[jwt.copies[2][0]] = FileState(mode="0644", owner="root", group="root", sha256="a" * 64)
    assert jwt_restarts(jwt, wrong_owner) == (CL2,)


def test_a_restart_of_a_pair_unit_never_restarts_the_units_after_it(fleet):
    """Wants=, not Requires=: `systemctl restart` of the execution client (an upgrade) must not restart both
    beacon nodes with it, which stalls the chain for good (docs/nodes.md)."""
    files = {f.path: f.content for f in _node_files(fleet.hosts["eth1"])}
    expected = {CL: EL, CL2: EL, VC: CL}
    for unit, needs in expected.items():
        text = files[f"/etc/systemd/system/{unit}.service"]
        assert f"\nWants={needs}.service\n" in text and f"After=network-online.target {needs}.service\n" in text
        assert not any(f"\n{d}=" in text for d in ("Requires", "BindsTo", "PartOf")), unit
    arbitrum = [f for f in files if f.startswith("/etc/systemd/system/arbitrum-")]
    assert arbitrum, "the other chains' units still render"


def test_beacon_api_and_metrics_on_planned_exposures_and_scraped(fleet):
    eth1, mon = fleet.hosts["eth1"], fleet.hosts["mon1"]
    nodes = units(eth1)
    beacon_api = next(p for p in eth1.ports() if p.key == "ethereum.lodestar.beacon-api")
    assert beacon_api.exposure == "fleet" and nodes[CL].beacon_url == f"http://10.9.0.11:{beacon_api.port}"
    assert f"--rest.address 10.9.0.11 --rest.port {beacon_api.port}" in " ".join(nodes[CL].args)
    # The agent asks the same beacon API for its peer count (the dashboard's health view shows it).
    [chain] = [c for c in eth1.agent.config["chains"] if c["name"] == "ethereum"]
    assert chain["beacon_url"] == nodes[CL].beacon_url
    assert all("beacon_url" not in c for c in eth1.agent.config["chains"] if c["name"] != "ethereum")
    scraped = {t.job: t for t in mon.scrape_targets}
    for unit, port in ((EL, "ethereumjs"), (CL, "lodestar"), (CL2, "lodestar2"), (VC, "lodestar-validator")):
        metrics = next(p for p in eth1.ports() if p.key == f"ethereum.{port}.metrics")
        assert metrics.exposure == "monitoring"
        assert scraped[unit].target == f"10.9.0.11:{metrics.port}" and scraped[unit].chain == "ethereum"


def test_second_beacon_node_peers_on_loopback_and_the_validator_uses_both(fleet):
    eth1 = fleet.hosts["eth1"]
    nodes = units(eth1)
    port = {p.key: p for p in eth1.ports()}
    api, api2 = port["ethereum.lodestar.beacon-api"], port["ethereum.lodestar2.beacon-api"]
    p2p, p2p2 = port["ethereum.lodestar.p2p"], port["ethereum.lodestar2.p2p"]
    assert api2.exposure == p2p2.exposure == "loopback" and api2.port != api.port and p2p2.port != p2p.port
    second = " ".join(nodes[CL2].args)
    assert f"--listenAddress 127.0.0.1 --port {p2p2.port} --discv5=false --enr.ip 127.0.0.1" in second
    assert f"--rest.address 127.0.0.1 --rest.port {api2.port}" in second
    assert "--dataDir /var/lib/lodestar2/beacon" in second and "--startValidators" not in second
    for node in (nodes[CL], nodes[CL2]):
        assert "--network.connectToDiscv5Bootnodes" in node.args and "--bootnodes" not in " ".join(node.args)
    # Each knows the other's API (asked for its ENR at each start); the second takes the first's genesis.
    assert nodes[CL].beacon_peers == (nodes[CL2].beacon_url,) and nodes[CL2].beacon_peers == (nodes[CL].beacon_url,)
    assert nodes[CL2].beacon_url == f"http://127.0.0.1:{api2.port}"
    assert nodes[CL].genesis_from is None and nodes[CL2].genesis_from == nodes[CL].beacon_url
    files = {f.path: f.content for f in _node_files(eth1)}
    pre = [line for line in files[f"/etc/systemd/system/{CL2}.service"].splitlines() if "ExecStartPre" in line]
    assert pre and pre[0].endswith(f"/lodestar2/genesis.yml {nodes[CL].beacon_url} {nodes[CL].beacon_url}")
    # The validator client: the first beacon node, and the second when the first errs or is syncing.
    assert f"--beaconNodes {nodes[CL].beacon_url},{nodes[CL2].beacon_url}" in " ".join(nodes[VC].args)
    # The agent keeps asking the first; nothing of the second is opened in the firewall but its metrics.
    [chain] = [c for c in eth1.agent.config["chains"] if c["name"] == "ethereum"]
    assert chain["beacon_url"] == nodes[CL].beacon_url
    opened = {p for rule in eth1.firewall.rules for p in rule.ports}
    assert not {str(api2.port), str(p2p2.port)} & opened
    assert str(port["ethereum.lodestar2.metrics"].port) in opened


def test_units_are_hardened_with_the_devnet_genesis_steps(fleet):
    files = {f.path: f.content for f in _node_files(fleet.hosts["eth1"])}
    nodes = units(fleet.hosts["eth1"])
    for unit, node in nodes.items():
        if node.chain != "ethereum":
            continue
        text = files[f"/etc/systemd/system/{unit}.service"]
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "TimeoutStopSec=30"):
            assert line in text, f"{unit}: {line}"
        assert f"User={node.user}" in text and f"ReadWritePaths={node.data_dir}" in text
        assert f"ExecStart={node.link}/node/bin/node \\\n    {node.link}/app/node_modules/" in text
    assert "genesis.json" in files[f"/etc/systemd/system/{EL}.service"]
    assert "LODESTAR_PRESET=minimal" in files[f"/etc/systemd/system/{CL}.service"]
    genesis = files[f"{nodes[EL].config_dir}/genesis.template.json"]
    doc = json.loads(genesis.replace('"@GENESIS_TIME@"', '"0x0"'))
    assert doc["config"]["chainId"] == 1 and doc["config"]["shanghaiTime"] == 0
    assert "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266" in doc["alloc"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_pairs_units(fleet, tmp_path):
    stub = tmp_path / "node"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for node in units(fleet.hosts["eth1"]).values():
        if node.chain != "ethereum":
            continue
        text = next(f.content for f in _node_files(fleet.hosts["eth1"]) if f.path.endswith(f"/{node.unit}.service"))
        text = text.replace(f"{node.link}/node/bin/node", str(stub))
        text = text.replace(f"User={node.user}\n", "").replace(f"Group={node.user}\n", "")
        unit = tmp_path / f"{node.unit}.service"
        unit.write_text(text)
        run = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
        problems = [
            line for line in run.stderr.splitlines()
            if unit.name in line and "Unit configured to use" not in line and "not found" not in line
        ]  # fmt: skip
        assert not problems, f"{unit.name}: {problems}"


def test_real_clients_are_refused_where_they_cannot_run():
    for text, message in (
        (
            "fleet: {nodes: mainnet, real_clients: [ethereum]}\nhosts: {e: {address: 10.0.0.1, chains: [ethereum]}}",
            "fleet.real_clients: only a devnet (fleet.nodes: devnet) runs them",
        ),
        (
            "fleet: {nodes: devnet, real_clients: [arbitrum]}\nhosts: {a: {address: 10.0.0.1, chains: [arbitrum]}}",
            "fleet.real_clients: 'arbitrum' has no real devnet clients (ethereum)",
        ),
    ):
        with pytest.raises(InventoryError) as err:
            compile_plan(parse_inventory(text, "f.yml"))
        assert message in str(err.value)


def test_npm_pins_match_the_lock_files_and_the_recipe_id_follows_them(tmp_path, monkeypatch):
    catalog = load_catalog()
    for client in ("ethereumjs", "lodestar-beacon", "lodestar-validator"):
        # Every pinned version, not only the default: EthereumJS 0.10.4 is the other end of the upgrade test.
        for artifact in catalog.clients[client].versions.values():
            assert artifact.npm is not None
            check_lock(artifact.npm)  # the lock pins the package at the catalog's version and registry integrity
            assert artifact.sha256 == recipe_id(artifact.npm)
    assert set(catalog.clients["ethereumjs"].versions) == {"0.10.4", "0.10.5"}
    bundle = catalog.clients["ethereumjs"].versions["0.10.5"].npm
    # Any change to a pin changes the id (a new release dir, a new build), and a lock that disagrees
    # with the catalog's integrity is refused before anything is built.
    other = bundle.model_copy(update={"integrity": "sha512-" + "A" * 86 + "=="})
    assert recipe_id(other) != recipe_id(bundle)
    with pytest.raises(ArtifactError, match=r"the catalog 0\.10\.5 sha512-AAAA"):
        check_lock(other)
    copy = tmp_path / bundle.lock
    shutil.copytree(lock_dir(bundle), copy)
    (copy / "package-lock.json").write_text((copy / "package-lock.json").read_text().replace("0.10.5", "0.10.4", 1))
    monkeypatch.setattr("mevfleet.nodes.npm.LOCKS", tmp_path)
    assert recipe_id(bundle) != catalog.clients["ethereumjs"].versions["0.10.5"].sha256


def test_sha512_integrity_is_npms_format(tmp_path):
    f = tmp_path / "x.tgz"
    f.write_bytes(b"abc")
    assert sha512_integrity(f) == "sha512-" + base64.b64encode(hashlib.sha512(b"abc").digest()).decode()


class _Engine(BaseHTTPRequestHandler):
    """An Engine API that checks the HS256 token like an execution client does."""

    secret = b""

    def do_POST(self):
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        message, _, mac = token.rpartition(".")
        want = base64.urlsafe_b64encode(hmac.new(self.secret, message.encode(), hashlib.sha256).digest()).rstrip(b"=")
        self.rfile.read(int(self.headers["Content-Length"]))
        if not hmac.compare_digest(mac.encode(), want):
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"hash": "0x" + "ab" * 32, "timestamp": "0x64"}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (deploy/bootstrap.sh installs it)")
def test_beacon_genesis_script_reads_block_zero_over_the_engine_api_with_the_jwt(fleet, tmp_path):
    nodes = units(fleet.hosts["eth1"])
    script = next(f.content for f in _node_files(fleet.hosts["eth1"]) if f.path.endswith("/genesis-args.mjs"))
    (tmp_path / "genesis-args.mjs").write_text(script)
    secret = bytes(range(32))
    (tmp_path / "jwt.hex").write_text(secret.hex())
    _Engine.secret = secret
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "genesis.yml"
    url = f"http://127.0.0.1:{server.server_address[1]}"

    def genesis_args() -> tuple[int, str]:
        run = subprocess.run(
            ["node", str(tmp_path / "genesis-args.mjs"), url, str(tmp_path / "jwt.hex"), str(out)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, run.stderr
        time_line, hash_line = out.read_text().splitlines()
        return int(time_line.removeprefix("genesisTime: ")), hash_line

    try:
        before = int(time.time())
        genesis_time, hash_line = genesis_args()
        assert hash_line == f'genesisEth1Hash: "0x{"ab" * 32}"'
        assert before + 20 <= genesis_time <= int(time.time()) + 20, "20 s after the script ran"
        # Kept across restarts while the execution genesis is the same (the beacon DB belongs to it)...
        assert genesis_args()[0] == genesis_time
        # ... and made again when it changed.
        out.write_text('genesisTime: 1\ngenesisEth1Hash: "0xother"\n')
        assert genesis_args()[0] >= before + 20
    finally:
        server.shutdown()
    assert f"--rcConfig {nodes[CL].data_dir}/genesis.yml" in " ".join(nodes[CL].args)


class _Beacon(BaseHTTPRequestHandler):
    """A beacon API answering its genesis and identity (as Lodestar does)."""

    ENR = "enr:-Ly4QEXAMPLE"

    def answers(self) -> dict:
        return {"/eth/v1/beacon/genesis": {"genesis_time": "1700000000"}, "/eth/v1/node/identity": {"enr": self.ENR}}

    def do_GET(self):
        data = self.answers().get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"data": data}).encode())

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (deploy/bootstrap.sh installs it)")
def test_second_beacon_takes_the_first_ones_genesis_and_each_start_its_peers_enrs(fleet, tmp_path):
    script = next(f.content for f in _node_files(fleet.hosts["eth1"]) if f.path.endswith("/genesis-args.mjs"))
    (tmp_path / "genesis-args.mjs").write_text(script)
    secret = bytes(range(32))
    (tmp_path / "jwt.hex").write_text(secret.hex())
    _Engine.secret = secret
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (_Engine, _Beacon)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    engine, peer = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    down = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on: a peer that is down
    out = tmp_path / "genesis.yml"

    def run(*args: str) -> str:
        command = ["node", str(tmp_path / "genesis-args.mjs"), engine, str(tmp_path / "jwt.hex"), str(out), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return out.read_text()

    try:
        rc = run(peer, down, peer)
        # The first node's genesis time (not a new one), the execution genesis hash, the answering peer's ENR.
        assert rc == f'genesisTime: 1700000000\ngenesisEth1Hash: "0x{"ab" * 32}"\nbootnodes:\n  - "{_Beacon.ENR}"\n'
        # Next start: the genesis is kept, the ENRs are read again (a peer down now is left out).
        assert run("-", down) == f'genesisTime: 1700000000\ngenesisEth1Hash: "0x{"ab" * 32}"\n'
    finally:
        for server in servers:
            server.shutdown()


class _BeaconState(_Beacon):
    """A beacon API whose head slot and connected peer count the test sets (class attributes per server)."""

    head = 0
    peers = 0

    def answers(self) -> dict:
        return {
            "/eth/v1/node/syncing": {"head_slot": str(self.head), "is_syncing": False},
            "/eth/v1/node/peer_count": {"connected": str(self.peers)},
        }


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (deploy/bootstrap.sh installs it)")
def test_peer_guard_restarts_only_the_beacon_node_left_behind_alone(fleet, tmp_path):
    """The guard beside each beacon node of the pair (its unit starts it; Restart=always brings the node back)
    stops its node once it has had no peer for the grace period while a peer answers ahead of it, and only then."""
    files = {f.path: f.content for f in _node_files(fleet.hosts["eth1"])}
    nodes = units(fleet.hosts["eth1"])
    for unit in (CL, CL2):
        text = files[f"/etc/systemd/system/{unit}.service"]
        assert "Restart=always" in text and "Restart=on-failure" not in text, unit
        assert f"peer-guard.mjs {nodes[unit].beacon_url} {nodes[unit].beacon_peers[0]} &'" in text, unit
    assert "Restart=on-failure" in files[f"/etc/systemd/system/{EL}.service"]
    script = tmp_path / "peer-guard.mjs"
    script.write_text(files[f"{nodes[CL].config_dir}/peer-guard.mjs"])
    own_api = type("Own", (_BeaconState,), {})
    peer_api = type("Peer", (_BeaconState,), {})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (own_api, peer_api)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    own, peer = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    down = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": "/usr/bin:/bin", "PEER_GUARD_GRACE_S": "1", "PEER_GUARD_POLL_S": "0.2", "PEER_GUARD_STOP_S": "2"}

    def guard(*peers: str, seconds: float) -> tuple[bool, str]:
        """Run the guard beside a stand-in node for `seconds`: was the node stopped, and what did the guard say."""
        node = subprocess.Popen(["sleep", "300"])
        proc = subprocess.Popen(
            ["node", str(script), own, *peers], env={**env, "MAINPID": str(node.pid)},
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(seconds)
        stopped = node.poll() is not None
        node.kill()
        if proc.poll() is None:
            proc.kill()
        return stopped, proc.communicate(timeout=10)[1]

    try:
        own_api.head, own_api.peers, peer_api.head = 47, 0, 104
        # Connected: left alone, however far ahead the peer is.
        own_api.peers = 1
        assert guard(peer, seconds=2.5) == (False, "")
        # Alone and behind, past the grace period: stopped, saying why.
        own_api.peers = 0
        stopped, said = guard(down, peer, seconds=10)
        assert stopped, said
        assert f"no peer for 1 s while {peer} is at slot 104, this node at 47: restarting" in said
        # Alone but the peer is not ahead (it is the one behind, or one block in flight): left alone.
        peer_api.head = 48
        assert guard(peer, seconds=2.5) == (False, "")
        # Alone and no peer answering (the peer is restarting itself): left alone.
        assert guard(down, seconds=2.5) == (False, "")
    finally:
        for server in servers:
            server.shutdown()


def test_beacon_state_from_the_beacon_api_and_a_syncing_node_is_not_healthy():
    from mevfleet.nodes.beacon import parse_beacon
    from mevfleet.nodes.ops import NodeStatus

    lines = [
        '{"data":{"head_slot":"40","sync_distance":"0","is_syncing":false,"is_optimistic":false}}',
        '{"data":{"previous_justified":{"epoch":"3"},"current_justified":{"epoch":"4"},"finalized":{"epoch":"3"}}}',
        '{"data":{"disconnected":"0","connecting":"0","connected":"0","disconnecting":"0"}}',
        "200",
    ]
    state = parse_beacon(lines)
    assert (state.head_slot, state.finalized_epoch, state.justified_epoch, state.peers, state.health) == (
        40,
        3,
        4,
        0,
        200,
    )
    row = NodeStatus(host="h", chain="ethereum", unit=CL, state="active", head=None, lag=None, peers=None,
                     version="1.5.1", planned="1.5.1")  # fmt: skip
    synced = row.model_copy(update=state.status_fields())
    assert synced.healthy and synced.head == 40 and synced.lag == 0 and not synced.note
    lines[0] = '{"data":{"head_slot":"0","sync_distance":"122","is_syncing":true,"is_optimistic":false}}'
    behind = row.model_copy(update=parse_beacon(lines).status_fields())
    assert not behind.healthy and behind.note == "syncing: head 122 slots behind the clock"
    # A beacon API that does not answer leaves no head: not healthy either.
    assert not row.model_copy(update=parse_beacon(["{}", "{}", "{}", "000"]).status_fields()).healthy
