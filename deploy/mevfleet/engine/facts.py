"""The one-command probe (mevfleet.probe) as a pyinfra fact."""

from __future__ import annotations

from pyinfra.api import FactBase

from .. import probe
from ..probe import HostState


class ManagedState(FactBase):
    """Runtime, managed files, directories, live sysctls and unit states of a host, in one command."""

    # pyinfra reads the fact's arguments from this signature (inspect.getcallargs): keep them named.
    def command(
        self,
        files: tuple[str, ...],
        dirs: tuple[str, ...],
        sysctls: tuple[str, ...],
        globs: tuple[str, ...],
        units: tuple[str, ...] = (),
        links: tuple[str, ...] = (),
        room: tuple[str, ...] = (),
        present: tuple[str, ...] = (),
    ) -> str:
        return probe.script(files, dirs, sysctls, globs, units, links, room, present)

    def process(self, output: list[str]) -> HostState:
        return probe.parse(output)
