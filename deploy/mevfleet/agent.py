"""The searcher agent on node hosts: its release, config, unit and control-API token.

A release is a wheelhouse: the control machine builds wheels of `agent/` and every dependency once per
agent version (cached, like node artifacts) and uploads one tar; the host checks its sha256, makes a venv
in `/opt/mevfleet/mevagent/<version>/` from those wheels only (`--no-index`: hosts need no PyPI) and
writes a marker last; then `current` is switched and the unit restarted. Wheels with compiled parts are
built for the control machine's Python, so the host's `python3` must have the same version: the install
checks it and fails the host, naming both, before anything is switched.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .control import AGENT_BUS_CA, AGENT_REDIS_PASSWORD
from .inputs import AGENT_DIR
from .model import AgentPlan, FileSpec, HostPlan, Removal
from .nodes.artifacts import CACHE, MARKER
from .plan import AGENT_ETC, AGENT_ROOT, AGENT_STATE
from .render import Block

if TYPE_CHECKING:
    from .render import HostFacts

WHEELHOUSE_CACHE = CACHE.parent / "agent"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


class AgentBuildError(RuntimeError):
    pass


@cache
def wheelhouse(version: str, extra: str = "") -> Path:
    """The agent and all its dependencies as wheels in one tar, built once per version (with an extra's
    dependencies too: `control` for the control host)."""
    target = WHEELHOUSE_CACHE / f"mevagent{'-' + extra if extra else ''}-{version}-py{PYTHON}.tar"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        requirement = f"{AGENT_DIR}[{extra}]" if extra else str(AGENT_DIR)
        run = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), requirement],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise AgentBuildError(f"building the agent's wheels failed: {run.stderr.strip()[-2000:]}")
        staged = Path(tmp) / target.name
        with tarfile.open(staged, "w") as tar:
            for wheel in sorted(wheels.iterdir()):
                tar.add(wheel, arcname=wheel.name)
        staged.replace(target)
    return target


def release_dir(agent: AgentPlan) -> str:
    return f"{agent.release_root}/{agent.version}"


def marker(agent: AgentPlan) -> str:
    return f"{release_dir(agent)}/{MARKER}"


def link(agent: AgentPlan) -> str:
    return f"{agent.release_root}/current"


def venv_install_script(
    release: str, upload: str, sha: str, requirement: str = "mevagent", program: str = "mevagent"
) -> str:
    """The agent's wheelhouse as a venv in `release` (the agent's, a node's that runs from it, or the
    control plane's: requirement `mevagent[control]`, program `mevcontrol`)."""
    q = shlex.quote
    want_python = f"({PYTHON.replace('.', ', ')})"
    return "; ".join(
        [
            "set -e",
            f'got=$(sha256sum < {q(upload)} | cut -d" " -f1)',
            f'if [ "$got" != {q(sha)} ]; then rm -f {q(upload)}; '
            f'echo "checksum mismatch for the agent wheelhouse: expected {sha}, got $got; nothing was switched" >&2; '
            "exit 1; fi",
            f"if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != {want_python})'; then "
            f'echo "the host has $(python3 -V 2>&1); the agent wheelhouse is built for Python {PYTHON}" >&2; '
            "exit 1; fi",
            # The venv's scripts embed its absolute path, so it is built where it will stay; an interrupted
            # build has no marker and is removed and redone here.
            f"rm -rf {q(release)}",
            f"mkdir -p {q(release + '/wheels')}",
            f"tar -xf {q(upload)} -C {q(release + '/wheels')}",
            f"python3 -m venv {q(release + '/venv')}",
            f"{q(release + '/venv/bin/pip')} install --quiet --no-index --no-cache-dir "
            f"--find-links {q(release + '/wheels')} {q(requirement)}",
            f"rm -rf {q(release + '/wheels')}",
            f"{q(release + '/venv/bin/' + program)} --help >/dev/null",
            f"echo {q(sha)} > {q(release + '/' + MARKER)}",
            f"chown -R root:root {q(release)}",
            f"chmod -R go-w {q(release)}",
            f"rm -f {q(upload)}",
        ]
    )


def token_script(agent: AgentPlan) -> str:
    """The control API's bearer token: made on the host once (never in the repo, a log or argv), kept."""
    q = shlex.quote
    token, user = agent.token_file, agent.user
    return "; ".join(
        [
            "set -e",
            "umask 077",
            f"install -d -m 0750 -o root -g {q(user)} {q(token.rsplit('/', 1)[0])}",
            f"install -d -m 0700 -o {q(user)} -g {q(user)} {q(agent.keys_dir)}",
            f"if [ ! -s {q(token)} ]; then od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > {q(token + '.tmp')}; "
            f"mv {q(token + '.tmp')} {q(token)}; fi",
            f"chown {q(user)}:{q(user)} {q(token)}",
            f"chmod 0600 {q(token)}",
        ]
    )


def config_yaml(agent: AgentPlan) -> str:
    return yaml.safe_dump(agent.config, sort_keys=False, default_flow_style=False).rstrip("\n")


def agent_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """Every file the agent reads, concern "agent": its config (readable by its group) and its unit; none
    without an agent."""
    agent = plan.agent
    if agent is None:
        return []
    return [
        FileSpec(
            path=agent.config_path,
            concern="agent",
            template="agent/agent.yml.j2",
            context={"host": plan.name, "config_yaml": Block(config_yaml(agent))},
            mode="0640",
            group=agent.user,
        ),
        FileSpec(path=UNIT_FILE, concern="agent", template="agent/mevagent.service.j2", context={"agent": agent}),
    ]


UNIT = "mevagent.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"


def probe_files(plan: HostPlan) -> list[str]:
    return [marker(plan.agent), plan.agent.token_file] if plan.agent else []


def probe_links(plan: HostPlan) -> list[str]:
    return [link(plan.agent)] if plan.agent else []


def agent_units(plan: HostPlan) -> list[str]:
    return [UNIT] if plan.agent else []


def removals(plan: HostPlan) -> list[Removal]:
    """A host that no longer runs the agent (its last chain moved away: every host with a chain, EVM or
    Solana, runs it): the unit, its config, API token and bus secrets, and its release links go. Its state
    dir, its signing keys (keys/ under the config dir) and its releases stay, as a node keeps its data dir."""
    if plan.agent is not None:
        return []
    return [
        Removal(
            concern="agent",
            name="searcher agent",
            units=(UNIT,),
            paths=(
                UNIT_FILE,
                f"{UNIT_FILE}.d",
                f"{AGENT_ETC}/agent.yml",
                f"{AGENT_ETC}/api.token",
                AGENT_REDIS_PASSWORD,
                AGENT_BUS_CA,
                f"{AGENT_ROOT}/current",
                f"{AGENT_ROOT}/previous",
            ),
            kept=f"{AGENT_STATE}, signing keys in {AGENT_ETC}/keys and releases",
        )
    ]
