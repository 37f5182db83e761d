"""What a concern asks of a host, as typed data: the step kinds the pyinfra engine interprets.

Each concern module (base.py, firewall.py, ssh.py, hardening.py, kernel.py, timesync.py, monitoring.py,
logs.py, nodes/, agent.py, control.py) declares `steps(plan, given)`; concerns.py keeps them in one order
(the Ansible roles' order, roles/ and site.yml). engine/steps.py interprets each kind against the one-command
probe (mevfleet.probe.HostState) and names no concern: what a step does is in its data.

Files are chosen by concern (and path) from the host's rendered files (render.host_files), which depend on
facts the probe finds: a step names which files, the engine picks them once the facts are known. Conditions
that depend on the host (a file differs, a release is not switched yet, a secret is missing) are Triggers,
judged by the engine from the same probe; nothing here reads the host.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .fleetca import HostCredentials
from .model import JwtPlan, NodePlan, SystemUser
from .monitoring import CopiedSecret, Secret
from .release import Release, WheelRelease
from .render import ManagedFile

# Secrets are step data: re-exported so an engine takes every step type from here.
__all__ = ["CopiedSecret", "Secret"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Given(Frozen):
    """What a deploy run hands a host besides its plan: secrets the control machine holds for it (the
    agents' tokens, the bus's files, alert receivers' secrets) and its journal TLS credentials."""

    copies: tuple[CopiedSecret, ...] = ()
    journal_tls: HostCredentials | None = None

    def copies_for(self, service: str) -> tuple[CopiedSecret, ...]:
        return tuple(c for c in self.copies if c.service == service)


class Select(Frozen):
    """Files of one concern; with paths or prefixes, only those (a node's own unit and config directory)."""

    concern: str
    paths: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    exclude_prefixes: tuple[str, ...] = ()

    def pick(self, files: list[ManagedFile]) -> list[ManagedFile]:
        narrowed = bool(self.paths or self.prefixes)
        return [
            f
            for f in files
            if f.concern == self.concern
            and (not narrowed or f.path in self.paths or f.path.startswith(self.prefixes))
            and not f.path.startswith(self.exclude_prefixes or ("\0",))
        ]


# Triggers: host conditions a step runs or restarts on, judged from the probe.
class FilesChanged(Frozen):
    files: Select


class NotSwitched(Frozen):
    release: Release


class SecretsMissing(Frozen):
    paths: tuple[str, ...]


class CopiesChanged(Frozen):
    copies: tuple[CopiedSecret, ...]


class JwtRewrites(Frozen):
    """The unit is among those a JWT repair restarts (engine/nodes.jwt_restarts)."""

    jwts: tuple[JwtPlan, ...]
    unit: str


Trigger = FilesChanged | NotSwitched | SecretsMissing | CopiesChanged | JwtRewrites


# Steps.
class Packages(Frozen):
    """Debian packages, installed only when missing (the index refreshed only then)."""

    packages: tuple[str, ...]
    no_recommends: bool = False


class Users(Frozen):
    name: str
    users: tuple[SystemUser, ...]


class Directories(Frozen):
    name: str
    directories: tuple[tuple[str, str, str], ...]  # (path, mode, owner); the group is the owner's


class Files(Frozen):
    """These files as planned; when any changed, `then` (restart, reload, daemon-reexec, or a check that
    loads only what it accepts) as one step. skip_if_none: no step at all when the facts leave no file."""

    name: str
    files: Select
    then_name: str | None = None
    then: tuple[str, ...] = ()
    skip_if_none: bool = False
    key: str | None = None  # later steps may run on this step's change (Shell.if_changed)


class CheckedFiles(Frozen):
    """Changed files swapped in beside the running ones, `check`ed by the service's own validator and
    swapped back if it refuses, all in one remote step; `unit` restarts when something changed or a
    trigger holds. installed_only: files put in place, checked and restarted only if the unit exists."""

    name: str
    files: Select
    check: str | None
    unit: str
    restart_if: tuple[Trigger, ...] = ()
    installed_only: bool = False
    skip_if_none: bool = False


class Shell(Frozen):
    """Commands run when an earlier step (by key) changed something."""

    name: str
    commands: tuple[str, ...]
    if_changed: str


class LiveSysctls(Frozen):
    """The plan's sysctls written live where they differ, except those deferred (desired.deferred_sysctls)."""

    name: str


class StaleFiles(Frozen):
    """Files in the directories mevfleet owns (desired.OWNED_GLOBS) that no concern plans any more."""

    name: str


class Removals(Frozen):
    """What the concerns' removals (desired.Desired.removals) name and the probe still finds."""


class Repair(Frozen):
    """Live drift of these kinds (mevfleet.drift) repaired."""

    name: str
    kinds: tuple[str, ...]


class Unit(Frozen):
    """Unmasked, enabled (if `enabled`) and active; running=None: the unit's condition decides."""

    name: str
    unit: str
    enabled: bool = True
    running: bool | None = True


class Running(Frozen):
    """Restarted when a trigger holds (a file, release or secret it reads changed), else kept running."""

    name: str
    unit: str
    restart_if: tuple[Trigger, ...] = ()


class RootOnly(Frozen):
    """Paths not ours to write made private to root (never loosened), and files given a dpkg-statoverride
    (kept if an override exists: an operator's decision or an earlier run's)."""

    name: str
    private: tuple[tuple[str, str], ...]  # (path, the widest mode allowed)
    tools: tuple[str, ...]  # toolchain names under /usr/bin/<triplet>-
    mode: str


class GeneratedSecrets(Frozen):
    """Secrets made on the host when absent (random, owner-only), never overwritten."""

    name: str
    secrets: tuple[Secret, ...]


class CopiedSecrets(Frozen):
    """Secret files from the control machine copied to the host without showing them."""

    name: str
    copies: tuple[CopiedSecret, ...]
    skip_if_none: bool = False
    key: str | None = None


class FileWant(Frozen):
    path: str
    modes: tuple[str, ...]
    owner: str | None = None  # also the group; None: any


class SecretScript(Frozen):
    """A script that makes secrets on the host (never seen by the control machine), run when any of its
    files is missing or not as wanted."""

    name: str
    script: str
    files: tuple[FileWant, ...]


class Jwt(Frozen):
    """A client pair's engine-API secret, identical on both sides (nodes/jwt.py): bespoke, as its repair
    must pick which copy to keep."""

    name: str
    jwt: JwtPlan


class WheelInstall(Frozen):
    """A wheelhouse venv release (the agent, the control plane, a node run from the agent's bundle)."""

    name: str
    release: WheelRelease


class ArtifactInstall(Frozen):
    """A node's binary or npm bundle release, sha256 checked on the host before anything is unpacked."""

    name: str
    node: NodePlan


class Image(Frozen):
    name: str
    node: NodePlan


class Switch(Frozen):
    """`current` -> the release, the old target kept as `previous`."""

    name: str
    release: Release


class Command(Frozen):
    """One command run when any trigger holds (the control plane's schema migration)."""

    name: str
    command: str
    when: tuple[Trigger, ...]


Step = (
    Packages
    | Users
    | Directories
    | Files
    | CheckedFiles
    | Shell
    | LiveSysctls
    | StaleFiles
    | Removals
    | Repair
    | Unit
    | Running
    | RootOnly
    | GeneratedSecrets
    | CopiedSecrets
    | SecretScript
    | Jwt
    | WheelInstall
    | ArtifactInstall
    | Image
    | Switch
    | Command
)
