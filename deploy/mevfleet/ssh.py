"""The ssh concern: sshd key-only, on the inventory's port. engine/services.py checks it with `sshd -t`
before any reload, so a bad drop-in never locks the deploy out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts


def ssh_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    # 0600: sshd_config and its drop-ins are private to root (hardening.PRIVATE_TO_ROOT).
    return [
        FileSpec(
            path="/etc/ssh/sshd_config.d/90-mevfleet.conf", concern="ssh", template="host/sshd.conf.j2", mode="0600"
        )
    ]
