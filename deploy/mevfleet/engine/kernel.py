"""Kernel and limits: sysctl.d per concern applied live, limits, THP and CPU governor at boot."""

from __future__ import annotations

import shlex

from pyinfra.api import operation

from ..desired import deferred_sysctls
from ..model import HostPlan
from ..probe import HostState
from ..render import ManagedFile
from .files import ensure_files, ensure_files_then
from .units import ensure_unit


@operation()
def apply_sysctls(plan: HostPlan, current: HostState):
    """Write live only the values that differ, and never a global knob from inside a container."""
    deferred = deferred_sysctls(plan, current)
    for key, value in plan.sysctls().items():
        if key not in deferred and current.sysctls.get(key) != value:
            yield f"sysctl -q -w {shlex.quote(f'{key}={value}')}"


def ensure_sysctls(plan: HostPlan, files: list[ManagedFile], current: HostState) -> None:
    ensure_files(name="sysctl.d files", files=files, current=current)
    apply_sysctls(name="Apply sysctls live", plan=plan, current=current)


def ensure_limits(files: list[ManagedFile], current: HostState) -> None:
    # systemd reads DefaultLimit* only when the manager re-executes.
    ensure_files_then(
        "limits.d and systemd DefaultLimit*",
        files,
        current,
        then="Re-execute systemd for new default limits",
        commands=["systemctl daemon-reexec"],
    )


def ensure_kernel_tuning(files: list[ManagedFile], current: HostState) -> None:
    # Restart applies the new values; in a container the unit's condition skips it without failing.
    ensure_files_then(
        "THP and CPU governor unit",
        files,
        current,
        then="Apply THP and CPU governor",
        commands=["systemctl daemon-reload", "systemctl restart mevfleet-kernel-tuning.service"],
    )
    # running=None: in a container the unit's condition keeps it inactive, and that is its steady state.
    ensure_unit(
        name="Enable mevfleet-kernel-tuning", unit="mevfleet-kernel-tuning.service", current=current, running=None
    )
