"""SSH connection data is planned once (mevfleet.ssh.ssh_plan: the host plan's SshPlan) and means one thing
for every client (mevfleet.sshclient): the pyinfra engine, the Ansible engine (OpenSSH), status/upgrade/
rollback and backups (sshclient.connect) and `mevfleet verify` (testinfra). Each client's settings are read
back through that client's own code (pyinfra's connector, paramiko's client, testinfra's backend, `ssh -G`),
and the host-key rules are checked against a real SSH server on loopback (paramiko's server side: key
exchange, host key, public-key login)."""

from __future__ import annotations

import ast
import json
import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import paramiko
import pytest

from mevfleet import REPO_ROOT
from mevfleet.engine.run import pyinfra_inventory
from mevfleet.inventory import Host, Ssh, parse_inventory
from mevfleet.model import FleetPlan, HostPlan, SshPlan
from mevfleet.plan import compile_plan
from mevfleet.render import PLAN_FILE, HostFacts, host_files
from mevfleet.ssh import host_key_checking, ssh_plan
from mevfleet.sshclient import (
    _AcceptNew,
    _policy,
    ansible_vars,
    connect,
    known_hosts_file,
    openssh_options,
    pyinfra_config,
    verify_host,
)


def _plan(address: str = "10.0.0.7", **ssh: object) -> SshPlan:
    # Only what the ssh concern reads; the rest of a resolved host does not matter here.
    return ssh_plan(Host.model_construct(name="h1", address=address, ssh=Ssh(**ssh)))


@pytest.mark.parametrize(
    ("settings", "checking", "policy"),
    [
        ({"known_hosts": "/fleet/known_hosts"}, "yes", paramiko.RejectPolicy),
        ({"known_hosts": "/fleet/known_hosts", "strict_host_keys": False}, "yes", paramiko.RejectPolicy),
        ({}, "accept-new", _AcceptNew),
        ({"strict_host_keys": False}, "no", paramiko.WarningPolicy),
    ],
)
def test_the_fleet_file_is_strict_and_otherwise_strict_host_keys_pins_on_first_use(
    settings: dict, checking: str, policy: type
) -> None:
    assert host_key_checking(Ssh(**settings)) == checking
    plan = _plan(**settings)
    assert plan.host_key_checking == checking
    assert type(_policy(plan)) is policy


def test_the_known_hosts_file_is_the_fleets_or_the_users() -> None:
    assert known_hosts_file(_plan(known_hosts="/fleet/known_hosts")) == Path("/fleet/known_hosts")
    assert known_hosts_file(_plan()) == Path.home() / ".ssh" / "known_hosts"


def test_accept_new_pins_an_unknown_key_that_a_later_client_then_checks(tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "known_hosts"
    key = paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path))
    client = paramiko.SSHClient()
    _AcceptNew(path).missing_host_key(client, "[10.0.0.7]:2222", key)

    pinned = paramiko.HostKeys(str(path))
    assert pinned.lookup("[10.0.0.7]:2222") == {"ssh-ed25519": key}
    assert client.get_host_keys().lookup("[10.0.0.7]:2222") == {"ssh-ed25519": key}
    # A second host is appended, the first one kept.
    other = paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "other"))
    _AcceptNew(path).missing_host_key(paramiko.SSHClient(), "10.0.0.8", other)
    pinned = paramiko.HostKeys(str(path))
    assert pinned.lookup("[10.0.0.7]:2222") == {"ssh-ed25519": key}
    assert pinned.lookup("10.0.0.8") == {"ssh-ed25519": other}


def _ed25519(directory: Path, name: str = "host") -> str:
    """A fresh ed25519 host key (paramiko cannot generate one; cryptography writes the OpenSSH format)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = directory / f"{name}_ed25519"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    return str(path)


class _Login(paramiko.ServerInterface):
    def __init__(self, user_key: paramiko.PKey) -> None:
        self.user_key = user_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.user_key else paramiko.AUTH_FAILED


class _Server:
    """An SSH server on a loopback port presenting `host_key` and letting in `user_key` only."""

    def __init__(self, host_key: paramiko.PKey, user_key: paramiko.PKey) -> None:
        self.host_key, self.user_key = host_key, user_key
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_Login(self.user_key))
            except (paramiko.SSHException, EOFError):
                transport.close()

    def close(self) -> None:
        self.sock.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, paramiko.PKey, paramiko.PKey]:
    user = _ed25519(tmp_path, "user")
    return (
        user,
        paramiko.Ed25519Key.from_private_key_file(user),
        paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "server")),
    )


@pytest.fixture
def server(keys: tuple[str, paramiko.PKey, paramiko.PKey]) -> Iterator[_Server]:
    _, user_key, host_key = keys
    running = _Server(host_key, user_key)
    yield running
    running.close()


def _host(server: _Server, key_file: str, **ssh: object) -> SshPlan:
    return _plan("127.0.0.1", port=server.port, key=key_file, **ssh)


def _logged_in(ssh: SshPlan) -> bool:
    client = connect(ssh, timeout=5)
    try:
        return client.get_transport().is_authenticated()
    finally:
        client.close()


def test_the_fleet_known_hosts_lets_in_its_host_and_refuses_one_it_does_not_list(
    tmp_path: Path, keys: tuple[str, paramiko.PKey, paramiko.PKey], server: _Server
) -> None:
    user_file, _, host_key = keys
    fleet = tmp_path / "fleet.known_hosts"
    listed = paramiko.HostKeys()
    listed.add(f"[127.0.0.1]:{server.port}", host_key.get_name(), host_key)
    listed.save(str(fleet))
    assert _logged_in(_host(server, user_file, known_hosts=str(fleet)))

    fleet.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _logged_in(_host(server, user_file, known_hosts=str(fleet)))
    assert fleet.read_text() == ""  # never pinned into the fleet's file


def test_strict_host_keys_pins_on_first_use_and_then_refuses_a_changed_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[str, paramiko.PKey, paramiko.PKey], server: _Server
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    user_file, user_key, host_key = keys
    host = _host(server, user_file)
    assert _logged_in(host)
    pinned = paramiko.HostKeys(str(tmp_path / "home" / ".ssh" / "known_hosts"))
    assert pinned.lookup(f"[127.0.0.1]:{server.port}") == {host_key.get_name(): host_key}
    assert _logged_in(host)  # the pinned key matches

    # Another key answers where the pinned host was (its entry says the first key).
    impostor = _Server(paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "impostor")), user_key)
    pinned.add(f"[127.0.0.1]:{impostor.port}", host_key.get_name(), host_key)
    pinned.save(str(tmp_path / "home" / ".ssh" / "known_hosts"))
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            _logged_in(_host(impostor, user_file))
        # Not strict: an unknown host is let in and not pinned.
        fresh = _Server(paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "fresh")), user_key)
        try:
            assert _logged_in(_host(fresh, user_file, strict_host_keys=False))
            known = paramiko.HostKeys(str(tmp_path / "home" / ".ssh" / "known_hosts"))
            assert known.lookup(f"[127.0.0.1]:{fresh.port}") is None
        finally:
            fresh.close()
    finally:
        impostor.close()


def _openssh(server: _Server, user_file: str, ssh: SshPlan) -> str:
    """What the OpenSSH client (the Ansible engine's transport) says when it connects with our options."""
    Path(user_file).chmod(0o600)
    command = ["ssh", "-v", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null"]
    command += [*openssh_options(ssh), "-i", user_file, "-p", str(server.port), "root@127.0.0.1", "true"]
    return subprocess.run(command, capture_output=True, text=True, timeout=20).stderr


def test_openssh_with_our_options_means_what_paramiko_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[str, paramiko.PKey, paramiko.PKey], server: _Server
) -> None:
    """Against a real SSH server on loopback: the fleet file refuses an unknown host; strict pins on first
    use; not strict lets an unknown host in without pinning it and still refuses a changed key."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    user_file, _, host_key = keys
    entry = f"[127.0.0.1]:{server.port}"
    fleet = tmp_path / "fleet.known_hosts"
    fleet.write_text("")
    assert "Host key verification failed" in _openssh(server, user_file, _plan(known_hosts=str(fleet)))

    user_known = tmp_path / "home" / ".ssh" / "known_hosts"
    user_known.parent.mkdir(parents=True)
    user_known.write_text("")
    assert "Authenticated to 127.0.0.1" in _openssh(server, user_file, _plan(strict_host_keys=False))
    assert user_known.read_text() == ""  # not pinned

    assert "Authenticated to 127.0.0.1" in _openssh(server, user_file, _plan())
    assert paramiko.HostKeys(str(user_known)).lookup(entry) == {host_key.get_name(): host_key}  # pinned

    other = paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "other"))
    changed = paramiko.HostKeys()
    changed.add(entry, other.get_name(), other)
    changed.save(str(user_known))
    said = _openssh(server, user_file, _plan(strict_host_keys=False))
    assert "Authenticated to" not in said and "REMOTE HOST IDENTIFICATION HAS CHANGED" in said


class Meaning(NamedTuple):
    """What a client does with a plan, in one shape for every client."""

    address: str
    port: int
    user: str
    key: str | None  # the one key offered (expanded); None: the user's own keys in ~/.ssh
    agent: bool  # an SSH agent's keys offered too
    checking: str  # OpenSSH's StrictHostKeyChecking as the client behaves: yes, accept-new or no
    known_hosts: str  # the file host keys are read from (accept-new: and pinned into)
    sudo: bool


def _expected(ssh: SshPlan) -> Meaning:
    key = os.path.expanduser(ssh.key) if ssh.key else None
    known = os.path.expanduser(ssh.known_hosts)
    return Meaning(ssh.address, ssh.port, ssh.user, key, False, ssh.host_key_checking, known, ssh.user != "root")


def _pyinfra(ssh: SshPlan) -> Meaning:
    """The connection pyinfra's own SSH connector makes of the engine's host data (no connection opened)."""
    from pyinfra.api import Config, State
    from pyinfra.connectors.sshuserclient import client as pyinfra_client

    fleet = FleetPlan.model_construct(inventory="f.yml", hosts={"h1": HostPlan.model_construct(name="h1", ssh=ssh)})
    inventory = pyinfra_inventory(fleet, ["h1"])
    State(inventory=inventory, config=Config(**pyinfra_config()))
    host = inventory.get_host("h1")
    kwargs = host.connector.make_paramiko_kwargs()
    # pyinfra's client resolves the policy and the host-key files from these (and from an ssh config file,
    # which must be none: the one the data names is empty).
    _, config, _, policy, files, _, _ = pyinfra_client.SSHClient().parse_config(
        kwargs["hostname"],
        {k: v for k, v in kwargs.items() if not k.startswith("_")},
        ssh_config_file=kwargs["_pyinfra_ssh_config_file"],
        strict_host_key_checking=kwargs["_pyinfra_ssh_strict_host_key_checking"],
    )
    assert kwargs["_pyinfra_ssh_config_file"] == os.devnull
    if kwargs["_pyinfra_ssh_known_hosts_file"]:
        files = (os.path.expanduser(kwargs["_pyinfra_ssh_known_hosts_file"]),)
    checking = {
        pyinfra_client.StrictPolicy: "yes",
        pyinfra_client.AcceptNewPolicy: "accept-new",
        pyinfra_client.WarningPolicy: "no",
    }[type(policy)]
    pkey = kwargs.get("pkey")
    key = None
    if pkey is not None:
        # The key pyinfra loaded is the plan's key file.
        assert pkey == paramiko.Ed25519Key.from_private_key_file(os.path.expanduser(ssh.key))
        key = os.path.expanduser(ssh.key)
    else:
        assert kwargs["look_for_keys"]
    assert config["timeout"] == 10
    return Meaning(
        kwargs["hostname"], config["port"], config["username"], key, kwargs["allow_agent"], checking, files[0],
        bool(host.data.get("_sudo")),
    )  # fmt: skip


def _paramiko_meaning(client: paramiko.SSHClient, called: dict) -> Meaning:
    policy = client._policy
    checking = {paramiko.RejectPolicy: "yes", _AcceptNew: "accept-new", paramiko.WarningPolicy: "no"}[type(policy)]
    known = client._host_keys_filename
    if isinstance(policy, _AcceptNew):
        assert str(policy.path) == known  # pins where it reads
    if called["key_filename"] is None:
        assert called["look_for_keys"]
    else:
        assert not called["look_for_keys"]
    return Meaning(
        called["hostname"], called["port"], called["username"], called["key_filename"], called["allow_agent"],
        checking, known, False,
    )  # fmt: skip


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple[paramiko.SSHClient, dict]]:
    """paramiko's connect() recorded instead of run: what each client asks for, without a server."""
    calls: list[tuple[paramiko.SSHClient, dict]] = []

    def record(self: paramiko.SSHClient, hostname: str, **kwargs: object) -> None:
        calls.append((self, {"hostname": hostname, **kwargs}))

    monkeypatch.setattr(paramiko.SSHClient, "connect", record)
    return calls


def _paramiko(ssh: SshPlan, calls: list) -> Meaning:
    client = connect(ssh)
    assert calls[-1][0] is client
    return _paramiko_meaning(*calls[-1])._replace(sudo=ssh.sudo)


def _testinfra(ssh: SshPlan, calls: list) -> Meaning:
    target = verify_host(ssh)
    backend = target.backend
    client, called = calls[-1]
    assert backend.client is client  # testinfra runs its commands over the client connect() made
    meaning = _paramiko_meaning(client, called)
    # testinfra's own idea of the host agrees with the client it was given.
    assert (backend.host.name, int(backend.host.port), backend.host.user) == meaning[:3]
    return meaning._replace(sudo=bool(backend.sudo))


def _ansible(ssh: SshPlan) -> Meaning:
    """The options the OpenSSH client ends with when Ansible's ssh connection plugin runs it with the engine's
    host vars (the plugin passes port, user, key and timeout as -o options, then ansible_ssh_common_args),
    as `ssh -G` prints them."""
    got = ansible_vars(ssh)
    assert got["ansible_host_key_checking"] is True
    command = ["ssh", "-G"]
    if "ansible_ssh_private_key_file" in got:
        command += ["-o", f'IdentityFile="{got["ansible_ssh_private_key_file"]}"']
    command += ["-o", f"Port={got['ansible_port']}", "-o", f"User={got['ansible_user']}"]
    command += ["-o", f"ConnectTimeout={got['ansible_ssh_timeout']}", *shlex.split(got["ansible_ssh_common_args"])]
    effective = subprocess.run([*command, got["ansible_host"]], capture_output=True, text=True, check=True).stdout
    config: dict[str, list[str]] = {}
    for line in effective.splitlines():
        name, _, value = line.partition(" ")
        config.setdefault(name, []).append(value)
    assert config["connecttimeout"] == ["10"]
    files = config["userknownhostsfile"][0].split()
    checking = {"true": "yes", "accept-new": "accept-new"}[config["stricthostkeychecking"][0]]
    if files[0] == "/dev/null":  # accept-new pinning nowhere: OpenSSH's meaning of our "no"
        checking, files = "no", files[1:]
    only = config["identitiesonly"] == ["yes"]
    key = config["identityfile"][0] if only else None
    if not only:
        assert "ansible_ssh_private_key_file" not in got
    return Meaning(
        config["hostname"][0], int(config["port"][0]), config["user"][0], key,
        config.get("identityagent") != ["none"], checking, files[0], bool(got.get("ansible_become")),
    )  # fmt: skip


CASES = [
    # (inventory `ssh:` settings, what every client must do)
    ({"known_hosts": "~/fleet.known_hosts"}, ("yes", 22, "root", None)),
    ({"known_hosts": "~/fleet.known_hosts", "strict_host_keys": False, "key": "~/id"}, ("yes", 22, "root", "~/id")),
    ({}, ("accept-new", 22, "root", None)),
    ({"port": 2200, "user": "deploy", "key": "~/id"}, ("accept-new", 2200, "deploy", "~/id")),
    ({"strict_host_keys": False, "port": 2222, "user": "admin"}, ("no", 2222, "admin", None)),
    ({"strict_host_keys": False, "key": "~/id"}, ("no", 22, "root", "~/id")),
]


@pytest.mark.parametrize(("settings", "want"), CASES)
def test_one_plan_means_the_same_connection_to_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list, settings: dict, want: tuple
) -> None:
    """pyinfra, Ansible's OpenSSH, sshclient.connect and testinfra: address, port, user, key (the one key,
    or the user's own keys; never an agent's), host-key rule and file, sudo, all from the one SshPlan."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("")
    (home / "fleet.known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    Path(_ed25519(home, "id")).rename(home / "id")
    ssh = _plan(**settings)
    checking, port, user, key = want
    assert (ssh.host_key_checking, ssh.port, ssh.user, ssh.key) == (checking, port, user, key)

    expected = _expected(ssh)
    assert expected.known_hosts == str(home / ("fleet.known_hosts" if checking == "yes" else ".ssh/known_hosts"))
    assert {
        "pyinfra": _pyinfra(ssh),
        "ansible (openssh)": _ansible(ssh),
        "sshclient.connect": _paramiko(ssh, no_network),
        "testinfra": _testinfra(ssh, no_network),
    } == dict.fromkeys(["pyinfra", "ansible (openssh)", "sshclient.connect", "testinfra"], expected)


def _fleet_text(port: int) -> str:
    return f"defaults: {{ssh: {{port: {port}, user: admin}}}}\nhosts: {{h1: {{address: 10.0.0.7, chains: [bsc]}}}}"


def test_a_changed_inventory_port_reaches_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text("")
    for port in (22, 2222):
        ssh = compile_plan(parse_inventory(_fleet_text(port), "f.yml")).hosts["h1"].ssh
        got = {_pyinfra(ssh).port, _ansible(ssh).port, _paramiko(ssh, no_network).port}
        got.add(_testinfra(ssh, no_network).port)
        assert got == {port}


def test_the_plan_holds_the_key_path_never_the_key_and_reads_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Path(_ed25519(tmp_path, "fleet_key"))
    key.chmod(0o600)
    text = f"hosts: {{h1: {{address: 10.0.0.7, chains: [bsc], ssh: {{key: {key}, known_hosts: ~/kh}}}}}}"
    planned = []
    for home in ("/home/one", "/home/two"):
        monkeypatch.setenv("HOME", home)
        planned.append(compile_plan(parse_inventory(text, "f.yml")).model_dump_json())
    assert planned[0] == planned[1]  # `~` is the control machine's at connection time, not the planner's
    ssh = json.loads(planned[0])["hosts"]["h1"]["ssh"]
    # Every field reviewed: a new one must be a connection setting, never key material.
    assert ssh == {
        "address": "10.0.0.7", "port": 22, "user": "root", "key": str(key), "host_key_checking": "yes",
        "known_hosts": "~/kh",
    }  # fmt: skip
    private = paramiko.Ed25519Key.from_private_key_file(str(key))
    secret_lines = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
    for secret in [*secret_lines, private.get_base64()]:
        assert secret not in planned[0]
    # The host's own copy of its plan does not even say where the control machine keeps the key.
    plan = compile_plan(parse_inventory(text, "f.yml")).hosts["h1"]
    on_host = next(f.content for f in host_files(plan, HostFacts()) if f.path == PLAN_FILE)
    assert json.loads(on_host)["ssh"] == {"address": "10.0.0.7", "port": 22, "user": "root", "host_key_checking": "yes"}
    assert str(key) not in on_host


# The readers of SSH connection data: each reaches hosts through the plan's SshPlan, never the inventory.
READERS = [
    "deploy/mevfleet/engine/run.py",
    "deploy/mevfleet/ansible_engine/run.py",
    "deploy/mevfleet/ansible_engine/handoff.py",
    "deploy/mevfleet/nodes/ops.py",
    "deploy/mevfleet/control.py",
    "deploy/mevfleet/cloud/transport.py",
    "deploy/mevfleet/cloud/commands.py",
    "deploy/mevfleet/sshclient.py",
    "tests/verify/conftest.py",
    "tests/verify/test_drift.py",
    "bench/backup.py",
    "bench/provision.py",
]


def _inventory_ssh_reads(path: Path) -> list[str]:
    """Where a module reads a host's SSH settings from the inventory: an inventory host (`X.hosts[...]` on
    anything named inventory, as `spec = inventory.hosts[name]` was), the inventory's SSH type
    imported, or `.ssh` on anything named inventory."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        hosts = isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "hosts"
        # inventory.hosts[...], self.inventory.hosts[...], load_inventory(path).hosts[...]
        if hosts and "inventory" in ast.unparse(node.value.value).lower():
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("inventory"):
            found += [f"{path.name}:{node.lineno}: imports {a.name}" for a in node.names if a.name == "Ssh"]
        if isinstance(node, ast.Attribute) and node.attr == "ssh" and "inventory" in ast.unparse(node.value):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_readers_take_ssh_from_the_plan_not_the_inventory() -> None:
    found = [hit for name in READERS for hit in _inventory_ssh_reads(REPO_ROOT / name)]
    assert found == []


@pytest.mark.parametrize(
    "old",
    [
        "spec = inventory.hosts[name]\nport = spec.ssh.port",  # engine/run.py's pyinfra_inventory, before
        "keys = inventory_keys(inventory.hosts[n].ssh.key, inventory.hosts[n].ssh.user)",  # ansible_engine/run.py
        "client = connect(load_inventory(path).hosts[HOST])",  # tests/integration/test_backup.py
        "from ..inventory import Ssh",
        "user = self.inventory.hosts[name].ssh.user",
    ],
)
def test_the_readers_check_finds_an_inventory_read(tmp_path: Path, old: str) -> None:
    path = tmp_path / "reader.py"
    path.write_text(old + "\n")
    assert _inventory_ssh_reads(path)


def test_one_ssh_client_set_up() -> None:
    """Every client's SSH settings are made in sshclient.py: no other module of the deploy tool, the benches
    or the test worlds makes a paramiko client or says StrictHostKeyChecking to a client. The one exception
    is the devnet harness's readiness probe, which logs in before any inventory exists (its own key and
    known_hosts file, strictly)."""
    allowed = {"deploy/mevfleet/sshclient.py", "deploy/mevfleet/devnet/harness.py"}
    offending = []
    for root in ("deploy", "bench", "testbed"):
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            rel = str(path.relative_to(REPO_ROOT))
            code = path.read_text()
            if rel not in allowed and any(
                word in code for word in ("SSHClient(", "StrictHostKeyChecking=", "ssh_strict_host_key_checking")
            ):
                offending.append(rel)
    assert offending == []
    assert "import inventory" not in (REPO_ROOT / "deploy/mevfleet/sshclient.py").read_text()
    assert "from .inventory" not in (REPO_ROOT / "deploy/mevfleet/sshclient.py").read_text()


def test_pyinfra_connects_to_a_real_server_as_connect_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[str, paramiko.PKey, paramiko.PKey], server: _Server
) -> None:
    """pyinfra's connector, from the engine's host data, against the loopback server: the fleet file lets in
    the host it lists and refuses it once unlisted; not strict, it logs in and pins nothing."""
    from pyinfra.api import Config, State
    from pyinfra.api.exceptions import ConnectError

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    user_file, _, host_key = keys
    fleet_file = tmp_path / "fleet.known_hosts"
    listed = paramiko.HostKeys()
    listed.add(f"[127.0.0.1]:{server.port}", host_key.get_name(), host_key)
    listed.save(str(fleet_file))

    def pyinfra_login(ssh: SshPlan) -> None:
        fleet = FleetPlan.model_construct(inventory="f", hosts={"h1": HostPlan.model_construct(name="h1", ssh=ssh)})
        inventory = pyinfra_inventory(fleet, ["h1"])
        State(inventory=inventory, config=Config(**pyinfra_config()))
        host = inventory.get_host("h1")
        host.connector.connect()
        try:
            assert host.connector.client.get_transport().is_authenticated()
        finally:
            host.connector.client.close()

    pyinfra_login(_host(server, user_file, known_hosts=str(fleet_file)))
    assert _logged_in(_host(server, user_file, known_hosts=str(fleet_file)))
    # The same file, rewritten without the host (pyinfra alone would keep the keys it read first).
    fleet_file.write_text("")
    with pytest.raises(ConnectError):
        pyinfra_login(_host(server, user_file, known_hosts=str(fleet_file)))
    user_known = tmp_path / "home" / ".ssh" / "known_hosts"
    user_known.parent.mkdir(parents=True)
    user_known.write_text("")
    pyinfra_login(_host(server, user_file, strict_host_keys=False))
    assert user_known.read_text() == ""  # not pinned
