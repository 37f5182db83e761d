"""How the control machine reaches a host over SSH: one meaning of the inventory's `ssh:` settings for every
client (the pyinfra engine, status/upgrade/rollback, the control plane's and backups' commands, `mevfleet
verify`).

Host keys, in OpenSSH's terms (StrictHostKeyChecking):
- `known_hosts` set (the fleet's own file, as the devnet harness writes one): "yes", the host's key must be
  in that file; an unknown host is refused.
- otherwise `strict_host_keys: true` (the default): "accept-new" against ~/.ssh/known_hosts; an unknown
  host is accepted and its key written there (pinned for the next connection), a changed key is refused.
- `strict_host_keys: false`: "no", an unknown host is accepted with a warning and not pinned (throwaway
  hosts only); a key that differs from a known one is still refused.

Authentication: the inventory's key only, never whatever an SSH agent holds; ~/.ssh's keys only when the
inventory names no key.

host_key_checking() is the one place that decides; paramiko clients (connect(), pyinfra) take its value as
is, and openssh_options() says the same to the OpenSSH client (the Ansible engine's transport), whose own
"no" would differ (it pins unknown keys and lets a changed key in).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import paramiko

from .inventory import Host, Ssh

HostKeyChecking = Literal["yes", "accept-new", "no"]
CONNECT_TIMEOUT_S = 10.0
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

log = logging.getLogger(__name__)


def host_key_checking(ssh: Ssh) -> HostKeyChecking:
    """The inventory's host-key rule as OpenSSH's StrictHostKeyChecking value."""
    if ssh.known_hosts:
        return "yes"
    return "accept-new" if ssh.strict_host_keys else "no"


def known_hosts_file(ssh: Ssh) -> Path:
    """The file host keys are checked against (and, under accept-new, pinned into)."""
    return Path(os.path.expanduser(ssh.known_hosts or USER_KNOWN_HOSTS))


def openssh_options(ssh: Ssh) -> list[str]:
    """host_key_checking() as OpenSSH client options, with the same meaning as for the paramiko clients.

    OpenSSH's own StrictHostKeyChecking=no adds unknown keys to the known_hosts file and connects to a host
    whose key changed; "no" here means accepted with a warning, not pinned, a changed key refused. So
    "no" is accept-new whose new keys go to /dev/null: the user's file is still read (a changed key is
    refused) and never written."""
    known = str(known_hosts_file(ssh))
    match host_key_checking(ssh):
        case "yes":
            return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}"]
        case "accept-new":
            return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known}"]
        case "no":
            return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile=/dev/null {known}"]


def key_file(ssh: Ssh) -> str | None:
    """The private key the inventory names, expanded; None: the user's own keys in ~/.ssh."""
    return os.path.expanduser(ssh.key) if ssh.key else None


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


def _policy(ssh: Ssh) -> paramiko.MissingHostKeyPolicy:
    match host_key_checking(ssh):
        case "yes":
            return paramiko.RejectPolicy()
        case "accept-new":
            return _AcceptNew(known_hosts_file(ssh))
        case "no":
            return paramiko.WarningPolicy()


def connect(host: Host, timeout: float = CONNECT_TIMEOUT_S) -> paramiko.SSHClient:
    """An SSH client logged in to `host` as the inventory says (user, port, key, host keys)."""
    client = paramiko.SSHClient()
    known = known_hosts_file(host.ssh)
    if host.ssh.known_hosts or known.is_file():  # the fleet's file must exist; the user's may not yet
        client.load_host_keys(str(known))
    client.set_missing_host_key_policy(_policy(host.ssh))
    key = key_file(host.ssh)
    client.connect(
        host.address,
        port=host.ssh.port,
        username=host.ssh.user,
        key_filename=key,
        allow_agent=False,
        look_for_keys=key is None,
        timeout=timeout,
    )
    return client
