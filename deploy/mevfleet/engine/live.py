"""Live drift (mevfleet.drift) read in one command and repaired: the running ruleset, foreign files in
owned directories, unit overrides, root's authorized keys. Unit states are repaired by ensure_unit."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, operation

from ..drift import Drift, Expected, LiveState, parse, probe_command


class LiveDrift(FactBase):
    def command(self, script: str) -> str:
        return script

    def process(self, output: list[str]) -> LiveState:
        return parse(output)


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
