"""Live drift, each kind by name (mevfleet.drift): the running ruleset equals the planned one (every table),
owned `.d` directories hold only planned files, no unplanned unit file or drop-in overrides a unit the
deploy runs, every planned unit is unmasked, enabled and running, root's authorized keys are the
inventory's. `mevfleet deploy` repairs each of these; this says which one a host has."""

from __future__ import annotations

import pytest

from mevfleet.desired import expected
from mevfleet.drift import KINDS, Drift, findings, inventory_keys, parse, probe_command

_seen: dict[str, list[Drift]] = {}


@pytest.fixture
def drifts(hostname, host, plan, facts) -> list[Drift]:
    # One probe per host for all kinds (it loads the planned ruleset in a private network namespace).
    if hostname not in _seen:
        want = expected(plan, facts, inventory_keys(plan.ssh.key, plan.ssh.user))
        result = host.run(probe_command(want))
        _seen[hostname] = findings(want, parse(result.stdout.splitlines()))
    return _seen[hostname]


@pytest.mark.parametrize("kind", KINDS)
def test_no_live_drift(kind: str, drifts: list[Drift]):
    named = [d.what for d in drifts if d.kind == kind]
    assert not named, f"{kind} drift (mevfleet deploy repairs it):\n" + "\n".join(named)
