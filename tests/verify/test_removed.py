"""What the plan dropped is gone (mevfleet.desired.removals): for a chain's node unit, the agent, the
monitoring services, log shipping and the control plane that this host's plan no longer has, none of the
paths that make the deploy remove it (its markers) is left and none of its units is running, failed or
enabled. A package's own config alone is not reported, as the deploy does not act on it; a unit of that
name is, even where an operator runs it by hand. What a removal keeps on purpose (data and state
directories, keys, releases) is not looked at."""

from __future__ import annotations

import shlex

import pytest

from mevfleet.desired import removals
from mevfleet.model import HostPlan

# systemctl is-enabled states that start a unit at boot. Not the runtime ones: a generator's links under /run
# (Debian's postgresql-generator makes each cluster's instance `enabled-runtime`, wanted only by the
# disabled postgresql.service) start nothing by themselves.
ENABLED = {"enabled", "linked"}
ACTIVE = {"active", "activating", "reloading", "deactivating", "failed"}


def applies(plan: HostPlan) -> bool:
    """Where the test below checks rather than skips: the plan drops something on this host. The one rule:
    tests/integration/test_fleet.py reads it to demand a pass there."""
    return bool(removals(plan))


def test_nothing_the_plan_dropped_is_left(host, plan):
    if not applies(plan):
        pytest.skip("the plan drops nothing on this host")
    dropped = removals(plan)
    paths = " ".join(shlex.quote(p) for r in dropped for p in r.evidence)
    units = " ".join(dict.fromkeys(shlex.quote(u) for r in dropped for u in r.units))
    # One command: each path that exists, then each unit's active and enabled state.
    out = host.run(
        f'for p in {paths}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "path $p"; fi; done; '
        f'for u in {units}; do echo "unit $u $(systemctl is-active "$u" 2>/dev/null) '
        f'$(systemctl is-enabled "$u" 2>/dev/null)"; done'
    ).stdout.splitlines()
    present = {line.split(" ", 1)[1] for line in out if line.startswith("path ")}
    states = {parts[1]: set(parts[2:]) for parts in (line.split() for line in out if line.startswith("unit "))}
    left = [
        f"{r.name}: {u} ({' '.join(sorted(states.get(u, set()) & (ACTIVE | ENABLED)))})"
        for r in dropped
        for u in r.units
        if states.get(u, set()) & (ACTIVE | ENABLED)
    ] + [f"{r.name}: {p}" for r in dropped for p in r.evidence if p in present]
    assert not left, f"left behind by what the plan dropped: {left}"
