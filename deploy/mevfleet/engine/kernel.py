"""Sysctls applied live: the one kernel step that is not files (steps.LiveSysctls)."""

from __future__ import annotations

import shlex

from pyinfra.api import operation

from ..desired import deferred_sysctls
from ..model import HostPlan
from ..probe import HostState


@operation()
def apply_sysctls(plan: HostPlan, current: HostState):
    """Write live only the values that differ, and never a global knob from inside a container."""
    deferred = deferred_sysctls(plan, current)
    for key, value in plan.sysctls().items():
        if key not in deferred and current.sysctls.get(key) != value:
            yield f"sysctl -q -w {shlex.quote(f'{key}={value}')}"
