"""`mevfleet backup` / `mevfleet restore`: a host's rendered files, secrets and durable state to S3.

Bucket layout, under `<fleet>/`:
  objects/<sha256>            content-addressed: the key is the sha256 of the stored bytes (ciphertext for
                              secrets), so an unchanged file is never uploaded twice, and every download
                              is checked against its own name before anything is restored
  keys/<key_id>.json          a host's data key, wrapped by KMS or by the operator's RSA public key
  manifests/<host>/<time>.json  written last: a backup is complete exactly when its manifest exists

Retention is S3's lifecycle: manifests expire after `retention_days`, objects after 1.5x that plus a day;
a backup re-stamps (CopyObject onto itself, no upload) every object it references that is older than half
the retention, so an object never expires while a kept manifest still needs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..model import HostPlan
from ..monitoring import TEXTFILE_DIR
from .aws import Aws, CloudError, describe_error

KEY_FILE = "/var/lib/mevfleet/backup/data-key.json"  # the host's data key (0600 root); never backed up
METRIC_FILE = f"{TEXTFILE_DIR}/mevfleet-backup.prom"  # node_exporter's textfile collector reads it
PROMETHEUS_DATA = "/var/lib/prometheus/metrics2"
PURPOSE = "mevfleet-backup"  # KMS encryption context; the IAM policy allows the key only with it
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class BackupSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(pattern=BUCKET_PATTERN)
    fleet: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    retention_days: int = Field(default=30, ge=1, le=3650)
    pg_database: str = Field(default="mevfleet", pattern=r"^[A-Za-z0-9_]+$")
    # Always as the postgres system user (peer authentication). Unset: the default socket directory and
    # the plan's PostgreSQL port; set: that socket directory and port.
    pg_host: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_./-]+$")
    pg_port: int | None = Field(default=None, ge=1, le=65535)
    pg_user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+$")
    # Where the snapshot request goes, from the host itself; unset: the plan's Prometheus listen address.
    prometheus_url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9_.:\[\]-]+$")


# --- what a host's backup holds -------------------------------------------------------------------------


def host_items(plan: HostPlan) -> list[dict[str, str]]:
    """Paths to back up and their kind: config (rendered files), secret (encrypted), state (the agent's)."""
    from ..monitoring import receiver_secrets, secrets
    from ..render import HostFacts, host_files

    items: dict[str, str] = {"/etc/mevfleet": "config"}
    for container in (False, True):
        items.update({f.path: "config" for f in host_files(plan, HostFacts(container=container))})
    for jwt in plan.jwts:
        items.update({path: "secret" for path, _ in jwt.copies})
    items.update({s.path: "secret" for s in secrets(plan)})
    items.update({s.path: "secret" for s in receiver_secrets(plan)})
    if plan.agent:
        # Risk ledger (daily loss), emergency stop/pauses and pool checkpoints: mevagent's state_dir.
        items[plan.agent.state_dir] = "state"
        items[plan.agent.token_file] = "secret"
        items[plan.agent.keys_dir] = "secret"
    control = _control()
    if control and plan.agent:
        items[control.AGENT_REDIS_PASSWORD] = "secret"  # the agent's Redis ACL password (the bus)
        items[control.AGENT_BUS_CA] = "config"  # the fleet CA its bus client checks Redis's certificate with
    if control and getattr(plan, "control", None):
        # The control plane's database DSN, Redis password, operator and agent tokens, TLS key: every file
        # of its config directory is encrypted (its rendered control.yml, a deeper config item, is not).
        items[control.CONFIG_DIR] = "secret"
        items[control.REDIS_ACL] = "secret"  # the agents' Redis ACL users (password hashes)
        items[control.REDIS_TLS_DIR] = "secret"  # Redis's TLS key and certificate, the fleet CA
    return [{"path": p, "kind": k} for p, k in items.items()]


def _control():
    """The control plane's deploy module (paths on the control host), where this checkout has it."""
    try:
        from .. import control
    except ImportError:
        return None
    return control


def _postgres_port(plan: HostPlan) -> int | None:
    """The control plane's PostgreSQL port in the host plan (None: not planned here, the default socket)."""
    return next((p.port for s in plan.services if s.service == "postgresql" for p in s.ports), None)


def host_producers(plan: HostPlan, settings: BackupSettings) -> list[dict[str, Any]]:
    """Things made on the host at backup time. Each skips itself, saying why, where it does not apply."""
    if "monitoring" not in plan.roles:
        return []
    from ..monitoring import listen

    control = _control() if getattr(plan, "control", None) else None
    # The role's password is not in a dump: restore sets it from the restored DSN file.
    dsn = {"dsn_file": control.POSTGRES_DSN, "role": control.DB_ROLE} if control else {}
    return [
        # The control plane's PostgreSQL (history, audit): a pg_dump when the database exists on this host.
        {"name": "pg_dump", "database": settings.pg_database, "host": settings.pg_host,
         "port": settings.pg_port or _postgres_port(plan), "user": settings.pg_user, "encrypt": True, **dsn},
        # A TSDB snapshot through Prometheus's admin API, when the operator enabled that API.
        {"name": "prometheus", "url": settings.prometheus_url or f"http://{listen(plan, 'prometheus', 'web')}",
         "data_dir": PROMETHEUS_DATA,
         "encrypt": False},
    ]  # fmt: skip


def units_for_restore(plan: HostPlan, entries: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(stop before writing, start after, try-restart after): the agent must not write its state while
    it is being replaced; services re-read a restored secret only on restart."""
    from ..monitoring import GRAFANA_ADMIN_PASSWORD, RECEIVER_SECRETS_DIR, REDIS_AUTH

    paths = {e["path"] for e in entries}
    stop = ["mevagent.service"] if plan.agent else []
    restart = [unit for jwt in plan.jwts for unit in jwt.units if any(p in paths for p, _ in jwt.copies)]
    if REDIS_AUTH in paths:
        restart.append("redis-server.service")
    if GRAFANA_ADMIN_PASSWORD in paths:
        restart.append("grafana-server.service")
    if any(p.startswith(RECEIVER_SECRETS_DIR + "/") for p in paths):
        restart.append("prometheus-alertmanager.service")
    if "produced:prometheus" in paths:
        stop.append("prometheus.service")
    if "produced:pg_dump" in paths:
        stop.append("mevcontrol.service")  # not writing to the database while it is replaced
    return stop, list(stop), [f"{u}.service" if "." not in u else u for u in restart]


# --- envelope keys -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KeyWrap(Protocol):
    wrap_id: str

    def candidate(self) -> dict[str, Any]: ...


def _record(wrap_id: str, method: str, wrapped: bytes, data_key: bytes, **extra: Any) -> dict[str, Any]:
    key_id = hashlib.sha256(wrapped).hexdigest()[:24]
    return {"key_id": key_id, "wrap_id": wrap_id, "data_key": _b64(data_key),
            "wrapped": {"method": method, "blob": _b64(wrapped), **extra}}  # fmt: skip


@dataclass
class KmsWrap:
    """Data keys from KMS (GenerateDataKey); unwrapped by KMS Decrypt with the same encryption context."""

    aws: Aws
    key_id: str
    fleet: str

    @property
    def wrap_id(self) -> str:
        return f"kms:{self.key_id}"

    def context(self) -> dict[str, str]:
        return {"purpose": PURPOSE, "fleet": self.fleet}

    def candidate(self) -> dict[str, Any]:
        try:
            made = self.aws.client("kms").generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=self.context()
            )
        except Exception as exc:
            raise CloudError(f"KMS: {describe_error(exc)}") from None
        return _record(self.wrap_id, "kms", made["CiphertextBlob"], made["Plaintext"], context=self.context())

    def unwrap(self, record: dict[str, Any]) -> bytes:
        try:
            return self.aws.client("kms").decrypt(
                CiphertextBlob=base64.b64decode(record["wrapped"]["blob"]),
                EncryptionContext=record["wrapped"]["context"],
            )["Plaintext"]
        except Exception as exc:
            raise CloudError(f"data key {record['key_id']}: KMS refused to unwrap it: {describe_error(exc)}") from None


def _load_public(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_public_key(path.expanduser().read_bytes())
    except (OSError, ValueError) as exc:
        raise CloudError(f"--public-key {path}: not a PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 3072:
        raise CloudError(f"--public-key {path}: an RSA public key of at least 3072 bits is needed")
    return key


def _oaep():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass
class RsaWrap:
    """No KMS: a data key made here, wrapped with the operator's RSA public key (OAEP-SHA256). Only the
    matching private key, kept off the fleet, unwraps it at restore."""

    public_key: Path

    @property
    def wrap_id(self) -> str:
        from cryptography.hazmat.primitives import serialization

        der = _load_public(self.public_key).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "rsa:" + hashlib.sha256(der).hexdigest()[:16]

    def candidate(self) -> dict[str, Any]:
        data_key = os.urandom(32)
        wrapped = _load_public(self.public_key).encrypt(data_key, _oaep())
        return _record(self.wrap_id, "rsa-oaep-sha256", wrapped, data_key)


@dataclass
class Unwrap:
    """What restore decrypts data keys with: KMS (the record says which key) or an operator private key."""

    aws: Aws
    private_key: Path | None = None
    passphrase_file: Path | None = None

    def __call__(self, record: dict[str, Any]) -> bytes:
        method = record["wrapped"]["method"]
        if method == "kms":
            return KmsWrap(self.aws, "", "").unwrap(record)
        if self.private_key is None:
            raise CloudError(f"data key {record['key_id']} is wrapped with an RSA public key: pass --private-key")
        from cryptography.hazmat.primitives import serialization

        password = self.passphrase_file.expanduser().read_bytes().strip() if self.passphrase_file else None
        try:
            key = serialization.load_pem_private_key(self.private_key.expanduser().read_bytes(), password=password)
        except (OSError, ValueError, TypeError) as exc:
            raise CloudError(f"--private-key {self.private_key}: cannot load it ({type(exc).__name__})") from None
        try:
            return key.decrypt(base64.b64decode(record["wrapped"]["blob"]), _oaep())
        except ValueError:
            raise CloudError(
                f"data key {record['key_id']} does not unwrap with {self.private_key}: wrong private key "
                f"(it was wrapped for {record['wrap_id']}); nothing was restored"
            ) from None


# --- the bucket ----------------------------------------------------------------------------------------


@dataclass
class Store:
    aws: Aws
    settings: BackupSettings
    uploaded_objects: int = 0
    uploaded_bytes: int = 0
    _s3: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._s3 = self.aws.client("s3")

    def _key(self, *parts: str) -> str:
        return "/".join((self.settings.fleet, *parts))

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(Bucket=self.settings.bucket, **kwargs)
        except Exception as exc:
            raise CloudError(f"S3 {what}: {describe_error(exc)}") from None

    def lifecycle(self) -> dict[str, Any]:
        days = self.settings.retention_days
        return {
            "Rules": [
                {"ID": f"{self.settings.fleet}-manifests", "Status": "Enabled",
                 "Filter": {"Prefix": self._key("manifests/")}, "Expiration": {"Days": days}},
                {"ID": f"{self.settings.fleet}-objects", "Status": "Enabled",
                 "Filter": {"Prefix": self._key("objects/")}, "Expiration": {"Days": days + days // 2 + 1}},
            ]
        }  # fmt: skip

    def ensure_bucket(self) -> None:
        """The bucket exists and its lifecycle has this fleet's retention rules (others' rules are kept)."""
        from botocore.exceptions import ClientError

        try:
            self._s3.head_bucket(Bucket=self.settings.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise CloudError(f"S3 bucket {self.settings.bucket}: {describe_error(exc)}") from None
            region = self.aws.region_name
            extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            self._call("CreateBucket", self._s3.create_bucket, **extra)
        except Exception as exc:
            raise CloudError(f"S3 bucket {self.settings.bucket}: {describe_error(exc)}") from None
        try:
            current = self._s3.get_bucket_lifecycle_configuration(Bucket=self.settings.bucket)["Rules"]
        except Exception:
            current = []  # NoSuchLifecycleConfiguration
        ours = self.lifecycle()["Rules"]
        others = [r for r in current if r.get("ID") not in {o["ID"] for o in ours}]
        mine = [r for r in current if r.get("ID") in {o["ID"] for o in ours}]
        if _normal(mine) != _normal(ours):
            self._call("PutBucketLifecycleConfiguration", self._s3.put_bucket_lifecycle_configuration,
                       LifecycleConfiguration={"Rules": others + ours})  # fmt: skip

    def known_objects(self) -> dict[str, datetime]:
        prefix = self._key("objects/")
        found: dict[str, datetime] = {}
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    found[obj["Key"][len(prefix) :]] = obj["LastModified"]
        except Exception as exc:
            raise CloudError(f"S3 ListObjectsV2: {describe_error(exc)}") from None
        return found

    def put_object(self, address: str, data: bytes) -> None:
        # S3 checks the SHA-256 itself on arrival: a body damaged in transit is refused, not stored.
        checksum = base64.b64encode(bytes.fromhex(address)).decode()
        self._call(f"PutObject {address}", self._s3.put_object, Key=self._key("objects", address), Body=data,
                   ChecksumSHA256=checksum)  # fmt: skip
        self.uploaded_objects += 1
        self.uploaded_bytes += len(data)

    def refresh_object(self, address: str) -> None:
        key = self._key("objects", address)
        self._call(f"CopyObject {address}", self._s3.copy_object, Key=key,
                   CopySource={"Bucket": self.settings.bucket, "Key": key}, MetadataDirective="REPLACE",
                   Metadata={"mevfleet-refreshed": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")})  # fmt: skip

    def get_object(self, address: str) -> bytes:
        answer = self._call(f"GetObject {address}", self._s3.get_object, Key=self._key("objects", address))
        return answer["Body"].read()

    def has_key(self, key_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.settings.bucket, Key=self._key("keys", f"{key_id}.json"))
            return True
        except ClientError:
            return False
        except Exception as exc:
            raise CloudError(f"S3 HeadObject: {describe_error(exc)}") from None

    def put_key(self, record: dict[str, Any]) -> None:
        body = json.dumps({k: v for k, v in record.items() if k != "data_key"}, indent=2).encode()
        self._call("PutObject key", self._s3.put_object, Key=self._key("keys", f"{record['key_id']}.json"), Body=body)

    def get_key(self, key_id: str) -> dict[str, Any]:
        answer = self._call(f"GetObject key {key_id}", self._s3.get_object, Key=self._key("keys", f"{key_id}.json"))
        return json.loads(answer["Body"].read())

    def put_manifest(self, host: str, stamp: str, manifest: dict[str, Any]) -> str:
        key = self._key("manifests", host, f"{stamp}.json")
        self._call("PutObject manifest", self._s3.put_object, Key=key, Body=json.dumps(manifest, indent=1).encode())
        return key

    def manifests(self, host: str) -> list[str]:
        prefix = self._key("manifests", host) + "/"
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix)
            return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        except Exception as exc:
            raise CloudError(f"S3 ListObjectsV2: {describe_error(exc)}") from None

    def get_manifest(self, key: str) -> dict[str, Any]:
        return json.loads(self._call("GetObject manifest", self._s3.get_object, Key=key)["Body"].read())


def _normal(rules: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: r.get(k) for k in ("ID", "Status", "Filter", "Expiration")}, sort_keys=True)
                  for r in rules)  # fmt: skip


# --- backup and restore of one host ----------------------------------------------------------------------


class Transport(Protocol):
    name: str

    @property
    def host_root(self) -> str: ...

    def call(self, request: dict) -> dict: ...


class BackupReport(BaseModel):
    host: str
    manifest: str
    files: int
    uploaded_objects: int
    uploaded_bytes: int
    reused_objects: int
    refreshed_objects: int
    skipped: list[dict[str, str]]
    seconds: float


class RestoreReport(BaseModel):
    host: str
    manifest: str
    written: int
    restarted: list[str]
    downloaded_bytes: int
    seconds: float


def backup_host(store: Store, wrap: KeyWrap, plan: HostPlan, transport: Transport) -> BackupReport:
    started = time.monotonic()
    store.uploaded_objects = store.uploaded_bytes = 0
    known = store.known_objects()
    request = {
        "op": "backup",
        "root": transport.host_root,
        "items": host_items(plan),
        "producers": host_producers(plan, store.settings),
        "known": sorted(known),
        "key_candidate": wrap.candidate(),
        "key_file": KEY_FILE,
    }
    answer = transport.call(request)
    key = answer["key"]
    if not store.has_key(key["key_id"]):
        store.put_key(key)
    for address, text in answer["blobs"].items():
        data = base64.b64decode(text)
        if hashlib.sha256(data).hexdigest() != address:
            raise CloudError(f"{plan.name}: object {address} changed on its way from the host; nothing was marked")
        store.put_object(address, data)
    referenced = {e["sha256"] for e in answer["entries"] if "sha256" in e}
    stale = datetime.now(UTC) - timedelta(days=store.settings.retention_days / 2)
    refreshed = [a for a in sorted(referenced) if a in known and known[a] < stale]
    for address in refreshed:
        store.refresh_object(address)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    manifest = {
        "version": 1,
        "fleet": store.settings.fleet,
        "host": plan.name,
        "created": now.isoformat(),
        "entries": answer["entries"],
        "missing": answer["missing"],
        "skipped": answer["skipped"],
        "uploaded": {"objects": store.uploaded_objects, "bytes": store.uploaded_bytes},
    }
    manifest_key = store.put_manifest(plan.name, stamp, manifest)  # last: now the backup is complete
    transport.call({"op": "mark", "root": transport.host_root, "path": METRIC_FILE,
                    "text": _metric_text(now.timestamp(), store.uploaded_bytes)})  # fmt: skip
    return BackupReport(
        host=plan.name,
        manifest=manifest_key,
        files=sum(e["type"] == "file" for e in answer["entries"]),
        uploaded_objects=store.uploaded_objects,
        uploaded_bytes=store.uploaded_bytes,
        reused_objects=len(referenced) - store.uploaded_objects,
        refreshed_objects=len(refreshed),
        skipped=answer["skipped"],
        seconds=time.monotonic() - started,
    )


def _metric_text(timestamp: float, uploaded: int) -> str:
    return (
        "# HELP mevfleet_backup_last_success_timestamp_seconds When the last complete backup of this host was "
        "written (its manifest).\n"
        "# TYPE mevfleet_backup_last_success_timestamp_seconds gauge\n"
        f"mevfleet_backup_last_success_timestamp_seconds {timestamp:.3f}\n"
        "# HELP mevfleet_backup_last_uploaded_bytes Bytes the last complete backup uploaded (new objects only).\n"
        "# TYPE mevfleet_backup_last_uploaded_bytes gauge\n"
        f"mevfleet_backup_last_uploaded_bytes {uploaded}\n"
    )


def restore_host(
    store: Store, unwrap: Unwrap, plan: HostPlan, transport: Transport, manifest_key: str | None = None
) -> RestoreReport:
    started = time.monotonic()
    if manifest_key is None:
        found = store.manifests(plan.name)
        if not found:
            raise CloudError(f"{plan.name}: no complete backup in s3://{store.settings.bucket}/{store.settings.fleet}/")
        manifest_key = found[-1]
    manifest = store.get_manifest(manifest_key)
    if manifest.get("host") != plan.name:
        raise CloudError(f"{manifest_key} is a backup of {manifest.get('host')!r}, not {plan.name!r}")
    entries = manifest["entries"]
    blobs: dict[str, str] = {}
    corrupted: dict[str, list[str]] = {}
    downloaded = 0
    for entry in entries:
        address = entry.get("sha256")
        if address is None or address in blobs or address in corrupted:
            if address in corrupted:
                corrupted[address].append(entry["path"])
            continue
        data = store.get_object(address)
        downloaded += len(data)
        if hashlib.sha256(data).hexdigest() != address:
            corrupted[address] = [entry["path"]]
            continue
        blobs[address] = _b64(data)
    if corrupted:
        named = "; ".join(f"object {a} ({', '.join(paths)})" for a, paths in corrupted.items())
        raise CloudError(f"{plan.name}: checksum mismatch, corrupted in the bucket: {named}; nothing was restored")
    keys = {}
    for key_id in sorted({e["key_id"] for e in entries if e.get("encrypted")}):
        keys[key_id] = _b64(unwrap(store.get_key(key_id)))
    stop, start, restart = units_for_restore(plan, entries)
    answer = transport.call({"op": "restore", "root": transport.host_root, "keys": keys, "entries": entries,
                             "blobs": blobs, "stop": stop, "start": start, "restart": restart})  # fmt: skip
    return RestoreReport(
        host=plan.name,
        manifest=manifest_key,
        written=answer["written"],
        restarted=answer["restarted"],
        downloaded_bytes=downloaded,
        seconds=time.monotonic() - started,
    )
