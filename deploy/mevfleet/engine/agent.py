"""The searcher agent on a host: token and key directory, release, config and unit, `current`, restart.

Judged from the one-command probe like the nodes: the release is installed when its marker is missing, the
link switched when it points elsewhere, the agent restarted only when its config, unit or release changed.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..agent import (
    UNIT,
    AgentBuildError,
    incoming,
    install_script,
    link,
    marker,
    release_dir,
    token_script,
    wheelhouse,
)
from ..nodes.artifacts import file_sha256, switch_script
from ..plan import AgentPlan, HostPlan
from ..probe import HostState
from ..render import ManagedFile
from .files import differs, ensure_files
from .units import ensure_restarted_or_running


def token_ok(agent: AgentPlan, current: HostState) -> bool:
    have = current.files.get(agent.token_file)
    return have is not None and (have.mode, have.owner, have.group) == ("0600", agent.user, agent.user)


@operation()
def ensure_token(agent: AgentPlan, current: HostState):
    if not token_ok(agent, current):
        yield f"sh -c {shlex.quote(token_script(agent))}"


@operation()
def ensure_release(agent: AgentPlan, current: HostState):
    if current.files.get(marker(agent)) is not None:
        return
    try:
        local = wheelhouse(agent.version)
    except AgentBuildError as exc:
        yield f"echo {shlex.quote(str(exc))} >&2; exit 1"
        return
    sha = file_sha256(local)
    upload = incoming(agent, sha)
    yield f"mkdir -p {shlex.quote(upload.rsplit('/', 1)[0])}"
    yield FileUploadCommand(str(local), upload, remote_temp_filename=host.get_temp_filename(upload))
    yield f"sh -c {shlex.quote(install_script(agent, sha))}"


@operation()
def ensure_link(agent: AgentPlan, current: HostState):
    if current.links.get(link(agent)) != release_dir(agent):
        previous = f"{agent.release_root}/previous"
        yield f"sh -c {shlex.quote(switch_script(link(agent), previous, release_dir(agent)))}"


def ensure_agent(plan: HostPlan, files: list[ManagedFile], current: HostState, secrets_changed: bool = False) -> None:
    agent = plan.agent
    if agent is None:
        return
    ensure_token(name="Agent API token (made on the host, 0600) and key directory (0700)", agent=agent, current=current)
    ensure_release(
        name=f"Agent release {agent.version} (sha256 and Python checked on the host)", agent=agent, current=current
    )
    changed = any(differs(f, current) for f in files)
    ensure_files(name="Agent config and unit", files=files, current=current)
    switched = current.links.get(link(agent)) != release_dir(agent)
    ensure_link(name=f"Agent current -> {agent.version}", agent=agent, current=current)
    ensure_restarted_or_running(
        name="Agent running (dry-run unless a chain is live)",
        unit=UNIT,
        current=current,
        restart=changed or switched or secrets_changed,
    )
