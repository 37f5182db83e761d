"""The devnet's real Ethereum pair on one test host of its own: EthereumJS (execution) + two peered
Lodestar 1.5.1 beacon nodes + one validator client using both, built from the npm registry on this
machine and installed by `mevfleet deploy`.

In order: blocks produced and `mevfleet status` showing the pair's head, lag, peers and finality as real
clients; the Engine API refuses a call without the JWT, refuses a token made with another secret and
accepts the right one, on loopback only; a transaction sent to the execution client is included and
then finalized (4 s slots, 8 per epoch: the minimal preset); verify passes and a second deploy changes
nothing; the first beacon node killed with SIGKILL shows as down in `status`, systemd restarts it, the
chain keeps moving through the second node meanwhile, the restarted node range-syncs from it, passes its
old head and sees finality move on, and `status` is healthy again (bounded: 3 + 3 + 1 minutes); then
a restart of the execution client leaves the beacon nodes and the validator running and blocks follow;
a wrong JWT on one side fails `mevfleet verify` naming that copy, and `mevfleet deploy` repairs it,
restarting that beacon node alone, and blocks follow; last (it builds a second EthereumJS bundle),
`mevfleet upgrade` to the other pinned EthereumJS release and `mevfleet rollback`,
each gated on both beacon nodes, the execution client's chain kept across each switch.

The first run on a machine builds the two npm bundles (minutes; cached in ~/.cache/mevfleet/npm after).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest
from eth_account import Account

from mevfleet import REPO_ROOT
from mevfleet.catalog import load_catalog
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

# 1800 s, not the suite's 900: on a fresh machine the module's first deploy also builds both npm bundles
# (native addons; 843 s with the rest of the suite beside it on 2 cores), and that counts to the first test.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("eth_pair"), pytest.mark.timeout(1800)]

NETWORK = "mevfleet-ethpair"
SUBNET = "172.30.141.0/24"
HOST = "ep-eth1"
EL, CL, VC = "ethereum-ethereumjs", "ethereum-lodestar", "ethereum-lodestar-validator"
CL2 = "ethereum-lodestar2"
# The genesis funds the well-known test mnemonic's accounts (anvil's): devnet keys, public by design.
TEST_MNEMONIC = "test test test test test test test test test test test junk"


def mevfleet(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    # The installed command, as an operator runs it.
    command = str(Path(sys.executable).with_name("mevfleet"))
    return subprocess.run([command, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


def wait_for(what: str, timeout: float, probe: Callable[[], object]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("ethpair")
    # eth1 alone: no monitoring host, no other chain
    path = isolated_devnet("ep", NETWORK, SUBNET, state_dir, real_clients=True, hosts=[HOST])
    with hosts_up(path, NETWORK, SUBNET, state_dir):
        container = docker.from_env().containers.get(TestHost(HOST, "").container_name)
        plan = compile_plan(load_inventory(path)).hosts[HOST]
        started = time.monotonic()
        run = mevfleet("deploy", "-i", str(path))
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        print(f"\nfirst deploy of the pair (bundles cached or built): {time.monotonic() - started:.1f} s")
        yield path, container, plan


def sh(container, command: str) -> str:
    result = container.exec_run(["sh", "-c", command])
    return result.output.decode(errors="replace")


def rpc(container, url: str, method: str, params: list, token: str | None = None) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    auth = f"-H 'Authorization: Bearer {token}' " if token else ""
    out = sh(container, f"curl -s -m 5 -H 'Content-Type: application/json' {auth}--data '{body}' {url}")
    try:
        return json.loads(out)
    except ValueError:
        return {"raw": out}


def answer(container, url: str, method: str, params: list | None = None, timeout: float = 30) -> object:
    """The `result` of a JSON-RPC call, asked again while the client does not answer in time (curl's 5 s on a
    loaded machine) or answers without one; fails naming the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        reply = rpc(container, url, method, params or [])
        if "result" in reply:
            return reply["result"]
        if time.monotonic() > deadline:
            raise AssertionError(f"{method}: no result within {timeout:.0f} s, last answer {reply}")
        time.sleep(1)


def beacon(container, url: str, path: str) -> dict:
    try:
        return json.loads(sh(container, f"curl -s -m 5 {url}{path}")).get("data") or {}
    except ValueError:
        return {}


def jwt_token(secret_hex: str) -> str:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    message = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'iat': int(time.time())})}"
    mac = hmac.new(bytes.fromhex(secret_hex.strip()), message.encode(), hashlib.sha256).digest()
    return f"{message}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def nodes(plan):
    return {n.unit: n for n in plan.nodes}


def engine_url(plan) -> str:
    port = next(p.port for s in plan.services if s.unit == EL for p in s.ports if p.name == "authrpc")
    return f"http://127.0.0.1:{port}"


def head_slot(container, plan) -> int:
    return int(beacon(container, nodes(plan)[CL].beacon_url, "/eth/v1/node/syncing").get("head_slot", -1))


def finalized_epoch(container, url: str) -> int:
    finalized = beacon(container, url, "/eth/v1/beacon/states/head/finality_checkpoints").get("finalized") or {}
    return int(finalized.get("epoch", -1))


def el_head(container, plan) -> int:
    answer = rpc(container, nodes(plan)[EL].rpc_url, "eth_blockNumber", [])
    return int(answer.get("result", "0x0"), 16) if isinstance(answer.get("result"), str) else -1


def status_rows(path) -> tuple[int, dict[str, list[str]]]:
    run = mevfleet("status", "-i", str(path), timeout=120)
    return run.returncode, {line.split()[2]: line.split() for line in run.stdout.splitlines()[1:] if HOST in line}


def test_1_pair_produces_blocks_and_status_shows_it(pair):
    path, container, plan = pair
    el = nodes(plan)[EL]
    wait_for("the beacon node's head past slot 4", 120, lambda: head_slot(container, plan) > 4)
    block = wait_for(
        "execution blocks from the beacon node's payloads",
        60,
        lambda: int(rpc(container, el.rpc_url, "eth_blockNumber", []).get("result", "0x0"), 16) > 2,
    )
    assert block
    assert answer(container, el.rpc_url, "eth_chainId") == hex(el.chain_id)
    assert answer(container, el.rpc_url, "eth_syncing") is False
    code, rows = status_rows(path)
    assert code == 0, rows
    # HOST CHAIN UNIT STATE HEAD LAG PEERS FINAL KIND VERSION
    assert rows[EL][3] == "active" and rows[EL][4].isdigit() and rows[EL][8] == "real", rows[EL]
    assert rows[CL][3] == "active" and rows[CL][4].startswith("s") and rows[CL][5] == "0", rows[CL]
    assert rows[CL][7].isdigit() and rows[CL][8] == "real" and rows[CL][9] == "1.5.1", rows[CL]
    assert rows[VC][3] == "active" and rows[VC][8] == "real", rows[VC]
    # The two beacon nodes, peered with each other.
    assert rows[CL2][3] == "active" and rows[CL2][4].startswith("s") and rows[CL2][8] == "real", rows[CL2]
    assert rows[CL][6] == rows[CL2][6] == "1", (rows[CL], rows[CL2])


def test_2_engine_api_requires_the_jwt(pair):
    _, container, plan = pair
    url = engine_url(plan)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    without = sh(container, f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' -H 'Content-Type: application/json' "
                            f"--data '{body}' {url}")  # fmt: skip
    assert without == "401", f"Engine API without a JWT answered {without}"
    secret = sh(container, f"cat {nodes(plan)[CL].jwt}")
    wrong = jwt_token(hashlib.sha256(secret.encode()).hexdigest())
    assert "result" not in rpc(container, url, "eth_chainId", [], wrong), "a token made with another secret"
    answer = rpc(container, url, "eth_chainId", [], jwt_token(secret))
    assert answer.get("result") == "0x1", answer
    listening = sh(container, "ss -Htln")
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]} " in listening, "the Engine API listens on loopback only"


def test_3_transaction_included_then_finalized(pair):
    _, container, plan = pair
    el = nodes(plan)[EL]
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(TEST_MNEMONIC)
    nonce = int(answer(container, el.rpc_url, "eth_getTransactionCount", [account.address, "latest"]), 16)  # type: ignore[arg-type]
    tx = account.sign_transaction(
        {
            "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "value": 10**15,
            "gas": 21000,
            "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": nonce,
            "chainId": 1,
            "type": 2,
        }
    )
    sent = rpc(container, el.rpc_url, "eth_sendRawTransaction", ["0x" + tx.raw_transaction.hex().removeprefix("0x")])
    assert "result" in sent, sent
    receipt = wait_for(
        "the transaction in a block",
        60,
        lambda: rpc(container, el.rpc_url, "eth_getTransactionReceipt", [sent["result"]]).get("result"),
    )
    assert receipt["status"] == "0x1", receipt
    included = int(receipt["blockNumber"], 16)

    def finalized_block() -> int | None:
        raw = sh(container, f"curl -s -m 5 {nodes(plan)[CL].beacon_url}/eth/v2/beacon/blocks/finalized")
        try:
            payload = json.loads(raw)["data"]["message"]["body"]["execution_payload"]
        except (ValueError, KeyError, TypeError):
            return None
        number = int(payload["block_number"])
        return number if number >= included else None

    # 4 s slots, 8 per epoch: finality two to three epochs after the one that included it (~1.5 min).
    finalized = wait_for(f"block {included} finalized", 240, finalized_block)
    assert finalized >= included

    # The execution client follows the beacon node's forkchoice: it reports the finalized block too, once
    # the beacon node's next forkchoiceUpdated has told it (the next slot), not at the same instant.
    def el_finalized() -> int | None:
        answer = rpc(container, el.rpc_url, "eth_getBlockByNumber", ["finalized", False])
        number = int((answer.get("result") or {}).get("number", "0x0"), 16)
        return number if number >= included else None

    assert wait_for(f"the execution client's finalized tag at or past {included}", 30, el_finalized) >= included


def test_4_verify_passes_and_redeploy_changes_nothing(pair):
    path, _, _ = pair
    run = mevfleet("verify", "-i", str(path), "-q", "-p", "no:randomly", "-rs", timeout=600)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    again = mevfleet("deploy", "-i", str(path))
    assert again.returncode == 0 and " 0 changed" in again.stdout, again.stdout[-3000:]


def test_5_killed_beacon_is_restarted_by_systemd_range_syncs_from_the_second_and_the_chain_moves(pair):
    path, container, plan = pair
    first, second = nodes(plan)[CL], nodes(plan)[CL2]
    before = beacon(container, first.beacon_url, "/eth/v1/node/syncing")
    assert before.get("is_syncing") is False, before
    final_before = finalized_epoch(container, first.beacon_url)
    block_before = el_head(container, plan)
    killed = time.monotonic()
    sh(container, f"systemctl kill --signal=SIGKILL {CL}.service")
    # systemd starts it again within a second, but its beacon API answers only once Lodestar is up.
    _, rows = wait_for(
        "status reporting the beacon node down",
        20,
        lambda: (lambda r: r if r[0] == 1 and r[1][CL][4] == "-" else None)(status_rows(path)),
    )
    assert rows[EL][3] == "active" and rows[CL2][3] == "active", "the execution client and the second node stay"
    wait_for(
        "systemd restarting the beacon node",
        60,
        lambda: sh(container, f"systemctl is-active {CL}.service").strip() == "active",
    )
    assert int(sh(container, f"systemctl show -p NRestarts --value {CL}.service")) >= 1
    # Meanwhile the validator client proposes through the second beacon node: the chain keeps moving.
    wait_for("execution blocks while the first node restarts", 60, lambda: el_head(container, plan) > block_before)

    # Restarted from its last archived state, the node range-syncs from the second and is synced again,
    # past the head it had when it was killed, with a peer.
    def synced() -> dict | None:
        state = beacon(container, first.beacon_url, "/eth/v1/node/syncing")
        head = int(state.get("head_slot", -1))
        return state if state.get("is_syncing") is False and head > int(before["head_slot"]) else None

    wait_for("the restarted beacon node synced past its old head", 180, synced)
    resynced = time.monotonic() - killed
    # Finality moves on (the validators kept attesting through the second node) and both nodes agree.
    wait_for(
        f"finality past epoch {final_before} on the restarted node",
        180,
        lambda: finalized_epoch(container, first.beacon_url) > final_before,
    )
    print(f"\nkilled beacon node synced again {resynced:.0f} s after SIGKILL; finality past epoch {final_before} "
          f"{time.monotonic() - killed:.0f} s after")  # fmt: skip
    # Healthy and with its peer back: status says healthy once synced, while the peer can take a while longer
    # to be counted on a loaded machine (with a bench beside it: 0 peers at the first healthy status, and 60 s later).
    _, rows = wait_for(
        "status healthy again, with its peer",
        120,
        lambda: (lambda r: r if r[0] == 0 and r[1][CL][6] == "1" else None)(status_rows(path)),
    )
    assert rows[CL][3] == "active" and rows[CL][4].startswith("s"), rows[CL]
    assert "syncing" not in " ".join(rows[CL]), rows[CL]
    assert finalized_epoch(container, second.beacon_url) > final_before
    # When the two lost each other (Lodestar 1.5.1 can ban its one peer after this restart), the peer guard
    # restarted the one left behind: shown, so a run says which way it went.
    guarded = sh(container, f"journalctl -u {CL} -u {CL2} --no-pager -o cat | grep 'peer guard:' || true").strip()
    print(f"\n{guarded}" if guarded else "\nthe pair kept its peering (no peer guard restart)")


def test_6_execution_client_restart_leaves_the_beacon_nodes_running_and_the_chain_moves_on(pair):
    # As an upgrade of EthereumJS does. The beacon and validator units only Want= the unit before them: under
    # Requires= this restarted both beacon nodes too, which came back behind the clock with no synced peer
    # and the chain stalled for good (docs/nodes.md).
    _, container, plan = pair

    def invocations() -> dict[str, str]:
        return {u: sh(container, f"systemctl show -p InvocationID --value {u}.service").strip() for u in (CL, CL2, VC)}

    before = invocations()
    block_before = el_head(container, plan)
    restarted = time.monotonic()
    sh(container, f"systemctl restart {EL}.service")
    assert invocations() == before, "the beacon nodes and the validator were restarted with the execution client"
    wait_for("execution blocks after its restart", 60, lambda: el_head(container, plan) > block_before + 1)
    print(f"\nexecution client restarted: block {block_before + 2} {time.monotonic() - restarted:.0f} s after")
    for unit in (CL, CL2):
        state = beacon(container, nodes(plan)[unit].beacon_url, "/eth/v1/node/syncing")
        assert state.get("is_syncing") is False, (unit, state)


def test_7_wrong_jwt_on_one_side_is_named_by_verify_and_repaired(pair):
    # Last: the repair restarts the beacon node whose copy it rewrote, alone; the chain moves on through the
    # second node meanwhile (docs/nodes.md).
    path, container, plan = pair
    cl_jwt = nodes(plan)[CL].jwt
    sh(container, f"od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > {cl_jwt}")
    run = mevfleet("verify", "-i", str(path), "-q", "-p", "no:randomly", "-k", "jwt", timeout=300)
    assert run.returncode != 0, run.stdout[-3000:]
    assert f"JWT differs from {nodes(plan)[EL].jwt} (ethereumjs) in {cl_jwt} (lodestar)" in run.stdout, run.stdout[
        -3000:
    ]
    fixed = mevfleet("deploy", "-i", str(path))
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert "ethereum JWT secret (identical on both sides, 0600) ... changed" in fixed.stdout, fixed.stdout[-3000:]
    same = sh(container, f"sha256sum {nodes(plan)[EL].jwt} {cl_jwt} | cut -d' ' -f1 | sort -u | wc -l")
    assert same.strip() == "1", "the secret the other two copies share was copied over the wrong one"
    assert fixed.stdout.count("running ... changed") == 1 and f"{CL} running ... changed" in fixed.stdout, fixed.stdout[
        -3000:
    ]
    block = el_head(container, plan)
    wait_for("execution blocks after the repair", 60, lambda: el_head(container, plan) > block + 1)


EJS = load_catalog().clients["ethereumjs"]
OTHER_EJS = next(v for v in EJS.versions if v != EJS.version)


def switch(path, container, plan, verb: str, version: str) -> str:
    """`mevfleet <verb>` of the Ethereum chain on the running pair, then the checks an operator would make:
    EthereumJS answers as `version`, kept its chain (its head did not go back, a block read before is
    there with the same hash, and new blocks follow), the beacon nodes and the validator ran on untouched
    and are synced."""
    el = nodes(plan)[EL]

    def invocations() -> dict[str, str]:
        return {u: sh(container, f"systemctl show -p InvocationID --value {u}.service").strip() for u in (CL, CL2, VC)}

    before, block = invocations(), el_head(container, plan)
    # Two blocks below the head: one no late block of the next slot can reorganise away meanwhile.
    settled = hex(max(block - 2, 0))
    kept = answer(container, el.rpc_url, "eth_getBlockByNumber", [settled, False])["hash"]  # type: ignore[index]
    started = time.monotonic()
    args = (
        ("upgrade", "-i", str(path), "ethereum", "--to", version)
        if verb == "upgrade"
        else (verb, "-i", str(path), "ethereum")
    )
    run = mevfleet(*args, "--timeout", "180")
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # The gate was run on the two beacon nodes too (health 200, not syncing, head slot advancing).
    gated = re.search(rf"healthy on {re.escape(version)} \((.*) s: deploy (.*) s, health gate on the node and 2 "
                      r"beacon node\(s\) (.*) s\)", run.stdout)  # fmt: skip
    assert gated, run.stdout[-3000:]
    assert sh(container, f"readlink {el.link}").strip().endswith(f"/{version}")
    assert answer(container, el.rpc_url, "web3_clientVersion").startswith(f"EthereumJS/{version}/")  # type: ignore[union-attr]
    after = el_head(container, plan)
    same = answer(container, el.rpc_url, "eth_getBlockByNumber", [settled, False])
    assert after >= block and same and same["hash"] == kept, (block, after, same)  # type: ignore[index]
    wait_for(f"blocks past {after} on {version}", 60, lambda: el_head(container, plan) > after + 1)
    assert invocations() == before, "only the execution client is restarted by its upgrade"
    for unit in (CL, CL2):
        state = beacon(container, nodes(plan)[unit].beacon_url, "/eth/v1/node/syncing")
        assert state.get("is_syncing") is False, (unit, state)
    code, rows = status_rows(path)
    assert code == 0 and rows[EL][-1] == version, rows[EL]
    return (f"{verb} to {version}: {wall:.1f} s wall ({gated[1]} s host step: deploy {gated[2]} s, gate {gated[3]} s); "
            f"block {block} before, {after} at the gate, {el_head(container, plan)} now")  # fmt: skip


# Measured here (2 cores, load 4-8): the test takes 111 s with the second bundle to build (44 s of it, inside
# the upgrade's deploy) and 49-64 s with it cached. It runs in the suite: the one real client switch there is.
def test_8_upgrade_to_the_other_ethereumjs_release_and_rollback_gated_on_the_beacon_nodes(pair):
    path, container, plan = pair
    wait_for("execution blocks", 120, lambda: el_head(container, plan) > 2)
    up = switch(path, container, plan, "upgrade", OTHER_EJS)
    assert sh(container, f"readlink {nodes(plan)[EL].previous_link}").strip().endswith(f"/{EJS.version}")
    back = switch(path, container, plan, "rollback", EJS.version)
    print(f"\n{up}\n{back}")
