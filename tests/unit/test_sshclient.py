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
