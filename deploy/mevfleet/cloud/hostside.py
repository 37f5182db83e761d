"""The part of `mevfleet backup`/`restore` that runs ON a fleet host.

Sent over SSH and run by the host's own python3 (stdlib + Debian's python3-cryptography, a base package
of every host), so no mevfleet code is installed there. It reads one JSON request on stdin and writes one
JSON answer on stdout. It never writes a secret's value to stdout, stderr or a message: secrets leave the
host only as ciphertext (AES-256-GCM under the host's data key; the data key is wrapped by KMS or by the
operator's public key on the control machine, and only the wrapped form is stored).

Encryption is deterministic per data key (the nonce is an HMAC of the plaintext), so an unchanged secret
gives the same ciphertext, hence the same content address, and is not uploaded twice. Equal plaintexts
are the only thing that reveals, and only to someone who can read the bucket.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import io
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request

MAGIC = b"MFB1"
PRODUCED = "produced:"  # entry paths of things made by a producer (pg_dump, Prometheus snapshot)


class HostError(Exception):
    """Reported to the control machine as {"error": ...}; the text names paths, never contents."""


# --- envelope ---------------------------------------------------------------------------------------


def _subkeys(data_key: bytes) -> tuple[bytes, bytes]:
    enc = hmac.new(data_key, b"mevfleet-backup v1 encryption", hashlib.sha256).digest()
    nonce = hmac.new(data_key, b"mevfleet-backup v1 nonce", hashlib.sha256).digest()
    return enc, nonce


def encrypt(data_key: bytes, key_id: str, plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    enc, nonce_key = _subkeys(data_key)
    nonce = hmac.new(nonce_key, plaintext, hashlib.sha256).digest()[:12]
    return MAGIC + nonce + AESGCM(enc).encrypt(nonce, plaintext, key_id.encode())


def decrypt(data_key: bytes, key_id: str, blob: bytes, what: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(MAGIC):
        raise HostError(f"{what}: not a mevfleet encrypted object")
    enc, _ = _subkeys(data_key)
    try:
        return AESGCM(enc).decrypt(blob[4:16], blob[16:], key_id.encode())
    except InvalidTag:
        problem = "wrong key, or the object was altered"
        raise HostError(f"{what}: does not decrypt with data key {key_id} ({problem})") from None


# --- helpers ------------------------------------------------------------------------------------------


def _real(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/")) if root != "/" else path


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


# --- the host's data key -----------------------------------------------------------------------------


def _host_key(req: dict) -> dict:
    """The data key this host encrypts with: the stored one if it was wrapped the way the operator asks
    now, else the candidate the control machine sent (stored 0600 for the next runs)."""
    path = _real(req["root"], req["key_file"])
    candidate = req["key_candidate"]
    try:
        with open(path) as f:
            stored = json.load(f)
        if stored.get("wrap_id") == candidate["wrap_id"]:
            return stored
    except (OSError, ValueError):
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(candidate, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return candidate


# --- backup -------------------------------------------------------------------------------------------


def _classify(items: list[dict]) -> list[tuple[str, str]]:
    """(path, kind) per item, longest path first: a file takes the kind of the deepest item above it."""
    return sorted(((i["path"].rstrip("/") or "/", i["kind"]) for i in items), key=lambda p: -len(p[0]))


def _kind(path: str, classes: list[tuple[str, str]]) -> str:
    for prefix, kind in classes:
        if path == prefix or path.startswith(prefix + "/"):
            return kind
    return "config"


def _walk(root: str, path: str, skip: set[str]):
    real = _real(root, path)
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return
    if path in skip:
        return
    yield path, real, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(real)):
            yield from _walk(root, path.rstrip("/") + "/" + name, skip)


def _entry(path: str, st: os.stat_result, kind: str) -> dict:
    return {
        "path": path,
        "kind": kind,
        "mode": stat.S_IMODE(st.st_mode),
        "owner": _owner(st.st_uid),
        "group": _group(st.st_gid),
    }


def backup(req: dict) -> dict:
    key = _host_key(req)
    data_key, key_id = _unb64(key["data_key"]), key["key_id"]
    known = set(req["known"])
    classes = _classify(req["items"])
    skip = {req["key_file"], req["key_file"] + ".tmp"}
    entries, blobs, seen, missing = [], {}, set(), []

    def store(entry: dict, content: bytes, secret: bool) -> None:
        blob = encrypt(data_key, key_id, content) if secret else content
        address = _sha(blob)
        entry.update(size=len(content), sha256=address, encrypted=secret)
        if secret:
            entry["key_id"] = key_id
        if address not in known and address not in blobs:
            blobs[address] = _b64(blob)

    for item in req["items"]:
        found = False
        for path, real, st in _walk(req["root"], item["path"], skip):
            found = True
            if path in seen:
                continue
            seen.add(path)
            kind = _kind(path, classes)
            entry = _entry(path, st, kind)
            if stat.S_ISDIR(st.st_mode):
                entry["type"] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                entry.update(type="link", target=os.readlink(real))
            elif stat.S_ISREG(st.st_mode):
                entry["type"] = "file"
                with open(real, "rb") as f:
                    store(entry, f.read(), kind == "secret")
            else:
                continue  # sockets, fifos: runtime objects, not state
            entries.append(entry)
        if not found:
            missing.append(item["path"])

    skipped = []
    for producer in req.get("producers", []):
        made = PRODUCERS[producer["name"]][0](req["root"], producer)
        if isinstance(made, str):
            skipped.append({"source": producer["name"], "reason": made})
            continue
        entry = {"path": PRODUCED + producer["name"], "kind": "state", "type": "produced", "mode": 0o600,
                 "owner": "root", "group": "root", "producer": producer}  # fmt: skip
        store(entry, made, producer.get("encrypt", True))
        entries.append(entry)
    return {
        "key": {k: key[k] for k in ("key_id", "wrap_id", "wrapped")},
        "entries": entries,
        "blobs": blobs,
        "missing": missing,
        "skipped": skipped,
    }


# --- producers: (make, restore); make returns bytes, or a str saying why it was skipped ------------------


def _pg(spec: dict, tool: str, *args: str) -> list[str]:
    """A PostgreSQL client command as the postgres system user (peer authentication on the local socket,
    the only way the control host's pg_hba.conf lets `postgres` in: no password anywhere), on the planned
    port, or on the socket directory and port the request names."""
    where = [
        *(["-h", spec["host"]] if spec.get("host") else []),
        *(["-p", str(spec["port"])] if spec.get("port") else []),
    ]
    return ["runuser", "-u", "postgres", "--", tool, *where, "-U", spec.get("user") or "postgres", *args]


def _pg_dump(root: str, spec: dict) -> bytes | str:
    if root != "/" and not spec.get("host"):
        return "PostgreSQL dumps are taken on a live host only"
    if shutil.which("pg_dump") is None:
        return "no PostgreSQL on this host (pg_dump not installed): the control plane database is not here"
    database = spec["database"]
    listed = subprocess.run(
        _pg(spec, "psql", "-XAt", "-d", "postgres", "-c", "SELECT datname FROM pg_database"),
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        return "PostgreSQL does not answer on this host: the control plane database is not here"
    if database not in listed.stdout.split():
        return f"no database {database!r} on this host"
    dump = subprocess.run(_pg(spec, "pg_dump", "-Fc", "-d", database), capture_output=True)
    if dump.returncode != 0:
        raise HostError(f"pg_dump {database} failed with exit {dump.returncode}")
    return dump.stdout


def _pg_restore(root: str, spec: dict, content: bytes) -> None:
    db = spec["database"]
    # --create with --clean: the database is dropped (its client, mevcontrol, is stopped) and made again
    # as it was, with its owner and settings; connecting to `postgres` to do so.
    command = _pg(spec, "pg_restore", "--clean", "--if-exists", "--create", "-d", "postgres")
    done = subprocess.run(command, input=content, capture_output=True)
    if done.returncode != 0:
        raise HostError(f"pg_restore {db} failed with exit {done.returncode}")
    if spec.get("dsn_file"):
        _role_password_from_dsn(root, spec)


def _scram_verifier(password: str) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of a password (RFC 5802/7677): the server is given this, never
    the password, so not even a statement log can hold it."""
    salt, iterations = os.urandom(16), 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored)}:{_b64(server)}"


def _role_password_from_dsn(root: str, spec: dict) -> None:
    """A dump holds no role passwords, and a freshly deployed host made a new one: the role gets back the
    password of the restored DSN file, so the control plane logs in with what was restored."""
    try:
        with open(_real(root, spec["dsn_file"])) as f:
            password = urllib.parse.urlsplit(f.read().strip()).password
    except (OSError, ValueError):
        return  # no DSN restored: the deploy's own password stands
    role = spec["role"]
    if not password or not re.match(r"^[a-z_][a-z0-9_]*$", role):
        return
    sql = f"ALTER ROLE \"{role}\" PASSWORD '{_scram_verifier(urllib.parse.unquote(password))}'"
    command = _pg(spec, "psql", "-Xq", "-v", "ON_ERROR_STOP=1", "-d", "postgres")
    done = subprocess.run(command, input=sql.encode(), capture_output=True)
    if done.returncode != 0:
        raise HostError(f"setting role {role}'s password from {spec['dsn_file']} failed with exit {done.returncode}")


def _prometheus_snapshot(root: str, spec: dict) -> bytes | str:
    defaults = _real(root, "/etc/default/prometheus")
    try:
        with open(defaults) as f:
            enabled = "--web.enable-admin-api" in f.read()
    except OSError:
        return "no Prometheus on this host"
    if not enabled:
        return "Prometheus's admin API is off (--web.enable-admin-api): no TSDB snapshot"
    request = urllib.request.Request(f"{spec['url']}/api/v1/admin/tsdb/snapshot", method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        name = json.load(answer)["data"]["name"]
    directory = os.path.join(_real(root, spec["data_dir"]), "snapshots", name)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=".")
    shutil.rmtree(directory, ignore_errors=True)  # the snapshot lives on in the backup, not on the disk
    return buffer.getvalue()


def _plain_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and directories inside the target only (Debian 12's Python has no extraction filter)."""
    members = []
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise HostError(f"Prometheus snapshot: refusing archive member {member.name!r}")
        members.append(member)
    return members


def _prometheus_restore(root: str, spec: dict, content: bytes) -> None:
    data_dir = _real(root, spec["data_dir"])
    target = os.path.join(data_dir, "snapshots", "restored")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target, mode=0o750)
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as tar:
        tar.extractall(target, members=_plain_members(tar))
    # Prometheus opens the blocks at start: the restore's unit handling restarts it after the files.
    for name in os.listdir(target):
        destination = os.path.join(data_dir, name)
        if os.path.exists(destination):
            shutil.rmtree(destination, ignore_errors=True)
        shutil.move(os.path.join(target, name), destination)
    shutil.rmtree(target, ignore_errors=True)
    if root == "/":
        subprocess.run(["chown", "-R", "prometheus:prometheus", data_dir], check=False)


PRODUCERS = {
    "pg_dump": (_pg_dump, _pg_restore),
    "prometheus": (_prometheus_snapshot, _prometheus_restore),
}


# --- restore ------------------------------------------------------------------------------------------


def _ids(entry: dict) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(entry["owner"]).pw_uid
        gid = grp.getgrnam(entry["group"]).gr_gid
    except KeyError:
        raise HostError(
            f"{entry['path']}: user {entry['owner']} or group {entry['group']} does not exist here (deploy first)"
        ) from None
    return uid, gid


def _write(real: str, content: bytes, entry: dict) -> None:
    uid, gid = _ids(entry)
    tmp = f"{real}.mevfleet-restore"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, uid, gid)
    os.chmod(tmp, entry["mode"])
    os.replace(tmp, real)


def _systemctl(root: str, *args: str) -> int:
    if root != "/":
        return 1  # a file tree, not a running host: there are no units to stop or start
    return subprocess.run(["systemctl", *args], capture_output=True).returncode


def restore(req: dict) -> dict:
    root = req["root"]
    keys = {k: _unb64(v) for k, v in req["keys"].items()}
    contents: dict[str, bytes] = {}
    # Everything is checked and decrypted before the first write: a bad object or key changes nothing.
    for entry in req["entries"]:
        if entry["type"] not in ("file", "produced"):
            continue
        blob = _unb64(req["blobs"][entry["sha256"]])
        if _sha(blob) != entry["sha256"]:
            raise HostError(f"{entry['path']}: checksum mismatch (object {entry['sha256']} is corrupted)")
        if entry["encrypted"]:
            if entry["key_id"] not in keys:
                raise HostError(f"{entry['path']}: data key {entry['key_id']} was not provided")
            blob = decrypt(keys[entry["key_id"]], entry["key_id"], blob, entry["path"])
        contents[entry["path"]] = blob
    for entry in req["entries"]:
        if entry["type"] == "dir":
            _ids(entry)
    for entry in req["entries"]:
        if entry["type"] == "file":
            _ids(entry)

    for unit in req.get("stop", []):
        _systemctl(root, "stop", unit)
    written = 0
    for entry in req["entries"]:
        real = _real(root, entry["path"])
        if entry["type"] == "dir":
            os.makedirs(real, exist_ok=True)
            os.chown(real, *_ids(entry))
            os.chmod(real, entry["mode"])
        elif entry["type"] == "link":
            if os.path.lexists(real):
                os.remove(real)
            os.symlink(entry["target"], real)
        elif entry["type"] == "file":
            os.makedirs(os.path.dirname(real), exist_ok=True)
            _write(real, contents[entry["path"]], entry)
        elif entry["type"] == "produced":
            PRODUCERS[entry["producer"]["name"]][1](root, entry["producer"], contents[entry["path"]])
        written += 1
    restarted = []
    for unit in req.get("start", []):
        if _systemctl(root, "start", unit) == 0:
            restarted.append(unit)
    for unit in req.get("restart", []):
        if _systemctl(root, "try-restart", unit) == 0:
            restarted.append(unit)
    return {"written": written, "restarted": restarted}


def mark(req: dict) -> dict:
    """Write a small file atomically (the node_exporter textfile with the last good backup's time)."""
    real = _real(req["root"], req["path"])
    if not os.path.isdir(os.path.dirname(real)):
        return {"written": False}
    tmp = real + ".tmp"
    with open(tmp, "w") as f:
        f.write(req["text"])
    os.chmod(tmp, 0o644)
    os.replace(tmp, real)
    return {"written": True}


OPS = {"backup": backup, "restore": restore, "mark": mark}


def main() -> None:
    req = json.loads(sys.stdin.read())
    try:
        answer = OPS[req["op"]](req)
    except HostError as exc:
        answer = {"error": str(exc)}
    except OSError as exc:
        # The path, never the content; strerror carries no data.
        answer = {"error": f"{exc.filename or 'file'}: {exc.strerror}"}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
