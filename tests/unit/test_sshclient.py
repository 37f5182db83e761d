"""The inventory's `ssh:` host-key settings mean one thing for every client (mevfleet.sshclient), checked
against a real SSH server on loopback (paramiko's server side: key exchange, host key, public-key login)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from mevfleet.inventory import Host, Ssh
from mevfleet.sshclient import _AcceptNew, _policy, connect, host_key_checking, known_hosts_file


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
    ssh = Ssh(**settings)
    assert host_key_checking(ssh) == checking
    assert type(_policy(ssh)) is policy


def test_the_known_hosts_file_is_the_fleets_or_the_users() -> None:
    assert known_hosts_file(Ssh(known_hosts="/fleet/known_hosts")) == Path("/fleet/known_hosts")
    assert known_hosts_file(Ssh()) == Path.home() / ".ssh" / "known_hosts"


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


def _host(server: _Server, key_file: str, **ssh: object) -> Host:
    # Only what a connection reads; the rest of a resolved host does not matter here.
    return Host.model_construct(name="h1", address="127.0.0.1", ssh=Ssh(port=server.port, key=key_file, **ssh))


def _logged_in(host: Host) -> bool:
    client = connect(host, timeout=5)
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


SETTINGS = [
    ({"known_hosts": "KNOWN"}, "yes"),
    ({"known_hosts": "KNOWN", "strict_host_keys": False}, "yes"),
    ({}, "accept-new"),
    ({"strict_host_keys": False}, "no"),
]


@pytest.mark.parametrize(("settings", "checking"), SETTINGS)
def test_every_client_takes_the_one_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict, checking: str
) -> None:
    """The pyinfra engine, the Ansible hand-off and the OpenSSH client Ansible runs (asked with `ssh -G`,
    which prints the options it would use) all read sshclient.host_key_checking; status/upgrade/rollback,
    backups and `mevfleet verify` connect with sshclient.connect itself."""
    import json
    import shlex
    import subprocess

    from mevfleet.ansible_engine.handoff import connection_vars
    from mevfleet.engine.run import pyinfra_inventory
    from mevfleet.inventory import parse_inventory
    from mevfleet.sshclient import openssh_options

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fleet_file = tmp_path / "fleet.known_hosts"
    fleet_file.write_text("")
    ssh = {k: str(fleet_file) if v == "KNOWN" else v for k, v in settings.items()}
    text = f"hosts: {{h1: {{address: 10.0.0.7, chains: [bsc], ssh: {json.dumps(ssh)}}}}}"
    inventory = parse_inventory(text, "f.yml")
    spec = inventory.hosts["h1"]
    assert host_key_checking(spec.ssh) == checking
    assert pyinfra_inventory(inventory, ["h1"]).get_host("h1").data.ssh_strict_host_key_checking == checking

    args = shlex.split(connection_vars(spec)["ansible_ssh_common_args"])
    options = openssh_options(spec.ssh)
    assert args[: len(options)] == options
    effective = subprocess.run(["ssh", "-G", "-F", "/dev/null", *args, "10.0.0.7"], capture_output=True, text=True)
    config = dict(line.split(" ", 1) for line in effective.stdout.splitlines())
    known = str(known_hosts_file(spec.ssh))
    assert (config["stricthostkeychecking"], config["userknownhostsfile"]) == {
        "yes": ("true", known),
        "accept-new": ("accept-new", known),
        # OpenSSH's own "no" would pin and let a changed key in: new keys go to /dev/null instead.
        "no": ("accept-new", f"/dev/null {known}"),
    }[checking]


def _openssh(server: _Server, user_file: str, ssh: Ssh) -> str:
    """What the OpenSSH client (the Ansible engine's transport) says when it connects with our options."""
    import subprocess

    from mevfleet.sshclient import openssh_options

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
    assert "Host key verification failed" in _openssh(server, user_file, Ssh(known_hosts=str(fleet)))

    user_known = tmp_path / "home" / ".ssh" / "known_hosts"
    user_known.parent.mkdir(parents=True)
    user_known.write_text("")
    assert "Authenticated to 127.0.0.1" in _openssh(server, user_file, Ssh(strict_host_keys=False))
    assert user_known.read_text() == ""  # not pinned

    assert "Authenticated to 127.0.0.1" in _openssh(server, user_file, Ssh())
    assert paramiko.HostKeys(str(user_known)).lookup(entry) == {host_key.get_name(): host_key}  # pinned

    other = paramiko.Ed25519Key.from_private_key_file(_ed25519(tmp_path, "other"))
    changed = paramiko.HostKeys()
    changed.add(entry, other.get_name(), other)
    changed.save(str(user_known))
    said = _openssh(server, user_file, Ssh(strict_host_keys=False))
    assert "Authenticated to" not in said and "REMOTE HOST IDENTIFICATION HAS CHANGED" in said
