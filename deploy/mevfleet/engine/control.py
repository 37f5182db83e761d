"""The fleet control plane on its host: PostgreSQL configured and checked, secrets made on the host, the
mevcontrol release, its schema migrated, its unit; and each agent host's bus secrets.

Judged from the one-command probe like the agent: a second run with nothing changed queues nothing.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..agent import AgentBuildError, venv_install_script, wheelhouse
from ..control import (
    POSTGRES_CHECK,
    POSTGRES_UNIT,
    RELEASE_ROOT,
    UNIT,
    ControlPlan,
    host_secret_files,
    link,
    marker,
    migrate_command,
    release_dir,
    secrets_script,
)
from ..monitoring import REDIS_AUTH, CopiedSecret
from ..nodes.artifacts import file_sha256, switch_script
from ..plan import HostPlan
from ..probe import HostState
from ..render import ManagedFile
from .files import differs, ensure_files
from .monitoring import changed_copies, ensure_checked_files, ensure_copied_secrets
from .units import ensure_restarted_or_running, ensure_unit


@operation()
def ensure_host_secrets(control: ControlPlan, current: HostState):
    wanted = {"0600", "0640"}
    if any((have := current.files.get(p)) is None or have.mode not in wanted for p in host_secret_files(control)):
        yield f"sh -c {shlex.quote(secrets_script(control, REDIS_AUTH))}"


@operation()
def ensure_release(control: ControlPlan, current: HostState):
    if current.files.get(marker(control)) is not None:
        return
    try:
        local = wheelhouse(control.version, "control")
    except AgentBuildError as exc:
        yield f"echo {shlex.quote(str(exc))} >&2; exit 1"
        return
    sha = file_sha256(local)
    upload = f"{RELEASE_ROOT}/.incoming/{sha}.tar"
    yield f"mkdir -p {shlex.quote(upload.rsplit('/', 1)[0])}"
    yield FileUploadCommand(str(local), upload, remote_temp_filename=host.get_temp_filename(upload))
    script = venv_install_script(
        release_dir(control), upload, sha, requirement="mevagent[control]", program="mevcontrol"
    )
    yield f"sh -c {shlex.quote(script)}"


@operation()
def ensure_link(control: ControlPlan, current: HostState):
    if current.links.get(link()) != release_dir(control):
        yield f"sh -c {shlex.quote(switch_script(link(), f'{RELEASE_ROOT}/previous', release_dir(control)))}"


@operation()
def ensure_migrated(control: ControlPlan, needed: bool):
    if needed:
        yield migrate_command(control)


def ensure_control(
    plan: HostPlan, of: dict[str, list[ManagedFile]], current: HostState, copies: list[CopiedSecret]
) -> None:
    """PostgreSQL's files (checked, then the cluster restarted), the secrets, the release, the schema,
    then mevcontrol (restarted when its config, unit, release, database or a copied secret changed)."""
    control = plan.control
    if control is None:
        return
    ensure_unit(name="postgresql enabled and running", unit="postgresql.service", current=current)
    ensure_checked_files(
        name="PostgreSQL configuration (checked before restart)",
        files=of["postgresql"],
        current=current,
        check=POSTGRES_CHECK,
        unit=POSTGRES_UNIT,
    )
    ensure_unit(name=f"{POSTGRES_UNIT} running", unit=POSTGRES_UNIT, current=current, enabled=False)
    new_secrets = any(current.files.get(p) is None for p in host_secret_files(control))
    ensure_host_secrets(
        name="Control plane secrets made on the host (PostgreSQL role and password, operator tokens)",
        control=control,
        current=current,
    )
    copied = bool(changed_copies(copies, current))
    ensure_copied_secrets(
        name="Agent API tokens, the API certificate and the bus's fleet CA for the control plane",
        copies=copies,
        current=current,
    )
    ensure_release(name=f"Control plane release {control.version}", control=control, current=current)
    changed = any(differs(f, current) for f in of["control"])
    ensure_files(name="Control plane config and unit", files=of["control"], current=current)
    switched = current.links.get(link()) != release_dir(control)
    ensure_link(name=f"Control plane current -> {control.version}", control=control, current=current)
    ensure_migrated(
        name="Control plane schema migrated (Alembic head)",
        control=control,
        needed=switched or new_secrets or changed,
    )
    ensure_restarted_or_running(
        name="Control plane running", unit=UNIT, current=current, restart=changed or switched or new_secrets or copied
    )


def ensure_agent_secrets(copies: list[CopiedSecret], current: HostState) -> bool:
    """An agent host's API token, bus password and the fleet CA from the control machine; True when one changes."""
    if not copies:
        return False
    changed = bool(changed_copies(copies, current))
    ensure_copied_secrets(name="Agent API token, bus password and the fleet CA (0600)", copies=copies, current=current)
    return changed
