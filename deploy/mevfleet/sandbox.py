"""Sandbox drop-ins for the Debian units the deploy runs (data: catalog/sandbox.yml).

Each unit a host runs gets /etc/systemd/system/<unit>.d/80-mevfleet-sandbox.conf, in the concern that
restarts the unit, so a changed sandbox takes effect at once. Our own units carry their sandbox in their
templates (templates/nodes, templates/agent, templates/kernel, templates/logs).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from . import REPO_ROOT
from .model import HostPlan

SANDBOX_YML = REPO_ROOT / "deploy" / "mevfleet" / "catalog" / "sandbox.yml"
DROP_IN = "80-mevfleet-sandbox.conf"
# unit -> the concern whose files restart it (render.py / engine).
CONCERNS = {
    "prometheus-node-exporter.service": "node_exporter",
    "prometheus-alertmanager.service": "alertmanager",
    "prometheus.service": "prometheus",
    "systemd-journal-upload.service": "journal-upload",
    "chrony.service": "time",
    "nftables.service": "firewall",
    "stunnel@journal-remote.service": "journal-remote",
    "postgresql.service": "postgresql",
    "postgresql@15-main.service": "postgresql",
}
# Exposure targets of `systemd-analyze security` (lower is better).
DEBIAN_TARGET = 3.0
OURS_TARGET = 2.0


@cache
def _profiles() -> dict[str, Any]:
    return yaml.safe_load(SANDBOX_YML.read_text())


def settings(unit: str, extra: dict[str, str | list[str]] | None = None) -> dict[str, str | list[str]]:
    data = _profiles()
    return {**data["base"], **data["units"][unit], **(extra or {})}


def drop_in(unit: str, host: str, extra: dict[str, str | list[str]] | None = None) -> str:
    lines = [
        f"# Managed by mevfleet ({host}): the sandbox of {unit} (deploy/mevfleet/catalog/sandbox.yml).",
        "[Service]",
    ]
    for key, value in settings(unit, extra).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key}={item}")
    return "\n".join(lines) + "\n"


def path(unit: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{DROP_IN}"


def sandboxed_units(plan: HostPlan, shipper: bool, monitoring: bool) -> list[str]:
    """The Debian units this host runs that get a sandbox drop-in."""
    units = ["nftables.service", "chrony.service"]
    if any(s.package == "prometheus-node-exporter" for s in plan.services):
        units.append("prometheus-node-exporter.service")
    if monitoring:
        units += ["prometheus.service", "prometheus-alertmanager.service"]
    if plan.control is not None:
        units += ["postgresql.service", "postgresql@15-main.service"]
    if shipper:
        units.append("systemd-journal-upload.service")
        if monitoring:
            units.append("stunnel@journal-remote.service")
    return units
