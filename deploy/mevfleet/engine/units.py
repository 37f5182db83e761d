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


@operation()
def ensure_restarted_or_running(unit: str, current: HostState, restart: bool):
    """Restart `unit` when a file, release or secret it reads changed; else only keep it enabled and active."""
    file_state, active = current.units.get(unit, ("", ""))
    if restart:
        # reset-failed: a unit that hit its start limit on a bad release must be allowed to start again.
        yield f"systemctl daemon-reload && systemctl reset-failed {unit} 2>/dev/null; systemctl enable {unit}"
        yield f"systemctl restart {unit}"
        return
    if file_state != "enabled":
        yield f"systemctl enable {unit}"
    if active not in ACTIVE:
        yield f"systemctl start {unit}"
