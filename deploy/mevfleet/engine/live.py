"""Live drift (mevfleet.drift) read in one command and repaired: the running ruleset, foreign files in
owned directories, unit overrides, root's authorized keys. Unit states are repaired by ensure_unit."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, operation

from ..drift import Drift, Expected, LiveState, keeps_docker_tables, parse, probe_command
from ..monitoring import receiver_secrets, secrets
from ..plan import HostPlan
from ..render import HostFacts, host_files
from . import agent, nodes


class LiveDrift(FactBase):
    def command(self, script: str) -> str:
        return script

    def process(self, output: list[str]) -> LiveState:
        return parse(output)


def expected(
    plan: HostPlan, facts: HostFacts, units: tuple[str, ...], authorized_keys: tuple[str, ...] | None
) -> Expected:
    files = {f.path: f for f in host_files(plan, facts)}
    ruleset = files["/etc/nftables.conf"].content
    managed = (
        set(files)
        | {s.path for s in secrets(plan)}
        | {s.path for s in receiver_secrets(plan)}
        | set(nodes.probe_files(plan))
        | set(agent.probe_files(plan))
    )
    # The boot-time tuning unit's condition keeps it inactive in a container: enabled is its steady state.
    enabled_only = tuple(u for u in units if u == "mevfleet-kernel-tuning.service")
    return Expected(
        ruleset=ruleset,
        files=frozenset(managed),
        units=tuple(u for u in units if u not in enabled_only),
        enabled_only=enabled_only,
        keep_docker_tables=keeps_docker_tables(plan),
        authorized_keys=authorized_keys,
    )


def read_live(want: Expected) -> LiveState:
    return host.get_fact(LiveDrift, script=probe_command(want))


@operation()
def repair(drifts: list[Drift]):
    """Run each drift's repair, then each reader's reload once (in order of first need)."""
    after: list[str] = []
    for drift in drifts:
        yield from drift.fix
        after += [c for c in drift.after if c not in after]
    yield from after
