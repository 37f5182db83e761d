"""The step kinds (mevfleet.steps) as pyinfra operations: one interpreter per kind, chosen by the step's type.

Every decision is taken from the one-command probe (HostState) read before anything is queued, so a host
that already matches its plan queues operations that yield nothing: the no-op run stays one probe.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import server

from .. import steps as s
from ..desired import Desired
from ..drift import Drift
from ..probe import HostState
from ..render import ManagedFile
from .base import ensure_directories, ensure_system_users, install_missing
from .files import differs, ensure_checked_files, ensure_files, ensure_files_then, remove_files
from .hardening import Permissions, restrict_to_root
from .kernel import apply_sysctls
from .live import repair
from .nodes import ensure_image, ensure_jwt, ensure_release, jwt_restarts
from .npm_nodes import ensure_bundle
from .release import ensure_switched, ensure_wheel_release
from .secrets import changed_copies, ensure_copied_secrets, ensure_secrets
from .units import ensure_removed, ensure_restarted_or_running, ensure_unit


@dataclass
class Run:
    """One host's deploy: its desired state, what the probe found, its files, its live drift, and the
    operations of keyed steps (for Shell.if_changed)."""

    want: Desired
    current: HostState
    files: list[ManagedFile]
    drifts: list[Drift]
    keyed: dict[str, Any] = field(default_factory=dict)


def holds(trigger: s.Trigger, run: Run) -> bool:
    current = run.current
    if isinstance(trigger, s.FilesChanged):
        return any(differs(f, current) for f in trigger.files.pick(run.files))
    if isinstance(trigger, s.NotSwitched):
        return not trigger.release.switched(current)
    if isinstance(trigger, s.SecretsMissing):
        return any(current.files.get(p) is None for p in trigger.paths)
    if isinstance(trigger, s.CopiesChanged):
        return bool(changed_copies(trigger.copies, current))
    if isinstance(trigger, s.JwtRewrites):
        return trigger.unit in {u for j in trigger.jwts for u in jwt_restarts(j, current)}
    raise TypeError(f"no trigger kind {type(trigger).__name__}")


def any_holds(triggers: tuple[s.Trigger, ...], run: Run) -> bool:
    return any(holds(t, run) for t in triggers)


INTERPRETERS: dict[type, Callable[[Any, Run], None]] = {}


def interprets(kind: type):
    def register(fn: Callable[[Any, Run], None]):
        INTERPRETERS[kind] = fn
        return fn

    return register


def apply(step: s.Step, run: Run) -> None:
    try:
        interpret = INTERPRETERS[type(step)]
    except KeyError:
        raise TypeError(f"no interpreter for step kind {type(step).__name__}") from None
    interpret(step, run)


@interprets(s.Packages)
def _packages(step: s.Packages, run: Run) -> None:
    install_missing(list(step.packages), no_recommends=step.no_recommends)


@interprets(s.Users)
def _users(step: s.Users, run: Run) -> None:
    ensure_system_users(name=step.name, users=step.users)


@interprets(s.Directories)
def _directories(step: s.Directories, run: Run) -> None:
    ensure_directories(name=step.name, directories=step.directories, current=run.current)


@interprets(s.Files)
def _files(step: s.Files, run: Run) -> None:
    files = step.files.pick(run.files)
    if step.skip_if_none and not files:
        return
    if step.then:
        op = ensure_files_then(
            step.name, files, run.current, then=step.then_name or step.name, commands=list(step.then)
        )
    else:
        op = ensure_files(name=step.name, files=files, current=run.current)
    if step.key:
        run.keyed[step.key] = op


@interprets(s.CheckedFiles)
def _checked(step: s.CheckedFiles, run: Run) -> None:
    files = step.files.pick(run.files)
    if step.skip_if_none and not files:
        return
    ensure_checked_files(
        name=step.name,
        files=files,
        current=run.current,
        check=step.check,
        unit=step.unit,
        restart_anyway=any_holds(step.restart_if, run),
        installed_only=step.installed_only,
    )


@interprets(s.Shell)
def _shell(step: s.Shell, run: Run) -> None:
    op = run.keyed[step.if_changed]
    server.shell(name=step.name, commands=list(step.commands), _if=op.did_change)


@interprets(s.LiveSysctls)
def _sysctls(step: s.LiveSysctls, run: Run) -> None:
    apply_sysctls(name=step.name, plan=run.want.plan, current=run.current)


@interprets(s.StaleFiles)
def _stale(step: s.StaleFiles, run: Run) -> None:
    stale = sorted(run.current.globbed - {f.path for f in run.files})
    if stale:
        remove_files(name=step.name, paths=stale)


@interprets(s.Removals)
def _removals(step: s.Removals, run: Run) -> None:
    for removal in run.want.to_remove(run.current.present):
        ensure_removed(name=removal.task, removal=removal)


@interprets(s.Repair)
def _repair(step: s.Repair, run: Run) -> None:
    repair(name=step.name, drifts=[d for d in run.drifts if d.kind in step.kinds and (d.fix or d.after)])


@interprets(s.Unit)
def _unit(step: s.Unit, run: Run) -> None:
    ensure_unit(name=step.name, unit=step.unit, current=run.current, enabled=step.enabled, running=step.running)


@interprets(s.Running)
def _running(step: s.Running, run: Run) -> None:
    ensure_restarted_or_running(
        name=step.name, unit=step.unit, current=run.current, restart=any_holds(step.restart_if, run)
    )


@interprets(s.RootOnly)
def _root_only(step: s.RootOnly, run: Run) -> None:
    private = dict(step.private)
    state = host.get_fact(Permissions, paths=tuple(private), tools=step.tools)
    restrict_to_root(name=step.name, state=state, private=private, mode=step.mode)


@interprets(s.GeneratedSecrets)
def _generated(step: s.GeneratedSecrets, run: Run) -> None:
    ensure_secrets(name=step.name, secrets=step.secrets, current=run.current)


@interprets(s.CopiedSecrets)
def _copied(step: s.CopiedSecrets, run: Run) -> None:
    if step.skip_if_none and not step.copies:
        return
    op = ensure_copied_secrets(name=step.name, copies=step.copies, current=run.current)
    if step.key:
        run.keyed[step.key] = op


def _as_wanted(want: s.FileWant, current: HostState) -> bool:
    have = current.files.get(want.path)
    return (
        have is not None
        and have.mode in want.modes
        and (want.owner is None or (have.owner, have.group) == (want.owner, want.owner))
    )


@operation()
def run_script(script: str, needed: bool):
    if needed:
        yield f"sh -c {shlex.quote(script)}"


@interprets(s.SecretScript)
def _secret_script(step: s.SecretScript, run: Run) -> None:
    needed = not all(_as_wanted(f, run.current) for f in step.files)
    run_script(name=step.name, script=step.script, needed=needed)


@interprets(s.Jwt)
def _jwt(step: s.Jwt, run: Run) -> None:
    ensure_jwt(name=step.name, jwt=step.jwt, current=run.current)


@interprets(s.WheelInstall)
def _wheel(step: s.WheelInstall, run: Run) -> None:
    ensure_wheel_release(name=step.name, release=step.release, current=run.current)


@interprets(s.ArtifactInstall)
def _artifact(step: s.ArtifactInstall, run: Run) -> None:
    install = ensure_bundle if step.node.artifact.npm else ensure_release
    install(name=step.name, node=step.node, current=run.current)


@interprets(s.Image)
def _image(step: s.Image, run: Run) -> None:
    ensure_image(name=step.name, node=step.node)


@interprets(s.Switch)
def _switch(step: s.Switch, run: Run) -> None:
    ensure_switched(name=step.name, release=step.release, current=run.current)


@operation()
def run_command(command: str, needed: bool):
    if needed:
        yield command


@interprets(s.Command)
def _command(step: s.Command, run: Run) -> None:
    run_command(name=step.name, command=step.command, needed=any_holds(step.when, run))
