"""Decide what an nftables input chain does with one new inbound packet, from `nft -j` output.

Reading the live ruleset answers "is RPC closed to the outside?" without sending traffic from outside
(which a test machine inside the fleet's network cannot do). Only the expression shapes mevfleet's
ruleset uses are understood; anything else raises, so a changed ruleset fails loudly, never passes
silently.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


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
