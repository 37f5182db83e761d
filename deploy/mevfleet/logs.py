"""The logs concern on every host: journald kept persistent for the fleet's retention, logrotate for
/var/log/mevfleet. Shipping the logs to the monitoring hosts is monitoring.py's (log_shipper_files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts


def logs_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """journald's drop-in (journald restarts on it) and logrotate's rule (read at its next run)."""
    return [
        FileSpec(
            path="/etc/systemd/journald.conf.d/90-mevfleet.conf", concern="journald", template="logs/journald.conf.j2"
        ),
        FileSpec(path="/etc/logrotate.d/mevfleet", concern="logrotate", template="logs/logrotate.j2"),
    ]
