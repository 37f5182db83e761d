"""`mevfleet backup`/`restore` against real S3 and KMS APIs (moto server on loopback), with the host side
(hostside.py, the script sent to hosts over SSH) run as a local process on a host's file tree:

a backup uploads, a second uploads nothing; a restore into an empty tree brings back every file, secret
and the agent's state byte for byte with modes; S3 gone mid-upload leaves no complete backup and the next
run finishes it; a corrupted object is named; a wrong key is a clear error that restores nothing; no
secret or credential in any log, error or stored object."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mevfleet.cloud import aws as cloud_aws
from mevfleet.cloud.aws import Aws
from mevfleet.cloud.backup import (
    METRIC_FILE,
    BackupSettings,
    KmsWrap,
    RsaWrap,
    Store,
    Unwrap,
    backup_host,
    restore_host,
)
from mevfleet.cloud.errors import CloudError
from mevfleet.cloud.transport import LocalTransport
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.monitoring import listen
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files
from testbed.services import free_port

from .conftest import DUMMY_SECRET, boto

DEVNET = Path(__file__).resolve().parents[2] / "inventory" / "devnet.yml"


@pytest.fixture(scope="module")
def plan():
    return compile_plan(load_inventory(DEVNET)).hosts["base1"]


def _put(root: Path, path: str, content: bytes, mode: int) -> None:
    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(content)
    real.chmod(mode)


def make_host(root: Path, plan) -> dict[str, bytes]:
    """A node host's tree as a deploy leaves it, plus an agent that has traded and been stopped."""
    for f in host_files(plan, HostFacts(container=True)):
        _put(root, f.path, f.content.encode(), int(f.mode, 8))
    agent = plan.agent
    secret_values = {
        agent.token_file: secrets.token_hex(32).encode(),
        f"{agent.keys_dir}/base.key": ("0x" + secrets.token_hex(32)).encode(),
    }
    for path, value in secret_values.items():
        _put(root, path, value, 0o600)
    (root / agent.keys_dir.lstrip("/")).chmod(0o700)
    state = {
        f"{agent.state_dir}/ledger.json": json.dumps({"day": "2026-12-04", "net_usd": {"base": -412.5}}).encode(),
        f"{agent.state_dir}/control.json": json.dumps({"emergency_stop": True, "paused": []}).encode(),
        f"{agent.state_dir}/pools-base.json": os.urandom(200_000),
    }
    for path, value in state.items():
        _put(root, path, value, 0o600)
    (root / agent.state_dir.lstrip("/")).chmod(0o700)
    (root / Path(METRIC_FILE).parent.relative_to("/")).mkdir(parents=True)
    return secret_values


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in [*files, ""]:
            path = Path(dirpath) / name
            rel = "/" + str(path.relative_to(root)).rstrip(".").rstrip("/")
            st = path.lstat()
            found[rel] = (stat.S_IMODE(st.st_mode), path.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return found


def _bucket_bytes(url: str, bucket: str) -> list[bytes]:
    s3 = boto("s3", url)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    return [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]


def _kms(url: str) -> str:
    return boto("kms", url).create_key(Description="mevfleet backups")["KeyMetadata"]["KeyId"]


def _settings(bucket: str = "mevfleet-backup-test") -> BackupSettings:
    return BackupSettings(bucket=bucket, fleet="devnet", retention_days=30)


def _store() -> Store:
    store = Store(Aws(), _settings())
    store.ensure_bucket()
    return store


def test_backup_twice_then_restore_everything(aws, tmp_path, plan, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # botocore logs requests at DEBUG: they must hold no secret either
    host = tmp_path / "host"
    secret_values = make_host(host, plan)
    store = _store()
    wrap = KmsWrap(Aws(), _kms(aws.url), "devnet")

    first = backup_host(store, wrap, plan, LocalTransport("base1", host))
    assert first.uploaded_objects > 10 and first.uploaded_bytes > 200_000
    assert first.skipped == []  # a node host has no producers (pg_dump, Prometheus): they are the control host's
    second = backup_host(store, wrap, plan, LocalTransport("base1", host))
    assert (second.uploaded_objects, second.uploaded_bytes) == (0, 0)
    assert second.reused_objects == first.uploaded_objects
    assert len(store.manifests("base1")) == 2
    assert "mevfleet_backup_last_success_timestamp_seconds" in (host / METRIC_FILE.lstrip("/")).read_text()

    # Lifecycle: manifests kept for the retention, objects longer (see backup.py).
    rules = boto("s3", aws.url).get_bucket_lifecycle_configuration(Bucket="mevfleet-backup-test")["Rules"]
    assert {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules} == {
        "devnet/manifests/": 30,
        "devnet/objects/": 46,
    }

    # Secrets left the host encrypted: no stored object holds a secret's value.
    stored = _bucket_bytes(aws.url, "mevfleet-backup-test")
    for value in secret_values.values():
        assert not any(value in blob for blob in stored)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    report = restore_host(store, Unwrap(Aws()), plan, LocalTransport("base1", fresh))
    assert report.manifest == store.manifests("base1")[-1]
    before, after = _tree(host), _tree(fresh)
    # Not backed up: the host's own data key and the backup metric, with their directories.
    before = {p: v for p, v in before.items() if not p.startswith(("/var/lib/mevfleet", "/var/lib/prometheus"))}
    assert {p: v for p, v in after.items() if p in before} == before
    ledger = json.loads((fresh / plan.agent.state_dir.lstrip("/") / "ledger.json").read_text())
    assert ledger["net_usd"]["base"] == -412.5
    assert json.loads((fresh / plan.agent.state_dir.lstrip("/") / "control.json").read_text())["emergency_stop"]

    logged = caplog.text + "".join(capfd.readouterr())
    for value in [*secret_values.values(), DUMMY_SECRET.encode()]:
        assert value.decode() not in logged


def test_s3_gone_mid_upload_is_not_a_backup_and_the_next_run_finishes(aws, tmp_path, plan):
    host = tmp_path / "host"
    make_host(host, plan)
    store = _store()
    wrap = KmsWrap(Aws(), _kms(aws.url), "devnet")
    puts = []

    def stop_on_fifth_put(service: str, operation: str) -> None:
        if (service, operation) == ("s3", "PutObject"):
            puts.append(operation)
            if len(puts) == 5:
                aws.stop()

    cloud_aws.add_call_hook(stop_on_fifth_put)
    try:
        with pytest.raises(CloudError, match="cannot reach the AWS endpoint") as failed:
            backup_host(store, wrap, plan, LocalTransport("base1", host))
    finally:
        cloud_aws.remove_call_hook(stop_on_fifth_put)
        aws.start()
    assert DUMMY_SECRET not in str(failed.value)
    assert store.manifests("base1") == []  # nothing claims to be a backup
    partial = len(store.known_objects())
    assert partial >= 3

    done = backup_host(store, wrap, plan, LocalTransport("base1", host))
    assert done.uploaded_objects > 0 and done.reused_objects >= partial - 1
    assert len(store.manifests("base1")) == 1
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restore_host(store, Unwrap(Aws()), plan, LocalTransport("base1", fresh))
    assert (fresh / "etc/mevagent/api.token").read_bytes() == (host / "etc/mevagent/api.token").read_bytes()


def test_a_corrupted_object_is_named_and_nothing_is_restored(aws, tmp_path, plan):
    host = tmp_path / "host"
    make_host(host, plan)
    store = _store()
    backup_host(store, KmsWrap(Aws(), _kms(aws.url), "devnet"), plan, LocalTransport("base1", host))
    manifest = store.get_manifest(store.manifests("base1")[-1])
    ledger = next(e for e in manifest["entries"] if e["path"].endswith("/ledger.json"))
    boto("s3", aws.url).put_object(
        Bucket="mevfleet-backup-test", Key=f"devnet/objects/{ledger['sha256']}", Body=b'{"net_usd": {"base": 0}}'
    )
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(CloudError) as failed:
        restore_host(store, Unwrap(Aws()), plan, LocalTransport("base1", fresh))
    message = str(failed.value)
    assert "checksum mismatch" in message and ledger["sha256"] in message and "/var/lib/mevagent/ledger.json" in message
    assert "nothing was restored" in message
    assert list(fresh.iterdir()) == []


def _rsa(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def test_operator_public_key_and_a_wrong_private_key(aws, tmp_path, plan, caplog):
    caplog.set_level(logging.DEBUG)
    host = tmp_path / "host"
    secret_values = make_host(host, plan)
    right, right_pub = _rsa(tmp_path, "operator")
    wrong, _ = _rsa(tmp_path, "someone-else")
    store = _store()
    backup_host(store, RsaWrap(right_pub), plan, LocalTransport("base1", host))
    again = backup_host(store, RsaWrap(right_pub), plan, LocalTransport("base1", host))
    assert again.uploaded_objects == 0  # the host keeps its data key: unchanged secrets keep their address

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(CloudError, match="wrong private key") as failed:
        restore_host(store, Unwrap(Aws(), private_key=wrong), plan, LocalTransport("base1", fresh))
    assert "nothing was restored" in str(failed.value)
    assert list(fresh.iterdir()) == []
    with pytest.raises(CloudError, match="pass --private-key"):
        restore_host(store, Unwrap(Aws()), plan, LocalTransport("base1", fresh))

    restore_host(store, Unwrap(Aws(), private_key=right), plan, LocalTransport("base1", fresh))
    for path, value in secret_values.items():
        assert (fresh / path.lstrip("/")).read_bytes() == value
        assert value.decode() not in caplog.text and value.decode() not in str(failed.value)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on its own socket directory and port, no TCP, authenticated as the
    control host's is: `postgres` by peer on the local socket, nobody by password here."""
    if not (PG_BIN / "initdb").exists() or shutil.which("pg_dump") is None:
        pytest.skip("PostgreSQL 15 not installed (Debian package postgresql)")
    import pwd

    pg = pwd.getpwnam("postgres")
    home = Path(tempfile.mkdtemp(prefix="mevfleet-pg-", dir="/tmp"))
    os.chown(home, pg.pw_uid, pg.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, PG_BIN / "initdb", "-D", home / "data", "--auth-local=peer",
                    "--auth-host=scram-sha-256", "-U", "postgres"], check=True, capture_output=True)  # fmt: skip
    port = free_port()
    options = f"-k {home} -p {port} -c listen_addresses=127.0.0.1"
    # The server inherits pg_ctl's stdout: a log file and no pipe, or run() would wait for the server.
    start = [*as_pg, PG_BIN / "pg_ctl", "-D", home / "data", "-l", home / "log", "-o", options, "-w", "start"]
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    yield str(home), port
    stop = [*as_pg, PG_BIN / "pg_ctl", "-D", home / "data", "-m", "immediate", "stop"]
    subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    shutil.rmtree(home, ignore_errors=True)


def _psql(pg: tuple[str, int], database: str, sql: str) -> str:
    command = ["runuser", "-u", "postgres", "--", "psql", "-XAt", "-h", pg[0], "-p", str(pg[1]), "-d", database]
    done = subprocess.run([*command, "-c", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_control_host_database_dump_and_skipped_sources(aws, tmp_path, postgres):
    mon = compile_plan(load_inventory(DEVNET)).hosts["mon1"]
    host = tmp_path / "mon"
    for f in host_files(mon, HostFacts(container=True)):
        _put(host, f.path, f.content.encode(), int(f.mode, 8))
    redis_password = secrets.token_hex(32).encode()
    _put(host, "/etc/redis/mevfleet-auth.conf", b"requirepass " + redis_password + b"\n", 0o600)
    # As the control plane's deploy leaves it: its role owns the database and the tables, its password in
    # the DSN file only.
    password = secrets.token_hex(16)
    dsn = f"postgresql://mevcontrol:{password}@127.0.0.1:{postgres[1]}/mevfleet\n"
    _put(host, "/etc/mevcontrol/postgres.dsn", dsn.encode(), 0o600)
    _psql(postgres, "postgres", f"CREATE ROLE mevcontrol LOGIN PASSWORD '{password}'")
    _psql(postgres, "postgres", "CREATE DATABASE mevfleet OWNER mevcontrol")
    _psql(
        postgres,
        "mevfleet",
        "SET ROLE mevcontrol; CREATE TABLE executions (id int, usd numeric); "
        "INSERT INTO executions VALUES (1, 12.5), (2, -3)",
    )

    settings = BackupSettings(bucket="mevfleet-backup-test", fleet="devnet", pg_host=postgres[0], pg_port=postgres[1])
    store = Store(Aws(), settings)
    store.ensure_bucket()
    report = backup_host(store, KmsWrap(Aws(), _kms(aws.url), "devnet"), mon, LocalTransport("mon1", host))
    # Prometheus's admin API is off in the rendered /etc/default/prometheus: the snapshot says so.
    assert [s["source"] for s in report.skipped] == ["prometheus"]
    assert "admin API is off" in report.skipped[0]["reason"]
    manifest = store.get_manifest(report.manifest)
    dump = next(e for e in manifest["entries"] if e["path"] == "produced:pg_dump")
    assert dump["encrypted"] and dump["size"] > 0
    assert not any(redis_password in blob for blob in _bucket_bytes(aws.url, "mevfleet-backup-test"))

    assert not any(password.encode() in blob for blob in _bucket_bytes(aws.url, "mevfleet-backup-test"))

    # A fresh deploy: the database gone, the role with a new password of the new host's.
    _psql(postgres, "postgres", "DROP DATABASE mevfleet")
    _psql(postgres, "postgres", f"ALTER ROLE mevcontrol PASSWORD '{secrets.token_hex(16)}'")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restore_host(store, Unwrap(Aws()), mon, LocalTransport("mon1", fresh))
    assert _psql(postgres, "mevfleet", "SELECT id, usd FROM executions ORDER BY id") == "1|12.5\n2|-3"
    # The control plane logs in with the restored DSN file (SCRAM over TCP): the role has its password back.
    restored_dsn = (fresh / "etc/mevcontrol/postgres.dsn").read_text().strip()
    url = restored_dsn.replace(f":{password}@", "@")  # the password through the environment, not argv
    login = subprocess.run(["psql", "-XAt", url, "-c", "SELECT count(*) FROM executions"],
                           env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True)  # fmt: skip
    assert login.returncode == 0 and login.stdout.strip() == "2", login.stderr
    owners = "SELECT tableowner FROM pg_tables WHERE tablename = 'executions'"
    assert _psql(postgres, "mevfleet", owners) == "mevcontrol"
    assert _psql(
        postgres, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mevfleet'"
    ) == ("mevcontrol")
    # Restored again over the live database (the usual case: the host was deployed, then restored).
    _psql(postgres, "mevfleet", "SET ROLE mevcontrol; INSERT INTO executions VALUES (3, 99)")
    restore_host(store, Unwrap(Aws()), mon, LocalTransport("mon1", fresh))
    assert _psql(postgres, "mevfleet", "SELECT count(*) FROM executions") == "2"
    assert (fresh / "etc/redis/mevfleet-auth.conf").read_bytes() == b"requirepass " + redis_password + b"\n"


def test_without_postgres_the_dump_is_skipped_and_says_why(aws, tmp_path):
    mon = compile_plan(load_inventory(DEVNET)).hosts["mon1"]
    host = tmp_path / "mon"
    host.mkdir()
    # A socket directory where no PostgreSQL listens: the control plane database is not on this host.
    settings = BackupSettings(bucket="mevfleet-backup-test", fleet="devnet", pg_host=str(tmp_path), pg_port=1)
    store = Store(Aws(), settings)
    store.ensure_bucket()
    report = backup_host(store, KmsWrap(Aws(), _kms(aws.url), "devnet"), mon, LocalTransport("mon1", host))
    reasons = {s["source"]: s["reason"] for s in report.skipped}
    assert "control plane database is not here" in reasons["pg_dump"]
    assert store.manifests("mon1")  # the rest is still a complete backup


def test_objects_older_than_half_the_retention_are_restamped_not_uploaded(aws, tmp_path, plan, monkeypatch):
    host = tmp_path / "host"
    make_host(host, plan)
    store = _store()
    wrap = KmsWrap(Aws(), _kms(aws.url), "devnet")
    first = backup_host(store, wrap, plan, LocalTransport("base1", host))
    listed = store.known_objects()
    # As if the first backup ran 20 days ago (retention 30 days: older than 15 days is re-stamped).
    real = Store.known_objects
    monkeypatch.setattr(Store, "known_objects", lambda self: {a: t - timedelta(days=20) for a, t in real(self).items()})
    again = backup_host(store, wrap, plan, LocalTransport("base1", host))
    assert again.uploaded_objects == 0
    assert again.refreshed_objects == first.uploaded_objects
    s3 = boto("s3", aws.url)
    address = next(iter(listed))
    head = s3.head_object(Bucket="mevfleet-backup-test", Key=f"devnet/objects/{address}")
    assert "mevfleet-refreshed" in head["Metadata"]
    body = s3.get_object(Bucket="mevfleet-backup-test", Key=f"devnet/objects/{address}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == address


def _rendered_args(defaults: Path, port: int) -> list[str]:
    """Prometheus's ARGS as the deploy renders them in /etc/default/prometheus, on a free port (9090 may
    be taken on a shared machine)."""
    line = next(x for x in defaults.read_text().splitlines() if x.startswith("ARGS="))
    (value,) = shlex.split(line.removeprefix("ARGS="))  # the shell variable's value: one quoted word
    return [a.replace(":9090", f":{port}") for a in value.split()]


def _start_prometheus(tmp_path: Path, data: Path, name: str, args: list[str]) -> tuple[subprocess.Popen, str]:
    listen = next(a.split("=", 1)[1] for a in args if a.startswith("--web.listen-address="))
    config = tmp_path / f"{name}.yml"
    config.write_text(
        f"global: {{scrape_interval: 1s}}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['{listen}']}}]}}]\n"
    )
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://{listen}"


def _query(url: str, expr: str, at: float | None = None) -> list:
    import urllib.parse
    import urllib.request

    params = {"query": expr, **({"time": f"{at:.3f}"} if at else {})}
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=5) as answer:
        return json.load(answer)["data"]["result"]


def _wait(check, seconds: float = 60):
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        assert time.monotonic() < deadline, "Prometheus did not get there in time"
        time.sleep(0.5)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package)")
def test_prometheus_snapshot_through_the_admin_api_is_restored(aws, tmp_path):
    import time

    # The inventory setting turns the admin API on, and moves Prometheus to loopback.
    doc = yaml.safe_load(DEVNET.read_text())
    doc["fleet"].setdefault("monitoring", {})["prometheus_admin_api"] = True
    fleet = compile_plan(parse_inventory(yaml.safe_dump(doc), str(DEVNET)))
    mon = fleet.hosts["mon1"]
    assert listen(mon, "prometheus", "web") == "127.0.0.1:9090"
    assert not any("9090" in r.ports for r in mon.firewall.rules)  # no firewall rule, hence no security group
    host = tmp_path / "mon"
    for f in host_files(mon, HostFacts(container=True)):
        _put(host, f.path, f.content.encode(), int(f.mode, 8))
    args = _rendered_args(host / "etc/default/prometheus", free_port())
    assert "--web.enable-admin-api" in args
    data = host / "var/lib/prometheus/metrics2"
    data.mkdir(parents=True)
    process, url = _start_prometheus(tmp_path, data, "live", args)
    try:
        _wait(lambda: _query(url, "up"))
        scraped_at = time.time()
        _wait(lambda: _query(url, "count_over_time(up[1m]) > 2"))
        settings = BackupSettings(bucket="mevfleet-backup-test", fleet="devnet", prometheus_url=url,
                                  pg_host=str(tmp_path), pg_port=1)  # fmt: skip
        store = Store(Aws(), settings)
        store.ensure_bucket()
        report = backup_host(store, KmsWrap(Aws(), _kms(aws.url), "devnet"), mon, LocalTransport("mon1", host))
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [s["source"] for s in report.skipped] == ["pg_dump"]
    assert any(e["path"] == "produced:prometheus" for e in store.get_manifest(report.manifest)["entries"])
    assert not (data / "snapshots").exists() or not any((data / "snapshots").iterdir())  # not left on the disk

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restore_host(store, Unwrap(Aws()), mon, LocalTransport("mon1", fresh))
    restored = fresh / "var/lib/prometheus/metrics2"
    assert list(restored.glob("*/meta.json"))  # the snapshot's blocks, in place of the data directory
    args = _rendered_args(host / "etc/default/prometheus", free_port())
    process, url = _start_prometheus(tmp_path, restored, "restored", args)
    try:
        # The restored TSDB answers for the time before the backup: the samples came back.
        assert _wait(lambda: _query(url, "up", at=scraped_at + 1))
    finally:
        process.terminate()
        process.wait(timeout=30)
