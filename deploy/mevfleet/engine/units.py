"""ensure_unit: enabled and active as planned, judged from the one-command probe (no per-unit facts)."""

from __future__ import annotations

from pyinfra.api import operation

from .facts import HostState

# Oneshot units with RemainAfterExit report "active" when they ran; a failed start leaves "failed".
ACTIVE = {"active", "reloading", "activating"}


@operation()
def ensure_unit(unit: str, current: HostState, enabled: bool = True, running: bool | None = True):
    file_state, active_state = current.units.get(unit, ("", ""))
    if enabled and file_state not in ("enabled", "static", "alias", "generated"):
        yield f"systemctl enable {unit}"
    if running and active_state not in ACTIVE:
        yield f"systemctl start {unit}"
