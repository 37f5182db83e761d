"""ensure_unit: unmasked, enabled and active as planned, judged from the one-command probe (no per-unit facts).

A unit that gave up (failed, e.g. after its start limit) is reset and started, and then has a few seconds
to stay up: if it falls over again the operation fails with the unit's last log line as its cause, so the
deploy names a crash loop instead of claiming to have fixed it.
"""

from __future__ import annotations

import shlex

from pyinfra.api import operation

from ..desired import removal_script
from ..model import Removal
from ..probe import HostState

# Oneshot units with RemainAfterExit report "active" when they ran; a failed start leaves "failed".
ACTIVE = {"active", "reloading", "activating"}
ENABLED = ("enabled", "static", "alias", "generated", "indirect")
# How long a unit brought back from `failed` must stay up before the deploy calls it repaired.
SETTLE_S = 3


def state_note(unit: str, current: HostState) -> str:
    """What the operation's name adds when it repairs more than a stopped unit."""
    file_state, active = current.units.get(unit.strip("'"), ("", ""))
    if file_state == "masked":
        return " (was masked: unmasked)"
    if active == "failed":
        return " (was failed: reset-failed, started)"
    return ""


def _bring_back(unit: str) -> list[str]:
    q = unit if unit.startswith("'") else shlex.quote(unit)
    return [
        f"systemctl reset-failed {q}",
        f"systemctl start {q} && sleep {SETTLE_S} && systemctl is-active --quiet {q} || "
        f'{{ echo "{unit.strip(chr(39))} fails again: $(journalctl -u {q} -n 1 -o cat --no-pager)" >&2; exit 1; }}',
    ]


def ensure_unit(name: str, unit: str, current: HostState, enabled: bool = True, running: bool | None = True):
    return _ensure_unit(
        name=name + state_note(unit, current), unit=unit, current=current, enabled=enabled, running=running
    )


@operation()
def _ensure_unit(unit: str, current: HostState, enabled: bool = True, running: bool | None = True):
    file_state, active_state = current.units.get(unit, ("", ""))
    if file_state == "masked":
        yield f"systemctl unmask {unit}"
    if enabled and file_state not in ENABLED:
        yield f"systemctl enable {unit}"
    if running and active_state == "failed":
        yield from _bring_back(unit)
    elif running and active_state not in ACTIVE:
        yield f"systemctl start {unit}"


def ensure_restarted_or_running(name: str, unit: str, current: HostState, restart: bool):
    return _ensure_restarted_or_running(
        name=name + ("" if restart else state_note(unit, current)), unit=unit, current=current, restart=restart
    )


@operation()
def _ensure_restarted_or_running(unit: str, current: HostState, restart: bool):
    """Restart `unit` when a file, release or secret it reads changed; else only keep it enabled and active."""
    file_state, active = current.units.get(unit.strip("'"), ("", ""))
    if file_state == "masked":
        yield f"systemctl unmask {unit}"
    if restart:
        # reset-failed: a unit that hit its start limit on a bad release must be allowed to start again.
        yield f"systemctl daemon-reload && systemctl reset-failed {unit} 2>/dev/null; systemctl enable {unit}"
        yield f"systemctl restart {unit}"
        return
    if file_state != "enabled":
        yield f"systemctl enable {unit}"
    if active == "failed":
        yield from _bring_back(unit)
    elif active not in ACTIVE:
        yield f"systemctl start {unit}"


@operation()
def ensure_removed(removal: Removal):
    """Something the plan dropped and the probe still found (desired.to_remove): its one script."""
    yield f"sh -c {shlex.quote(removal_script(removal))}"
