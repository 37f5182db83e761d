"""Firewall: nftables default-deny, loaded through a check-then-load script that keeps SSH open."""

from __future__ import annotations

from ..probe import HostState
from ..render import ManagedFile
from .files import ensure_files_then
from .units import ensure_unit


def ensure_firewall(files: list[ManagedFile], current: HostState) -> None:
    ensure_files_then(
        "nftables ruleset",
        files,
        current,
        then="Check and load the ruleset",
        # daemon-reload: nftables.service's sandbox drop-in is in this concern (it never restarts the unit,
        # whose stop flushes the ruleset).
        commands=["systemctl daemon-reload", "/usr/local/sbin/mevfleet-firewall-apply"],
    )
    # nftables.service loads /etc/nftables.conf at boot; it is a oneshot that stays active.
    ensure_unit(name="Enable nftables at boot", unit="nftables.service", current=current)
