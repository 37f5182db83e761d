"""The searcher agent on a host: token and key directory, release, config and unit, `current`, restart.

Judged from the one-command probe like the nodes: the release is installed when its marker is missing, the
link switched when it points elsewhere, the agent restarted only when its config, unit or release changed.
"""

from __future__ import annotations

import shlex

from pyinfra.api import operation

from ..agent import UNIT, token_script
from ..model import AgentPlan, HostPlan
from ..probe import HostState
from ..release import agent_release
from ..render import ManagedFile
from .files import differs, ensure_files
from .release import ensure_switched, ensure_wheel_release
from .units import ensure_restarted_or_running


def token_ok(agent: AgentPlan, current: HostState) -> bool:
    have = current.files.get(agent.token_file)
    return have is not None and (have.mode, have.owner, have.group) == ("0600", agent.user, agent.user)


@operation()
def ensure_token(agent: AgentPlan, current: HostState):
    if not token_ok(agent, current):
        yield f"sh -c {shlex.quote(token_script(agent))}"


def ensure_agent(plan: HostPlan, files: list[ManagedFile], current: HostState, secrets_changed: bool = False) -> None:
    agent = plan.agent
    if agent is None:
        return
    ensure_token(name="Agent API token (made on the host, 0600) and key directory (0700)", agent=agent, current=current)
    release = agent_release(agent)
    ensure_wheel_release(
        name=f"Agent release {agent.version} (sha256 and Python checked on the host)", release=release, current=current
    )
    changed = any(differs(f, current) for f in files)
    ensure_files(name="Agent config and unit", files=files, current=current)
    switched = not release.switched(current)
    ensure_switched(name=f"Agent current -> {agent.version}", release=release, current=current)
    ensure_restarted_or_running(
        name="Agent running (dry-run unless a chain is live)",
        unit=UNIT,
        current=current,
        restart=changed or switched or secrets_changed,
    )
