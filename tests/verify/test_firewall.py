"""Firewall: default deny; SSH open; P2P open; RPC/metrics/API closed to everyone the plan does not name."""

from __future__ import annotations

import json

import pytest

from mevfleet.nft import Packet, exposure_classes, exposure_violations, verdict

OUTSIDE = "203.0.113.7"  # TEST-NET-3: evaluated against the ruleset, never sent


@pytest.fixture
def ruleset(host) -> dict:
    result = host.run("nft -j list table inet mevfleet")
    assert result.rc == 0, f"mevfleet table not loaded: {result.stderr}"
    return json.loads(result.stdout)


def test_nftables_enabled(host):
    assert host.service("nftables").is_enabled


def test_ssh_open_from_outside(ruleset, plan):
    assert verdict(ruleset, Packet(OUTSIDE, "tcp", plan.ssh.port)) == "accept"


def test_every_port_accepted_only_from_its_own_class(ruleset, plan, fleet):
    """Each planned port, tried from a source of every exposure class (fleet, monitoring, operator, bus,
    outside): accepted from its own class, dropped from every other (a class widened by hand shows here)."""
    inventory, fleet_plan = fleet
    classes = exposure_classes(inventory, fleet_plan)
    wrong = exposure_violations(ruleset, plan, classes, inventory.fleet.ssh_sources)
    assert not wrong, "\n".join(wrong)


def test_unplanned_port_closed(ruleset):
    assert verdict(ruleset, Packet(OUTSIDE, "tcp", 2375)) == "drop"  # e.g. a Docker API someone exposed
