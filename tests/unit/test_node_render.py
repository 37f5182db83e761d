"""Node clients: every production unit renders for a realistic host with the reference's flags, systemd
accepts it, no two services share a port, unpinned artifacts are refused, JWT copies come out identical."""

from __future__ import annotations

import getpass
import grp
import hashlib
import itertools
import json
import os
import shutil
import subprocess

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.catalog import load_catalog
from mevfleet.engine.nodes import jwt_restarts
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.model import HostPlan, JwtPlan
from mevfleet.nodes.artifacts import install_script
from mevfleet.nodes.jwt import jwt_script
from mevfleet.nodes.planning import unpinned_artifacts
from mevfleet.plan import compile_plan
from mevfleet.probe import FileState, HostState
from mevfleet.render import HostFacts, ManagedFile, host_files

from .conftest import SOLANA_AGENT

ALL_CHAINS = list(load_catalog().chains)
PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))
DEVNET = compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml"))


def _node_files(plan: HostPlan) -> list[ManagedFile]:
    """The nodes' files as they land on a host (rendered by host_files)."""
    return [f for f in host_files(plan, HostFacts()) if f.concern == "nodes"]


def one_box(nodes: str = "mainnet"):
    text = f"fleet: {{nodes: {nodes}, agent: {json.dumps(SOLANA_AGENT)}}}\n"
    text += f"hosts: {{big: {{chains: [{', '.join(ALL_CHAINS)}], address: 10.0.0.5}}}}"
    return compile_plan(parse_inventory(text, "f.yml")).hosts["big"]


def flags(plan, unit: str) -> str:
    node = next(n for n in plan.nodes if n.unit == unit)
    return " ".join(node.args)


# Flags of an RPC/searcher node as each client documents them, with the ports the plan gave each host.
EXPECTED = {
    ("eth1", "ethereum-erigon"): ["--prune.mode=full", "--http.addr=10.20.0.11", "--private.api.addr=127.0.0.1:9090",
                                  "--beacon.api=beacon,config,node", "--torrent.port=42069", "--txpool.nolocals",
                                  "--metrics.addr=10.20.0.11 --metrics.port=6061"],
    ("eth1", "ethereum-mev-boost"): ["-addr 127.0.0.1:18550", "-relay-check"],
    ("arb1", "arbitrum-nitro"): ["--chain.id=42161", "--parent-chain.connection.url=http://10.20.0.11:8545",
                                 "--parent-chain.blob-client.beacon-url=http://10.20.0.11:5555",
                                 "--http.port=8547", "--ws.port=8548", "--node.staker.enable=false"],
    ("op1", "optimism-op-node"): ["--network=op-mainnet", "--l1.rpckind=erigon --l1.trustrpc",
                                  "--l2=http://127.0.0.1:8551 --l2.jwt-secret=/var/lib/opnode/jwt.hex",
                                  "--syncmode=execution-layer", "--rpc.addr=127.0.0.1 --rpc.port=9545",
                                  "--p2p.listen.tcp=9222"],
    ("op1", "optimism-op-reth"): ["node --chain optimism", "--rollup.disable-tx-pool-gossip",
                                  "--rollup.sequencer-http https://mainnet-sequencer.optimism.io",
                                  "--authrpc.addr 127.0.0.1 --authrpc.port 8551",
                                  "--authrpc.jwtsecret /var/lib/opreth/jwt.hex"],
    ("base1", "base-op-node"): ["--network=base-mainnet", "--verifier.l1-confs=4"],
    ("base1", "base-op-reth"): ["node --chain base", "https://mainnet-sequencer.base.org"],
    ("poly1", "polygon-heimdall"): ["start --home /var/lib/heimdall --chain mainnet --rest-server",
                                    "--bor_rpc_url http://127.0.0.1:8545"],
    ("poly1", "polygon-bor"): ["--bor.heimdall=http://127.0.0.1:1317", "--syncmode full",
                               "--metrics.prometheus-addr 10.20.0.15:7071"],
    ("bsc1", "bsc-bsc-geth"): ["--tries-verify-mode none", "--history.transactions 0", "--port 30311",
                               "--metrics.port 6060"],
    ("avax1", "avalanche-avalanchego"): ["--network-id=mainnet", "--http-host=10.20.0.17", "--index-enabled",
                                         "--staking-port=9651", "--fd-limit=65535"],
    ("sol1", "solana-agave"): ["--no-voting --full-rpc-api --private-rpc", "--rpc-port 8899",
                               "--dynamic-port-range 8002-8020", "--enable-rpc-transaction-history",
                               "--expected-genesis-hash 5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d"],
}  # fmt: skip


@pytest.mark.parametrize(("host", "unit"), list(EXPECTED))
def test_production_flags_match_the_reference(host, unit):
    rendered = flags(PRODUCTION.hosts[host], unit)
    for expected in EXPECTED[(host, unit)]:
        assert expected in rendered, f"{unit}: {expected!r} not in {rendered}"
    assert "0.0.0.0" not in rendered.replace("tcp://0.0.0.0:26656", ""), "only P2P may listen everywhere"


def test_every_production_node_is_covered():
    units = {(h, n.unit) for h, p in PRODUCTION.hosts.items() for n in p.nodes}
    assert units == set(EXPECTED)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_every_unit(tmp_path):
    """systemd-analyze verify on each rendered unit (executables stubbed: no client binary exists here)."""
    for plan in [*PRODUCTION.hosts.values(), one_box()]:
        for f in _node_files(plan):
            if not f.path.endswith(".service"):
                continue
            unit = tmp_path / f.path.rsplit("/", 1)[1]
            stub = tmp_path / "bin"
            stub.mkdir(exist_ok=True)
            exe = stub / "client"
            exe.write_text("#!/bin/sh\n")
            exe.chmod(0o755)
            text = f.content
            for line in text.splitlines():
                if line.startswith("ExecStart="):
                    path = line.removeprefix("ExecStart=").split()[0]
                    text = text.replace(path, str(exe))
            # Units name users and unit dependencies that exist only on the host.
            text = text.replace("Requires=docker.service\n", "").replace(f"User={_user(text)}\n", "")
            text = text.replace(f"Group={_user(text, 'Group')}\n", "")
            unit.write_text(text)
            run = subprocess.run(
                ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
            )
            problems = [
                line for line in run.stderr.splitlines()
                if str(unit.name) in line and "Unit configured to use" not in line and "not found" not in line
            ]  # fmt: skip
            assert not problems, f"{plan.name} {unit.name}: {problems}"


def _user(text: str, key: str = "User") -> str:
    return next((line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")), "")


def test_units_are_hardened_and_use_the_planned_limits():
    for node in one_box().nodes:
        unit = next(f.content for f in _node_files(one_box()) if f.path.endswith(f"/{node.unit}.service"))
        if node.runtime == "container":
            assert "@" in unit and "--network host" in unit and "--cap-drop ALL" in unit
            continue
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", f"LimitNOFILE={node.nofile}"):
            assert line in unit, f"{node.unit}: {line}"
        assert f"ReadWritePaths={node.data_dir}" in unit and f"User={node.user}" in unit
        assert f"ExecStart={node.link}/" in unit, "the release is chosen by the current link"


@pytest.mark.parametrize("nodes", ["mainnet", "devnet"])
def test_no_two_services_on_a_host_share_a_port(nodes):
    plan = one_box(nodes)
    claimed = [(proto, port) for p in plan.ports() for proto in p.protocols for port in p.span()]
    assert len(claimed) == len(set(claimed))
    rpc = [n.rpc_url for n in plan.nodes if n.rpc_url]
    assert len(rpc) == len(set(rpc))


def test_devnet_runs_anvil_on_each_chains_planned_rpc_port():
    mainnet, devnet = one_box(), one_box("devnet")
    for chain, spec in load_catalog().chains.items():
        node = next(n for n in devnet.nodes if n.chain == chain)
        service, _, port = spec.stand_in.rpc.partition(".")
        planned = next(p.port for p in mainnet.ports() if p.key == f"{chain}.{service}.{port}")
        assert node.start and f"--port {planned}" in " ".join(node.args)
        if spec.vm == "svm":
            # The Solana simulator runs from the agent's release; production keeps the Agave unit.
            assert node.client == "solana-standin" and node.runtime == "agent"
            assert load_catalog().clients[node.client].simulator
            assert node.executable == f"/opt/mevfleet/{node.unit}/current/venv/bin/solana-standin"
            unit = next(f for f in _node_files(devnet) if f.path.endswith(f"/{node.unit}.service")).content
            assert f"ExecStart={node.executable} \\" in unit and "docker" not in unit
            sol1 = DEVNET.hosts["sol1"]  # its release is a venv, like the agent's beside it
            assert sol1.agent is not None and "python3-venv" in sol1.packages
            assert any(n.client == "agave" for n in mainnet.nodes)
            continue
        assert node.client == "anvil"
        assert f"--chain-id {spec.chain_id}" in node.args and f"--block-time {spec.block_time}" in node.args
        assert node.ipc == f"/run/{node.unit}/node.ipc"
        assert node.artifact.sha256 and node.start


def test_shipped_inventories_validate_and_production_needs_pins():
    assert unpinned_artifacts(DEVNET) == []
    problems = unpinned_artifacts(PRODUCTION)
    fields = {(p.host, p.field) for p in problems}
    assert ("eth1", "artifacts.erigon.3.2.2.sha256") in fields
    assert ("arb1", "artifacts.nitro.v3.9.5-66e42c4.digest") in fields
    assert all("pin it in the inventory" in p.message for p in problems)


def test_an_inventory_pin_makes_an_artifact_deployable(tmp_path):
    local = tmp_path / "erigon.tar.gz"
    local.write_bytes(b"an operator's checked release")
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    text = (
        f"artifacts: {{erigon: {{3.2.2: {{path: {local}, sha256: {digest}}}}}}}\n"
        "hosts: {eth1: {address: 10.0.0.1, chains: [ethereum]}}\n"
    )
    plan = compile_plan(parse_inventory(text, "f.yml"))
    assert [p.field for p in unpinned_artifacts(plan)] == ["artifacts.mev-boost.1.9.0.sha256"]
    erigon = plan.hosts["eth1"].nodes[0].artifact
    assert (erigon.path, erigon.url, erigon.sha256, erigon.pinned_by) == (str(local), None, digest, "inventory")


def test_unknown_version_is_refused_naming_host_and_field():
    text = (
        "fleet: {nodes: devnet}\n"
        "hosts: {a1: {address: 10.0.0.1, chains: [arbitrum], versions: {arbitrum.anvil: 9.9.9}}}"
    )
    with pytest.raises(InventoryError) as err:
        compile_plan(parse_inventory(text, "f.yml"))
    assert "f.yml: host 'a1': versions.arbitrum.anvil: unknown version '9.9.9' of anvil" in str(err.value)


def test_jwt_script_makes_identical_owner_only_copies_and_keeps_them(tmp_path):
    me = getpass.getuser()
    a, b = tmp_path / "a" / "jwt.hex", tmp_path / "b" / "jwt.hex"
    jwt = JwtPlan(chain="optimism", copies=((str(a), me), (str(b), me)), units=("x", "y"))
    subprocess.run(["sh", "-c", jwt_script(jwt)], check=True)
    secret = a.read_text()
    assert len(secret) == 64 and int(secret, 16) >= 0 and b.read_text() == secret
    assert (a.stat().st_mode & 0o777, b.stat().st_mode & 0o777) == (0o600, 0o600)
    b.write_text("0" * 64)  # drift on one side: a tie, the copy listed last wins, nothing is regenerated
    subprocess.run(["sh", "-c", jwt_script(jwt)], check=True)
    assert a.read_text() == b.read_text() == "0" * 64
    a.unlink()  # one side lost: the other's secret is kept
    subprocess.run(["sh", "-c", jwt_script(jwt)], check=True)
    assert a.read_text() == b.read_text() == "0" * 64


def test_the_deploy_predicts_exactly_the_copies_the_jwt_script_rewrites(tmp_path):
    """jwt_restarts judges from the probe's digests what the script decides on the host by comparing the
    files: every mix of missing, empty and differing copies of an execution client and two beacon nodes,
    run for real. And a repair never restarts both beacon nodes while each still holds a secret."""
    me = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    assert group == me, "the prediction takes a copy's group to be its owner's name"
    contents = (None, "", "a" * 64, "b" * 64, "c" * 64)
    for case, mix in enumerate(itertools.product(contents, repeat=3)):
        paths = [tmp_path / str(case) / side / "jwt.hex" for side in ("el", "cl", "cl2")]
        jwt = JwtPlan(chain="ethereum", copies=tuple((str(p), me) for p in paths), units=("el", "cl", "cl2"))
        files: dict[str, FileState | None] = {}
        for path, content in zip(paths, mix, strict=True):
            files[str(path)] = None
            if content is not None:
                path.parent.mkdir(parents=True)
                path.write_text(content)
                path.chmod(0o600)
                files[str(path)] = FileState(
                    mode="0600", owner=me, group=me, sha256=hashlib.sha256(content.encode()).hexdigest()
                )
        predicted = jwt_restarts(jwt, HostState(files=files))
        run = subprocess.run(["sh", "-c", jwt_script(jwt)], check=True, capture_output=True, text=True)
        after = [p.read_text() for p in paths]
        assert len(set(after)) == 1 and len(after[0]) == 64, mix
        rewritten = tuple(u for u, before, now in zip(jwt.units, mix, after, strict=True) if before != now)
        printed = tuple(u for u, p in zip(jwt.units, paths, strict=True) if str(p) in run.stdout.split())
        assert predicted == rewritten == printed, mix
        if mix[1] and mix[2]:
            assert not {"cl", "cl2"} <= set(predicted), mix


def test_install_script_refuses_a_mismatch_before_touching_the_release(tmp_path):
    node = DEVNET.hosts["arb1"].nodes[0]
    root = tmp_path / "opt"
    node = node.model_copy(update={"release_dir": f"{root}/anvil/{node.version}"})
    incoming = root / "anvil" / ".incoming" / f"{node.artifact.sha256}-{node.artifact.filename}"
    incoming.parent.mkdir(parents=True)
    incoming.write_bytes(b"corrupted")
    script = install_script(node, "package/bin/anvil").replace("chown -R root:root", "true")
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert run.returncode == 1
    assert "checksum mismatch for anvil 1.7.1" in run.stderr and "running version is untouched" in run.stderr
    assert not incoming.exists() and not (root / "anvil" / node.version).exists()


def _mev_boost(plan) -> str:
    return flags(plan, "ethereum-mev-boost")


def test_mev_boost_gets_the_checked_relays_and_timeouts_by_default():
    catalog = load_catalog()
    args = _mev_boost(PRODUCTION.hosts["eth1"])
    relays = args.split("-relays ")[1].split()[0].split(",")
    assert relays == [r.url for r in catalog.relays.relays]
    assert {r.name for r in catalog.relays.relays} >= {"flashbots", "ultrasound", "agnostic", "bloxroute-regulated"}
    # The Eden relay no longer operates: it is listed as removed, with the reason, not configured.
    assert [r.name for r in catalog.relays.removed] == ["eden"]
    assert not any("eden" in r for r in relays)
    assert "-request-timeout-getheader 950 -request-timeout-getpayload 4000 -request-timeout-regval 3000" in args


def test_inventory_overrides_relays_and_timeouts():
    relay = "https://0x" + "ab" * 48 + "@relay.internal:18551"
    text = (
        f"fleet: {{mev_boost_relays: ['{relay}'], mev_boost_timeouts: {{getheader_ms: 800, getpayload_ms: 3000,"
        " regval_ms: 2000}}\nhosts: {eth: {chains: [ethereum], address: 10.0.0.5}}"
    )
    args = _mev_boost(compile_plan(parse_inventory(text, "f.yml")).hosts["eth"])
    assert f"-relays {relay} " in args
    assert "-request-timeout-getheader 800 -request-timeout-getpayload 3000 -request-timeout-regval 2000" in args
    none = compile_plan(parse_inventory("fleet: {mev_boost_relays: []}\nhosts: {eth: {chains: [ethereum]}}", "f.yml"))
    assert "-relays" not in _mev_boost(none.hosts["eth"])


@pytest.mark.parametrize(
    ("fleet", "field"),
    [
        # No BLS public key: mev-boost could not verify the relay's bids.
        ("{mev_boost_relays: ['https://relay.example']}", "fleet.mev_boost_relays.0"),
        # A getHeader timeout as long as the slot would miss the slot.
        (
            "{mev_boost_timeouts: {getheader_ms: 12000, getpayload_ms: 4000, regval_ms: 3000}}",
            "fleet.mev_boost_timeouts.getheader_ms",
        ),
    ],
)
def test_bad_relay_settings_are_refused_naming_the_field(fleet, field):
    with pytest.raises(InventoryError) as exc:
        parse_inventory(f"fleet: {fleet}\nhosts: {{eth: {{chains: [ethereum]}}}}", "f.yml")
    assert field in str(exc.value)


def test_base_hosts_get_the_flashblocks_stream_and_the_inventory_can_change_it():
    assert PRODUCTION.hosts["base1"].flashblocks_ws == {"base": "wss://mainnet.flashblocks.base.org/ws"}
    assert PRODUCTION.hosts["eth1"].flashblocks_ws == {}
    text = "fleet: {{flashblocks_ws: {{base: {url}}}}}\nhosts: {{b: {{chains: [base, optimism]}}}}"
    private = compile_plan(parse_inventory(text.format(url="wss://fb.internal/ws"), "f.yml")).hosts["b"]
    assert private.flashblocks_ws == {"base": "wss://fb.internal/ws"}
    off = compile_plan(parse_inventory(text.format(url="null"), "f.yml")).hosts["b"]
    assert off.flashblocks_ws == {}
    for bad, field in (("{solan: wss://x/ws}", "fleet.flashblocks_ws.solan"), ("{base: https://x}", "base")):
        with pytest.raises(InventoryError) as exc:
            parse_inventory(f"fleet: {{flashblocks_ws: {bad}}}\nhosts: {{b: {{chains: [base]}}}}", "f.yml")
        assert field in str(exc.value)


def test_nodes_render_from_the_catalog_the_plan_read_not_the_packages():
    """node_files and `mevfleet status` read the plan only: a catalog handed to compile_plan decides each
    node's unit template, config files and simulator flag (they used to be looked up in the package's)."""
    catalog = load_catalog()
    client = next(n.client for n in one_box().nodes if n.chain == "avalanche")
    spec = catalog.clients[client]
    changed = spec.model_copy(
        update={
            "config_files": {**spec.config_files, "extra/config.json": "avalanche-c-chain.json.j2"},
            "unit_template": "container.service.j2",
            "simulator": True,
        }
    )
    text = "fleet: {nodes: mainnet}\nhosts: {a: {chains: [avalanche], address: 10.0.0.6}}"
    ours = catalog.model_copy(update={"clients": {**catalog.clients, client: changed}})
    plan = compile_plan(parse_inventory(text, "f.yml"), ours).hosts["a"]
    node = plan.nodes[0]
    assert node.simulator and node.unit_template == "nodes/container.service.j2"
    files = {f.path: f.content for f in _node_files(plan)}
    assert set(files) == {
        f"/etc/systemd/system/{node.unit}.service",
        f"{node.config_dir}/chains/C/config.json",
        f"{node.config_dir}/extra/config.json",
    }
    assert "docker" in files[f"/etc/systemd/system/{node.unit}.service"]
    stock = compile_plan(parse_inventory(text, "f.yml")).hosts["a"].nodes[0]
    assert not stock.simulator and stock.unit_template == "nodes/binary.service.j2"
