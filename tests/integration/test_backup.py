"""Backup and restore drill on a real test host: a node host deployed by the real engine, its agent with a
daily-loss ledger and the emergency stop engaged, backed up with `mevfleet backup` (KMS envelope keys) to
S3 served by a local moto server; the host's container is destroyed and recreated, deployed again (fresh
secrets), and `mevfleet restore` brings back the same files, secrets and agent state; the agent comes
back with the same ledger and stop, and `mevfleet verify` passes on the restored host.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import boto3
import docker
import docker.errors
import pytest
from click.testing import CliRunner

from mevfleet import REPO_ROOT
from mevfleet.cli import main
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.model import SshPlan
from mevfleet.nodes.ops import run
from mevfleet.plan import compile_plan
from mevfleet.sshclient import connect
from testbed.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("backup")]

NETWORK = "mevfleet-backup"
SUBNET = "172.30.117.0/24"
HOST = "bk-eth1"
BUCKET = "mevfleet-backup-it"
DUMMY_SECRET = "mevfleet-it-dummy-secret-access-key-987654"
# Everything the drill compares: the agent's config, token, keys and state, and mevfleet's own files.
MEVFLEET = str(Path(sys.executable).with_name("mevfleet"))
COMPARED = ("/etc/mevagent", "/var/lib/mevagent", "/etc/mevfleet")


@pytest.fixture(scope="module")
def aws_env():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAMEVFLEETINTEGRAT",
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("backup")
    path = isolated_devnet("bk", NETWORK, SUBNET, state_dir, hosts=[HOST])
    with hosts_up(path, NETWORK, SUBNET, state_dir) as harness:
        _deploy(path)
        yield path, harness, TestHost(HOST, load_inventory(path).hosts[HOST].address)


def _deploy(path: Path) -> None:
    inventory = load_inventory(path)
    result = run_deploy(compile_plan(inventory), inventory, out=lambda _: None)
    assert not result.failed, {n: h.error for n, h in result.hosts.items() if h.error}


@functools.cache
def _ssh(path: Path) -> SshPlan:
    """The host's SSH connection as its plan says (planned once: the plan compiles in seconds)."""
    return compile_plan(load_inventory(path)).hosts[HOST].ssh


def _sh(path: Path, command: str, check: bool = True) -> str:
    client = connect(_ssh(path))
    try:
        rc, out = run(client, command, timeout=120)
    finally:
        client.close()
    assert rc == 0 or not check, f"{command}: exit {rc}: {out}"
    return out


def _snapshot(path: Path) -> dict[str, str]:
    """path -> 'mode owner group sha256' for every file and directory of COMPARED."""
    paths = " ".join(COMPARED)
    out = _sh(path, f"find {paths} -exec stat -c '%n %a %U %G %F' {{}} + ; find {paths} -type f -exec sha256sum {{}} +")
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].startswith("/"):
            found[parts[0]] = " ".join(parts[1:4])
        elif len(parts) == 2:
            found[parts[1]] = found.get(parts[1], "") + " " + parts[0]
    return found


def _risk(path: Path) -> dict:
    return json.loads(_sh(path, "curl -sf http://127.0.0.1:8780/exposure/current"))


def _wait_agent(path: Path) -> dict:
    deadline = time.monotonic() + 60
    while True:
        try:
            return _risk(path)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert DUMMY_SECRET not in result.output
    assert result.exit_code == 0, result.output
    return result.output


def test_destroy_recreate_deploy_restore(fleet, aws_env, tmp_path):
    path, harness, host = fleet
    today = dt.datetime.now(dt.UTC).date().isoformat()
    ledger = {"day": today, "daily": {"ethereum": -123.45}, "equity": -123.45, "peak": 0.0}
    # The agent's durable state as trading leaves it: today's loss in the ledger, then the emergency stop
    # engaged through the API (with the host's token); and an owner key the operator installed.
    _sh(path, "systemctl stop mevagent")
    _sh(
        path,
        f"install -o mevagent -g mevagent -m 0600 /dev/null /var/lib/mevagent/ledger.json && "
        f"printf %s {shlex.quote(json.dumps(ledger))} > /var/lib/mevagent/ledger.json && "
        "install -o mevagent -g mevagent -m 0600 /dev/null /etc/mevagent/keys/ethereum.key && "
        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' | sed 's/^/0x/' > /etc/mevagent/keys/ethereum.key",
    )
    _sh(path, "systemctl start mevagent")
    _wait_agent(path)
    _sh(path, 'curl -sf -X POST -H "Authorization: Bearer $(cat /etc/mevagent/api.token)" '
              "-H 'Content-Type: application/json' -d '{\"reason\": \"restore drill\"}' "
              "http://127.0.0.1:8780/emergency/stop")  # fmt: skip
    before_risk = _risk(path)
    assert before_risk["daily_pnl_usd"]["ethereum"] == -123.45
    assert before_risk["emergency_stop"]["engaged"] and before_risk["emergency_stop"]["reason"] == "restore drill"
    before = _snapshot(path)
    token = _sh(path, "cat /etc/mevagent/api.token")

    kms = boto3.client("kms").create_key(Description="mevfleet backups")["KeyMetadata"]["KeyId"]
    common = ["-i", str(path), "--bucket", BUCKET]
    first = _cli("backup", *common, "--kms-key", kms)
    second = _cli("backup", *common, "--kms-key", kms)
    assert "uploaded 0 objects (0.00 MB)" in second, second
    assert "uploaded 0 objects" not in first, first
    # The last good backup's time reaches Prometheus through node_exporter's textfile collector.
    address = load_inventory(path).hosts[HOST].address
    metrics = _sh(path, f"curl -sf http://{address}:9100/metrics")
    assert "mevfleet_backup_last_success_timestamp_seconds " in metrics, metrics[-2000:]

    # Destroy the host and make it again from the image: nothing of the old one survives.
    docker.from_env().containers.get(f"mevfleet-{HOST}").remove(force=True, v=True)
    harness.up([host])
    # The operator's own command, in a process of its own: pyinfra keeps the host keys it loaded for the
    # life of a process, and the recreated host has new ones (the harness trusted them through Docker).
    deploy = subprocess.run([MEVFLEET, "deploy", "-i", str(path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-2000:]
    assert _sh(path, "cat /etc/mevagent/api.token") != token  # a fresh host made its own token
    assert _sh(path, "test -e /etc/mevagent/keys/ethereum.key", check=False) == ""

    restored = _cli("restore", *common)
    assert "restarted mevagent.service" in restored or "restored" in restored, restored
    after = _snapshot(path)
    assert {p: after.get(p) for p in before} == before
    after_risk = _wait_agent(path)
    assert after_risk["daily_pnl_usd"]["ethereum"] == -123.45
    assert after_risk["day"] == today
    assert after_risk["emergency_stop"] == before_risk["emergency_stop"]

    verify = subprocess.run(
        [MEVFLEET, "verify", "-i", str(path), "-q", "-x"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout[-4000:] + verify.stderr[-2000:]
    for text in (first, second, restored, verify.stdout, verify.stderr):
        assert token.strip() not in text and DUMMY_SECRET not in text
