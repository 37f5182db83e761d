"""Firewall: nftables default-deny, loaded through a check-then-load script that keeps SSH open."""

from __future__ import annotations

from pyinfra.operations import server

from ..render import ManagedFile
from .facts import HostState
from .files import ensure_files
from .units import ensure_unit


def ensure_firewall(files: list[ManagedFile], current: HostState) -> None:
    changed = ensure_files(name="nftables ruleset", files=files, current=current)
    server.shell(
        name="Check and load the ruleset",
        commands=["/usr/local/sbin/mevfleet-firewall-apply"],
        _if=changed.did_change,
    )
    # nftables.service loads /etc/nftables.conf at boot; it is a oneshot that stays active.
    ensure_unit(name="Enable nftables at boot", unit="nftables.service", current=current)
