"""The one-command probe (mevfleet.probe) as a pyinfra fact: the script is built from the plan by the
caller (mevfleet.probe.script over mevfleet.desired.probe_args), so both engines run the same command."""

from __future__ import annotations

from pyinfra.api import FactBase

from .. import probe
from ..probe import HostState


class ManagedState(FactBase):
    """Runtime, managed files, directories, live sysctls and unit states of a host, in one command."""

    def command(self, script: str) -> str:
        return script

    def process(self, output: list[str]) -> HostState:
        return probe.parse(output)
