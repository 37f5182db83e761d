"""The ssh concern: sshd key-only, on the inventory's port. Its steps check it with `sshd -t`
before any reload, so a bad drop-in never locks the deploy out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step


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
