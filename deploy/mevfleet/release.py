"""One release mechanism for everything the deploy installs behind a link: the agent, the control plane and
every node.

A release is a versioned directory whose marker is written last (present means verified and complete), a
`current` link switched atomically, and `previous` kept pointing at the release before the last switch
(rollback's way back). What fills the directory differs: a node's checked artifact or npm bundle
(nodes/artifacts.py, nodes/npm.py), or the agent's wheelhouse as a venv (`WheelRelease`: the agent's, a node
that runs from it, the control plane's). Both engines take these values and run the same scripts; a unit
restarts when its release was switched (`switched` read from the probe before the switch).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from .agent import link as agent_link
from .agent import release_dir as agent_release_dir
from .agent import venv_install_script, wheelhouse
from .control import ControlPlan
from .control import link as control_link
from .control import release_dir as control_release_dir
from .model import AgentPlan, NodePlan
from .nodes.artifacts import MARKER, file_sha256, switch_script

if TYPE_CHECKING:
    from .probe import HostState


class Release(BaseModel):
    model_config = ConfigDict(frozen=True)

    dir: str  # <root>/<version>
    link: str  # <root>/current -> dir
    previous_link: str  # <root>/previous -> the release before the last switch

    @property
    def marker(self) -> str:
        return f"{self.dir}/{MARKER}"

    def switch_script(self) -> str:
        return switch_script(self.link, self.previous_link, self.dir)

    def switched(self, current: HostState) -> bool:
        """`current` already points at this release on the host."""
        return current.links.get(self.link) == self.dir


class WheelRelease(Release):
    """The agent's wheelhouse as a venv: `requirement` installed from its wheels only, `program` checked."""

    version: str
    extra: str = ""  # the wheelhouse's extra ("control": the control plane's dependencies too)
    requirement: str = "mevagent"
    program: str = "mevagent"

    def installed(self, current: HostState) -> bool:
        # Named after the agent's sources: any marker means complete.
        return current.files.get(self.marker) is not None

    def upload(self, sha: str) -> str:
        return f"{self.dir.rsplit('/', 1)[0]}/.incoming/{sha}.tar"

    def install_script(self, sha: str) -> str:
        return venv_install_script(self.dir, self.upload(sha), sha, self.requirement, self.program)

    def prepare(self) -> tuple[Path, str, str]:
        """The wheelhouse built (or cached) here, where it goes on the host, and the script that installs it
        there. Raises AgentBuildError when the wheels cannot be built."""
        local = wheelhouse(self.version, self.extra)
        sha = file_sha256(local)
        return local, self.upload(sha), self.install_script(sha)


def agent_release(agent: AgentPlan) -> WheelRelease:
    return WheelRelease(
        dir=agent_release_dir(agent),
        link=agent_link(agent),
        previous_link=f"{agent.release_root}/previous",
        version=agent.version,
    )


def control_release(control: ControlPlan) -> WheelRelease:
    root = control_release_dir(control).rsplit("/", 1)[0]
    return WheelRelease(
        dir=control_release_dir(control),
        link=control_link(),
        previous_link=f"{root}/previous",
        version=control.version,
        extra="control",
        requirement="mevagent[control]",
        program="mevcontrol",
    )


def node_release(node: NodePlan) -> Release:
    """A node's release: the agent's wheels for a node that runs from them (the Solana simulator)."""
    if node.runtime == "agent":
        return WheelRelease(
            dir=node.release_dir, link=node.link, previous_link=node.previous_link, version=node.version
        )
    return Release(dir=node.release_dir, link=node.link, previous_link=node.previous_link)
