"""The fleet control plane on its host: PostgreSQL configured and checked, secrets made on the host, the
mevcontrol release, its schema migrated, its unit; and each agent host's bus secrets.

Judged from the one-command probe like the agent: a second run with nothing changed queues nothing.
"""

from __future__ import annotations

import shlex

from pyinfra.api import operation

from ..control import (
    POSTGRES_CHECK,
    POSTGRES_UNIT,
    UNIT,
    ControlPlan,
    host_secret_files,
    migrate_command,
    secrets_script,
)
from ..model import HostPlan
from ..monitoring import REDIS_AUTH, CopiedSecret
from ..probe import HostState
from ..release import control_release
from ..render import ManagedFile
from .files import differs, ensure_files
from .monitoring import changed_copies, ensure_checked_files, ensure_copied_secrets
from .release import ensure_switched, ensure_wheel_release
from .units import ensure_restarted_or_running, ensure_unit


@operation()
def ensure_host_secrets(control: ControlPlan, current: HostState):
    wanted = {"0600", "0640"}
    if any((have := current.files.get(p)) is None or have.mode not in wanted for p in host_secret_files(control)):
        yield f"sh -c {shlex.quote(secrets_script(control, REDIS_AUTH))}"


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
    release = control_release(control)
    ensure_wheel_release(name=f"Control plane release {control.version}", release=release, current=current)
    changed = any(differs(f, current) for f in of["control"])
    ensure_files(name="Control plane config and unit", files=of["control"], current=current)
    switched = not release.switched(current)
    ensure_switched(name=f"Control plane current -> {control.version}", release=release, current=current)
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
