"""The ssh concern: how the control machine reaches a host (ssh_plan, the plan's SshPlan, read by every SSH
client through mevfleet.sshclient), and sshd key-only on the host (ssh_files; its steps check it with
`sshd -t` before any reload, so a bad drop-in never locks the deploy out).

Host keys, in OpenSSH's terms (StrictHostKeyChecking), decided here once for every client:
- `known_hosts` set (the fleet's own file, as the devnet harness writes one): "yes", the host's key must be
  in that file; an unknown host is refused.
- otherwise `strict_host_keys: true` (the default): "accept-new" against ~/.ssh/known_hosts; an unknown
  host is accepted and its key written there (pinned for the next connection), a changed key is refused.
- `strict_host_keys: false`: "no", an unknown host is accepted with a warning and not pinned (throwaway
  hosts only); a key that differs from a known one is still refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostKeyChecking, HostPlan, SshPlan

if TYPE_CHECKING:
    from .inventory import Host, Ssh
    from .render import HostFacts
    from .steps import Given, Step

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


def host_key_checking(ssh: Ssh) -> HostKeyChecking:
    """The inventory's host-key rule as OpenSSH's StrictHostKeyChecking value."""
    if ssh.known_hosts:
        return "yes"
    return "accept-new" if ssh.strict_host_keys else "no"


def ssh_plan(host: Host) -> SshPlan:
    """The host's SSH connection as the plan holds it. Pure: `~` stays unexpanded (it is the control
    machine's home, not the planner's), and only the key's path is kept."""
    return SshPlan(
        address=host.address,
        port=host.ssh.port,
        user=host.ssh.user,
        key=host.ssh.key,
        host_key_checking=host_key_checking(host.ssh),
        known_hosts=host.ssh.known_hosts or USER_KNOWN_HOSTS,
    )


def ssh_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    # 0600: sshd_config and its drop-ins are private to root (hardening.PRIVATE_TO_ROOT).
    return [
        FileSpec(
            path="/etc/ssh/sshd_config.d/90-mevfleet.conf", concern="ssh", template="host/sshd.conf.j2", mode="0600"
        )
    ]


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    from .steps import Files, Repair, Select

    return (
        Repair(name="root's authorized_keys equal the inventory's", kinds=("authorized-keys",)),
        Files(
            name="sshd hardening",
            files=Select(concern="ssh"),
            then_name="Check and reload sshd",
            # A config sshd rejects must never be reloaded: that is how hosts get locked out.
            then=("sshd -t && systemctl reload ssh.service",),
        ),
    )
