"""Backup figures: one node host and the control (monitoring) host, Docker test hosts deployed by the real
engine, backed up with `mevfleet backup`'s code to S3 served by a local moto server: first and second run
(time, bytes uploaded), then the restore (time, bytes downloaded); beside each, the naive baseline measured
in the same run: one `tar czf` of the same paths over SSH (plus, on the control host, a whole `pg_dump`),
uploaded whole every time.

Node host: its agent state is what the devnet gives it (no pool factories, so no pool checkpoint) plus a
synthetic 4 MB pool checkpoint, standing in for a chain whose pools the agent tracks.
Control host: `prometheus_admin_api: true` (so the backup takes a TSDB snapshot of the Prometheus that has
been scraping the two hosts), and the control plane's `mevfleet` database with a synthetic history of
100,000 executions (PostgreSQL from Debian, installed on the host when the deploy did not plan it).

    .venv/bin/python bench/backup.py        (about 5 minutes; Docker engine required, holds the test
                                             hosts' lock /tmp/mevfleet-docker.lock while it runs)
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testbed/

import boto3
import yaml
from moto.server import ThreadedMotoServer

from mevfleet.cloud.aws import Aws
from mevfleet.cloud.backup import (
    BackupReport,
    BackupSettings,
    KmsWrap,
    RestoreReport,
    Store,
    Unwrap,
    backup_host,
    host_items,
    restore_host,
)
from mevfleet.cloud.transport import SshTransport
from mevfleet.devnet import Harness, TestHost
from mevfleet.devnet.fleet import isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.nodes.ops import run
from mevfleet.plan import compile_plan
from mevfleet.sshclient import connect
from testbed.services import free_port

NETWORK = "mevfleet-backup-bench"
SUBNET = "172.30.119.0/24"
NODE, CONTROL = "bkb-eth1", "bkb-mon1"
BUCKET = "mevfleet-backup-bench"
# On the control host: the control plane's database with a history (PostgreSQL installed if not planned).
CONTROL_DB = """set -e
command -v pg_dump >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
systemctl start postgresql
runuser -u postgres -- psql -XAtc "SELECT 1 FROM pg_database WHERE datname = 'mevfleet'" | grep -q 1 ||
  runuser -u postgres -- createdb mevfleet
runuser -u postgres -- psql -Xq -d mevfleet -c "CREATE TABLE bench_executions AS
  SELECT g AS id, now() - g * interval '1 second' AS at, md5(g::text) AS tx, (random() * 100)::numeric(12,4) AS usd
  FROM generate_series(1, 100000) g"
"""


def _sh(host, command: str, timeout: float = 900) -> str:
    client = connect(host.ssh)
    try:
        rc, out = run(client, command, timeout=timeout)
    finally:
        client.close()
    if rc != 0:
        sys.exit(f"{host.name}: {command.splitlines()[0]}...: exit {rc}: {out[-2000:]}")
    return out


def _naive(host, paths: list[str], s3, key: str, dump: bool) -> tuple[float, int]:
    """tar czf of the same paths over SSH (and a whole pg_dump), uploaded whole: a cron + `aws s3 cp` backup."""
    started = time.monotonic()
    client = connect(host.ssh)
    try:
        _, stdout, _ = client.exec_command(f"tar czf - --ignore-failed-read {' '.join(paths)} 2>/dev/null")
        data = stdout.read()
        if dump:
            _, stdout, _ = client.exec_command("runuser -u postgres -- pg_dump -Fc -d mevfleet")
            data += stdout.read()
    finally:
        client.close()
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return time.monotonic() - started, len(data)


def _measure(store, wrap, aws, inventory, fleet, name: str, s3) -> dict:
    plan = fleet.hosts[name]
    transport = SshTransport(plan)
    first: BackupReport = backup_host(store, wrap, plan, transport)
    second: BackupReport = backup_host(store, wrap, plan, transport)
    restored: RestoreReport = restore_host(store, Unwrap(aws), plan, transport)
    paths = [i["path"] for i in host_items(plan)]
    if name == CONTROL:
        paths.append("/var/lib/prometheus/metrics2")
    dump = name == CONTROL
    naive1 = _naive(plan, paths, s3, f"naive/{name}/1.tar.gz", dump)
    naive2 = _naive(plan, paths, s3, f"naive/{name}/2.tar.gz", dump)
    return {"first": first, "second": second, "restored": restored, "naive1": naive1, "naive2": naive2}


def _print(name: str, what: str, m: dict) -> None:
    def row(label: str, seconds: float, nbytes: int) -> str:
        return f"  {label:44} {seconds:7.2f} s  {nbytes / 1e6:9.3f} MB"

    first, second, restored = m["first"], m["second"], m["restored"]
    print(f"backup of {name} ({first.files} files; {what}) to S3 (moto, loopback)")
    if first.skipped:
        print("  skipped: " + "; ".join(f"{s['source']}: {s['reason']}" for s in first.skipped))
    print(row("mevfleet backup, first run", first.seconds, first.uploaded_bytes))
    print(row("mevfleet backup, second run (unchanged)", second.seconds, second.uploaded_bytes))
    print(row("baseline tar.gz over SSH, first run", *m["naive1"]))
    print(row("baseline tar.gz over SSH, second run", *m["naive2"]))
    print(row("mevfleet restore (checksums, decrypt, write)", restored.seconds, restored.downloaded_bytes))
    naive2 = m["naive2"]
    ratio = second.uploaded_bytes / naive2[1] if naive2[1] else 0.0
    print(f"  second run uploads {ratio:.3f}x the baseline's bytes ({second.uploaded_objects} objects); "
          f"time {second.seconds / naive2[0]:.2f}x the baseline's")  # fmt: skip


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log: not part of the figures
    lock = open("/tmp/mevfleet-docker.lock", "w")  # noqa: SIM115 - held for the whole run
    fcntl.flock(lock, fcntl.LOCK_EX)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"AWS_ACCESS_KEY_ID": "AKIAMEVFLEETBENCH000", "AWS_SECRET_ACCESS_KEY": "bench-dummy-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})  # fmt: skip
    state_dir = Path(tempfile.mkdtemp(prefix="mevfleet-backup-bench-"))
    path = isolated_devnet("bkb", NETWORK, SUBNET, state_dir)
    doc = yaml.safe_load(path.read_text())
    doc["hosts"] = {n: s for n, s in doc["hosts"].items() if n in (NODE, CONTROL)}
    doc["fleet"].setdefault("monitoring", {})["prometheus_admin_api"] = True
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state_dir)
    harness.down()
    results = {}
    try:
        harness.up([TestHost(n, doc["hosts"][n]["address"]) for n in (CONTROL, NODE)])
        inventory = load_inventory(path)
        fleet = compile_plan(inventory)
        result = run_deploy(fleet, inventory, out=lambda _: None)
        if result.failed:
            sys.exit(f"deploy failed: {result.failed}")
        _sh(
            fleet.hosts[NODE],
            "head -c 3000000 /dev/urandom | base64 -w0 > /var/lib/mevagent/pools-ethereum.json && "
            "chown mevagent: /var/lib/mevagent/pools-ethereum.json && chmod 600 /var/lib/mevagent/pools-ethereum.json",
        )
        _sh(fleet.hosts[CONTROL], CONTROL_DB)
        time.sleep(30)  # Prometheus scrapes both hosts for a while: its TSDB has something to snapshot

        aws = Aws()
        kms = boto3.client("kms").create_key(Description="bench")["KeyMetadata"]["KeyId"]
        store = Store(aws, BackupSettings(bucket=BUCKET, fleet=inventory.fleet.name))
        store.ensure_bucket()
        wrap = KmsWrap(aws, kms, inventory.fleet.name)
        s3 = boto3.client("s3")
        for name in (NODE, CONTROL):
            results[name] = _measure(store, wrap, aws, inventory, fleet, name, s3)
    finally:
        harness.down()
        server.stop()
    _print(NODE, "agent state + config + secrets", results[NODE])
    _print(CONTROL, "config + secrets + pg_dump of 100,000 executions + Prometheus TSDB snapshot", results[CONTROL])


if __name__ == "__main__":
    main()
