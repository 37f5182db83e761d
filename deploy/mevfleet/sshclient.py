"""How the control machine reaches a host over SSH: the plan's SshPlan (planned once by mevfleet.ssh from the
inventory) turned into each client's settings, here and nowhere else, so that a host's address, port,
user, key and host-key rule mean one thing for every client:

- pyinfra_host_data: the pyinfra engine's host data (its paramiko connector);
- ansible_vars: the Ansible engine's inventory variables (the OpenSSH client; openssh_options);
- connect: a paramiko client, for status/upgrade/rollback, the control plane's status, backups and the
  devnet harness;
- verify_host: `mevfleet verify`'s testinfra host, logged in through connect.

The plan's host_key_checking is OpenSSH's StrictHostKeyChecking (mevfleet.ssh says when each applies).
Paramiko clients (connect(), pyinfra) take its value as is; openssh_options() says the same to OpenSSH,
whose own "no" would differ (it pins unknown keys and lets a changed key in).

Authentication: the plan's key only, never whatever an SSH agent holds; ~/.ssh's keys only when the plan
names no key. No client reads ~/.ssh/config: what a connection does is what the plan says, the same for all.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from .model import SshPlan

if TYPE_CHECKING:
    import testinfra.host

CONNECT_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


def known_hosts_file(ssh: SshPlan) -> Path:
    """The file host keys are checked against (and, under accept-new, pinned into), on this machine."""
    return Path(os.path.expanduser(ssh.known_hosts))


def key_file(ssh: SshPlan) -> str | None:
    """The private key the plan names, expanded; None: the user's own keys in ~/.ssh."""
    return os.path.expanduser(ssh.key) if ssh.key else None


def openssh_options(ssh: SshPlan) -> list[str]:
    """The host-key rule as OpenSSH client options, with the same meaning as for the paramiko clients.

    OpenSSH's own StrictHostKeyChecking=no adds unknown keys to the known_hosts file and connects to a host
    whose key changed; "no" here means accepted with a warning, not pinned, a changed key refused. So
    "no" is accept-new whose new keys go to /dev/null: the user's file is still read (a changed key is
    refused) and never written."""
    known = str(known_hosts_file(ssh))
    match ssh.host_key_checking:
        case "yes":
            return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}"]
        case "accept-new":
            return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known}"]
        case "no":
            return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile=/dev/null {known}"]


def pyinfra_host_data(ssh: SshPlan) -> dict[str, Any]:
    """The pyinfra engine's host data (pyinfra.connectors.ssh.ConnectorData and `_sudo`)."""
    data: dict[str, Any] = {
        "ssh_hostname": ssh.address,
        "ssh_port": ssh.port,
        "ssh_user": ssh.user,
        "ssh_strict_host_key_checking": ssh.host_key_checking,
        "ssh_known_hosts_file": str(known_hosts_file(ssh)),
        # Not ~/.ssh/config (pyinfra's default): its Host entries would change where and how this one client
        # connects, and none of the others.
        "ssh_config_file": os.devnull,
        # Never fall back to whatever keys an agent or ~/.ssh holds: the plan names the key.
        "ssh_allow_agent": False,
        "ssh_look_for_keys": ssh.key is None,
        "ssh_connect_retries": 1,
    }
    if ssh.key:
        data["ssh_key"] = key_file(ssh)
    if ssh.sudo:
        data["_sudo"] = True
    return data


def pyinfra_config() -> dict[str, Any]:
    """pyinfra's state-wide settings for SSH (its connect timeout is not host data)."""
    return {"CONNECT_TIMEOUT": int(CONNECT_TIMEOUT_S)}


def ansible_vars(ssh: SshPlan) -> dict[str, Any]:
    """The Ansible engine's inventory variables for the host (its OpenSSH connection plugin)."""
    options = [
        # Not ~/.ssh/config: see pyinfra_host_data.
        "-F",
        os.devnull,
        *openssh_options(ssh),
        # Never an SSH agent's keys (as paramiko's allow_agent=False); with a key, only that key.
        "-o",
        "IdentityAgent=none",
        *(["-o", "IdentitiesOnly=yes"] if ssh.key else []),
        "-o",
        "ConnectionAttempts=1",
    ]
    out: dict[str, Any] = {
        "ansible_host": ssh.address,
        "ansible_port": ssh.port,
        "ansible_user": ssh.user,
        # Ansible splits this string with shlex: each option is quoted as one word.
        "ansible_ssh_common_args": shlex.join(options),
        # Ansible adds StrictHostKeyChecking=no ahead of the options above (OpenSSH takes the first value)
        # when host key checking is off in its environment or config: never here.
        "ansible_host_key_checking": True,
        "ansible_ssh_timeout": int(CONNECT_TIMEOUT_S),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    if ssh.key:
        out["ansible_ssh_private_key_file"] = key_file(ssh)
    if ssh.sudo:
        out["ansible_become"] = True
    return out


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """OpenSSH's accept-new: an unknown host's key is appended to the known_hosts file (a changed key never
    reaches this policy: paramiko refuses it with BadHostKeyException)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.path.open("a") as known:
            known.write(paramiko.hostkeys.HostKeyEntry([hostname], key).to_line())
        log.warning("%s: unknown host key accepted and pinned in %s", hostname, self.path)


def _policy(ssh: SshPlan) -> paramiko.MissingHostKeyPolicy:
    match ssh.host_key_checking:
        case "yes":
            return paramiko.RejectPolicy()
        case "accept-new":
            return _AcceptNew(known_hosts_file(ssh))
        case "no":
            return paramiko.WarningPolicy()


def connect(ssh: SshPlan, timeout: float = CONNECT_TIMEOUT_S) -> paramiko.SSHClient:
    """A paramiko client logged in as the plan says (address, port, user, key, host keys)."""
    client = paramiko.SSHClient()
    known = known_hosts_file(ssh)
    if ssh.host_key_checking == "yes" or known.is_file():  # the fleet's file must exist; the user's may not yet
        client.load_host_keys(str(known))
    client.set_missing_host_key_policy(_policy(ssh))
    key = key_file(ssh)
    client.connect(
        ssh.address,
        port=ssh.port,
        username=ssh.user,
        key_filename=key,
        allow_agent=False,
        look_for_keys=key is None,
        timeout=timeout,
    )
    return client


def verify_host(ssh: SshPlan) -> testinfra.host.Host:
    """`mevfleet verify`'s testinfra host: its paramiko backend, logged in by connect() (the backend itself
    takes no known_hosts file and would read ~/.ssh/config), sudo when the user is not root."""
    import testinfra

    address = f"[{ssh.address}]" if ":" in ssh.address else ssh.address
    target = testinfra.get_host(f"paramiko://{ssh.user}@{address}:{ssh.port}", sudo=ssh.sudo)
    # The backend opens its client lazily through this cached property: hand it ours instead.
    target.backend.__dict__["client"] = connect(ssh)
    return target
