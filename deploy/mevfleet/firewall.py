"""The network/firewall concern: nftables default-deny inbound in mevfleet's own table, with only the
openings the host's plan derives from its services' exposures (firewall_plan: each exposure class opened
to its sources, SSH first). Its steps (steps()) check the ruleset with `nft -c` and load it through the
apply script (which keeps SSH open and restores the old ruleset)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .catalog import Exposure
from .inventory import Host, Inventory
from .model import FileSpec, FirewallPlan, FirewallRule, HostPlan, LogSender, PortBinding, ServicePlan
from .registry import control_host, listen_ip

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step


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


def _port_ranges(bindings: list[PortBinding]) -> tuple[str, ...]:
    return tuple(
        sorted(
            {f"{b.port}-{b.port_end}" if b.port_end else str(b.port) for b in bindings},
            key=lambda s: int(s.split("-")[0]),
        )
    )


def firewall_plan(
    host: Host,
    services: list[ServicePlan],
    inventory: Inventory,
    monitoring: list[Host],
    all_services: dict[str, list[ServicePlan]],
    senders: tuple[LogSender, ...] = (),
) -> FirewallPlan:
    """The host's inbound openings: each exposure class's ports (tcp and udp apart) to that class's sources
    (public to anyone; a class nobody may use gets no rule, the default-deny covers it), and each journal
    sender's port to that sender alone."""
    fleet = inventory.fleet
    sources: dict[Exposure, tuple[str, ...] | None] = {
        "public": None,
        "fleet": tuple(fleet.private_networks),
        "monitoring": tuple(str(ipaddress.ip_network(m.address)) for m in monitoring),
        "operator": tuple(fleet.operator_allowlist),
        "bus": bus_sources(inventory, all_services),
        "control": tuple(
            str(ipaddress.ip_network(ip))
            for name in [control_host(inventory)]
            if name is not None and (ip := listen_ip(inventory.hosts[name]))
        ),
    }
    rules = []
    for exposure in ("public", "fleet", "monitoring", "operator", "bus", "control"):
        allowed = sources[exposure]
        if allowed == ():
            continue  # nobody is allowed: the default-deny policy covers it
        for proto in ("tcp", "udp"):
            bindings = [p for s in services for p in s.ports if p.exposure == exposure and proto in p.protocols]
            if bindings:
                names = ", ".join(sorted({p.key for p in bindings}))
                rules.append(
                    FirewallRule(
                        comment=f"{exposure}: {names}",
                        protocol=proto,
                        ports=_port_ranges(bindings),
                        sources=allowed,
                    )
                )
    # The `sender` range (journal-remote's uploads): each sender's port open to its address only; the
    # range's other ports stay closed.
    for b in (p for s in services for p in s.ports if p.exposure == "sender"):
        for proto in b.protocols:
            rules += [
                FirewallRule(
                    comment=f"sender: {b.key} of {sender.name}",
                    protocol=proto,
                    ports=(str(sender.upload),),
                    sources=(str(ipaddress.ip_network(sender.address)),),
                )
                for sender in senders
                if sender.upload in b.span()
            ]
    return FirewallPlan(ssh_port=host.ssh.port, ssh_sources=tuple(fleet.ssh_sources) or None, rules=tuple(rules))


def bus_sources(inventory: Inventory, all_services: dict[str, list[ServicePlan]]) -> tuple[str, ...]:
    """The hosts that hold the bus's password (a `bus_client` service runs there), as /32 or /128."""
    return tuple(
        str(ipaddress.ip_network(ip))
        for name, host in inventory.hosts.items()
        if any(s.bus_client for s in all_services.get(name, ())) and (ip := listen_ip(host))
    )


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """The ruleset, loaded through a check-then-load script that keeps SSH open; nftables enabled at boot;
    a live ruleset that drifted from the file repaired."""
    from .steps import Files, Repair, Select, Unit

    return (
        Files(
            name="nftables ruleset",
            files=Select(concern="firewall"),
            then_name="Check and load the ruleset",
            # daemon-reload: nftables.service's sandbox drop-in is in this concern (it never restarts the
            # unit, whose stop flushes the ruleset).
            then=("systemctl daemon-reload", "/usr/local/sbin/mevfleet-firewall-apply"),
        ),
        # nftables.service loads /etc/nftables.conf at boot; it is a oneshot that stays active.
        Unit(name="Enable nftables at boot", unit="nftables.service"),
        Repair(name="Live nftables ruleset equals the plan", kinds=("firewall",)),
    )
