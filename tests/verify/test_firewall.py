"""Firewall: default deny; SSH open; P2P open; RPC/metrics/API closed to everyone the plan does not name."""

from __future__ import annotations

import ipaddress
import json

import pytest

from mevfleet.nft import Packet, verdict

OUTSIDE = "203.0.113.7"  # TEST-NET-3: evaluated against the ruleset, never sent


@pytest.fixture
def ruleset(host) -> dict:
    result = host.run("nft -j list table inet mevfleet")
    assert result.rc == 0, f"mevfleet table not loaded: {result.stderr}"
    return json.loads(result.stdout)


def test_nftables_enabled(host):
    assert host.service("nftables").is_enabled


def test_ssh_open_from_outside(ruleset, plan):
    assert verdict(ruleset, Packet(OUTSIDE, "tcp", plan.ssh_port)) == "accept"


def test_every_port_by_exposure(ruleset, plan, fleet):
    inventory, _ = fleet
    monitoring = {h.address for h in inventory.monitoring_hosts()}
    fleet_address = next((str(next(ipaddress.ip_network(n).hosts())) for n in inventory.fleet.private_networks), None)
    wrong = []
    for p in plan.ports():
        expectations = [(OUTSIDE, "accept" if p.exposure in ("public", "ssh") else "drop")]
        if p.exposure == "fleet" and fleet_address:
            expectations.append((fleet_address, "accept"))
        if p.exposure == "monitoring":
            expectations += [(address, "accept") for address in monitoring]
        if p.exposure == "operator":
            expectations += [(str(ipaddress.ip_network(n)[0]), "accept") for n in inventory.fleet.operator_allowlist]
        for proto in p.protocols:
            for source, expected in expectations:
                got = verdict(ruleset, Packet(source, proto, p.port))
                if got != expected:
                    wrong.append(f"{p.key} {proto}/{p.port} from {source}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_unplanned_port_closed(ruleset):
    assert verdict(ruleset, Packet(OUTSIDE, "tcp", 2375)) == "drop"  # e.g. a Docker API someone exposed
