"""Decide what an nftables input chain does with one new inbound packet, from `nft -j` output.

Reading the live ruleset answers "is RPC closed to the outside?" without sending traffic from outside
(which a test machine inside the fleet's network cannot do). Only the expression shapes mevfleet's
ruleset uses are understood; anything else raises, so a changed ruleset fails loudly, never passes
silently.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .inventory import Inventory
    from .model import FleetPlan, HostPlan


@dataclass(frozen=True)
class Packet:
    saddr: str
    protocol: str  # tcp | udp
    dport: int
    iif: str = "eth0"
    ct_state: str = "new"

    @property
    def family(self) -> str:
        return "ip" if ipaddress.ip_address(self.saddr).version == 4 else "ip6"


class UnknownExpression(ValueError):
    pass


def _contains(right: Any, value: Any) -> bool:
    """Whether an nft right-hand side (literal, set, range or prefix) contains value."""
    if isinstance(right, dict) and "set" in right:
        return any(_contains(item, value) for item in right["set"])
    if isinstance(right, list):
        return any(_contains(item, value) for item in right)
    if isinstance(right, dict) and "range" in right:
        low, high = right["range"]
        return low <= value <= high
    if isinstance(right, dict) and "prefix" in right:
        net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}", strict=False)
        return ipaddress.ip_address(value) in net
    if isinstance(value, str) and isinstance(right, str) and "/" not in right:
        try:
            return ipaddress.ip_address(value) == ipaddress.ip_address(right)
        except ValueError:
            return value == right
    return right == value


def _left_value(left: dict, packet: Packet) -> Any:
    if "meta" in left:
        key = left["meta"]["key"]
        if key in ("iif", "iifname"):
            return packet.iif
        if key == "l4proto":
            return packet.protocol
        raise UnknownExpression(f"meta {key}")
    if "ct" in left and left["ct"]["key"] == "state":
        return packet.ct_state
    if "payload" in left:
        proto, field = left["payload"]["protocol"], left["payload"]["field"]
        if proto in ("tcp", "udp") and field == "dport":
            return packet.dport if packet.protocol == proto else None
        if proto in ("ip", "ip6") and field == "saddr":
            return packet.saddr if packet.family == proto else None
        if proto in ("ip", "ip6") and field in ("protocol", "nexthdr"):
            return packet.protocol if packet.family == proto else None
        if proto in ("icmp", "icmpv6"):
            return None  # a tcp/udp packet carries no ICMP header
        raise UnknownExpression(f"payload {proto} {field}")
    raise UnknownExpression(str(left))


def _matches(match: dict, packet: Packet) -> bool:
    value = _left_value(match["left"], packet)
    if value is None:
        return False
    hit = _contains(match["right"], value)
    if match["op"] in ("==", "in"):
        return hit
    if match["op"] == "!=":
        return not hit
    raise UnknownExpression(f"op {match['op']}")


def verdict(ruleset: dict, packet: Packet, table: str = "mevfleet", chain: str = "input") -> str:
    """accept or drop, for one packet against one base chain."""
    policy = None
    rules = []
    for item in ruleset["nftables"]:
        if "chain" in item and item["chain"]["table"] == table and item["chain"]["name"] == chain:
            policy = item["chain"].get("policy")
        if "rule" in item and item["rule"]["table"] == table and item["rule"]["chain"] == chain:
            rules.append(item["rule"])
    if policy is None:
        raise UnknownExpression(f"chain {table} {chain} not found or has no policy")
    for rule in rules:
        fires = True
        for expr in rule["expr"]:
            if "match" in expr:
                if not _matches(expr["match"], packet):
                    fires = False
                    break
            elif "set" in expr or "limit" in expr:
                # A rate limit "over N" does not match one packet under the rate; a plain limit does.
                limits = [s["limit"] for s in expr.get("set", {}).get("stmt", [])] + (
                    [expr["limit"]] if "limit" in expr else []
                )
                if any(lim.get("inv") for lim in limits):
                    fires = False
                    break
            elif "counter" in expr:
                continue
            elif "accept" in expr or "drop" in expr or "reject" in expr:
                if fires:
                    return "accept" if "accept" in expr else "drop"
            else:
                raise UnknownExpression(str(expr))
    return policy


# Who is kept out, not only who is let in: every planned port is tried from a source of every exposure
# class and must be accepted only from the classes its exposure names.

OUTSIDE_CANDIDATES = ("203.0.113.7", "198.51.100.250", "192.0.2.250", "2001:db8::7")  # documentation ranges


def exposure_classes(inventory: Inventory, fleet: FleetPlan) -> dict[str, tuple[str, ...]]:
    """Each exposure class's networks, from the inventory (never from the firewall rules under test)."""
    return {
        "fleet": tuple(inventory.fleet.private_networks),
        "monitoring": tuple(str(ipaddress.ip_network(m.address)) for m in inventory.monitoring_hosts()),
        "operator": tuple(inventory.fleet.operator_allowlist),
        "bus": tuple(
            str(ipaddress.ip_network(plan.listen_address))
            for plan in fleet.hosts.values()
            if any(s.bus_client for s in plan.services)
        ),
        "control": tuple(
            str(ipaddress.ip_network(plan.listen_address)) for plan in fleet.hosts.values() if plan.control is not None
        ),
    }


def _inside(address: str, networks: Iterable[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in map(ipaddress.ip_network, networks))


def representatives(classes: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """One source per class (and `outside`): inside the class and, where such an address exists, outside
    every other class, so that a port open to a wider class than planned is caught."""
    picked: dict[str, str] = {}
    for name, networks in classes.items():
        others = [n for other, nets in classes.items() if other != name for n in nets]
        inside = []
        for net in map(ipaddress.ip_network, networks):
            inside += [str(a) for a in islice(net.hosts() if net.num_addresses > 2 else iter(net), 4096)]
        if inside:
            picked[name] = next((a for a in inside if not _inside(a, others)), inside[0])
    everything = [n for nets in classes.values() for n in nets]
    picked["outside"] = next(a for a in OUTSIDE_CANDIDATES if not _inside(a, everything))
    return picked


def exposure_violations(
    ruleset: dict, plan: HostPlan, classes: dict[str, tuple[str, ...]], ssh_sources: Iterable[str] = ()
) -> list[str]:
    """Every (port, source class) whose verdict is not the plan's: accepted only from the port's own class
    (or from anywhere for public ports and, without ssh_sources, SSH)."""
    ssh_sources = tuple(ssh_sources)
    wrong = _sender_violations(ruleset, plan, classes)
    for source_class, source in representatives(classes).items():
        member = {c for c, nets in classes.items() if _inside(source, nets)}
        for p in plan.ports():
            if p.exposure in ("loopback", "sender"):
                continue
            if p.exposure == "public" or (p.exposure == "ssh" and not ssh_sources):
                expected = "accept"
            elif p.exposure == "ssh":
                expected = "accept" if _inside(source, ssh_sources) else "drop"
            else:
                expected = "accept" if p.exposure in member else "drop"
            for proto in p.protocols:
                for port in sorted({p.port, p.port_end or p.port}):
                    got = verdict(ruleset, Packet(source, proto, port))
                    if got != expected:
                        where = f"{p.key} ({p.exposure}) {proto}/{port} from {source_class} {source}"
                        wrong.append(f"{where}: {got}, expected {expected}")
    return wrong


def _sender_violations(ruleset: dict, plan: HostPlan, classes: dict[str, tuple[str, ...]]) -> list[str]:
    """A `sender` range: each sender's port accepted from that sender's address only (not from the other
    senders, nor from a source of any class), and the range's unassigned last port from no one."""
    wrong = []
    others = [*representatives(classes).values(), *(s.address for s in plan.log_senders)]
    for p in (p for p in plan.ports() if p.exposure == "sender"):
        owners = {s.upload: s.address for s in plan.log_senders if s.upload in p.span()}
        for port in sorted({*owners, p.port_end or p.port}):
            for source in dict.fromkeys([*([owners[port]] if port in owners else []), *others]):
                expected = "accept" if owners.get(port) == source else "drop"
                for proto in p.protocols:
                    got = verdict(ruleset, Packet(source, proto, port))
                    if got != expected:
                        wrong.append(f"{p.key} (sender) {proto}/{port} from {source}: {got}, expected {expected}")
    return wrong
