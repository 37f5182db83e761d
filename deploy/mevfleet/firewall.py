"""The network/firewall concern: nftables default-deny inbound in mevfleet's own table, with only the
openings the host's plan derives from its services' exposures. engine/firewall.py checks the ruleset with
`nft -c` and loads it through the apply script (which keeps SSH open and restores the old ruleset)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts


def firewall_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """The apply script and the ruleset (0600: it names the fleet's networks and the operators' sources)."""
    return [
        FileSpec(
            path="/usr/local/sbin/mevfleet-firewall-apply",
            concern="firewall",
            template="firewall/firewall-apply.sh.j2",
            mode="0755",
        ),
        FileSpec(path="/etc/nftables.conf", concern="firewall", template="firewall/nftables.conf.j2", mode="0600"),
    ]
