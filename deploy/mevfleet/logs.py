"""The logs concern on every host: journald kept persistent for the fleet's retention, logrotate for
/var/log/mevfleet. Shipping the logs to the monitoring hosts is monitoring.py's (log_shipper_files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import FileSpec, HostPlan

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step


def logs_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """journald's drop-in (journald restarts on it) and logrotate's rule (read at its next run)."""
    return [
        FileSpec(
            path="/etc/systemd/journald.conf.d/90-mevfleet.conf", concern="journald", template="logs/journald.conf.j2"
        ),
        FileSpec(path="/etc/logrotate.d/mevfleet", concern="logrotate", template="logs/logrotate.j2"),
    ]


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """journald retention and logrotate; on journal-remote fleets, Debian's uploader on every host and the
    receivers on monitoring hosts, each restarted when its drop-ins or its certificate change and kept
    enabled and running. (Alloy is the monitoring concern's, a checked service like the others.)"""
    from .monitoring import (
        JOURNAL_RECEIVERS,
        JOURNAL_TLS_FRONT,
        is_monitoring,
        journal_tls_copies,
        shipper_packages,
        shipper_units,
    )
    from .steps import CopiedSecrets, Files, Packages, Select, Shell, Unit

    out: list[Step] = [
        Files(
            name="journald retention",
            files=Select(concern="journald"),
            then_name="Restart journald for its new config",
            then=("systemctl restart systemd-journald.service",),
        ),
        Files(name="logrotate policy", files=Select(concern="logrotate")),
    ]
    packages = tuple(shipper_packages(plan))
    out.append(Packages(packages=packages))
    tls = given.journal_tls
    # Certificates first (the services read them at start), restarts for them last (after the configs that
    # name them are in place: on a first deploy a restart before would start stunnel without its config).
    if tls:
        out.append(
            CopiedSecrets(
                name="Journal TLS key, certificate and fleet CA (root's, read by the shippers' group)",
                copies=tuple(journal_tls_copies(plan, str(tls.ca), str(tls.cert), str(tls.key))),
                key="journal-tls",
            )
        )
    out += [
        # Stopping the target stops every receiver (PartOf=), a dropped host's too; starting it starts the
        # planned ones on their new ports.
        Files(
            name="journal-remote configuration",
            files=Select(concern="journal-remote"),
            then_name="Restart the journal receivers and their TLS front on their new config",
            then=(
                "systemctl daemon-reload",
                f"systemctl stop {JOURNAL_RECEIVERS}",
                f"systemctl start {JOURNAL_RECEIVERS}",
                f"systemctl restart {JOURNAL_TLS_FRONT}",
            ),
            skip_if_none=True,
        ),
        Files(
            name="journal-upload configuration",
            files=Select(concern="journal-upload"),
            then_name="Restart journal-upload for its new config",
            then=("systemctl daemon-reload", "systemctl restart systemd-journal-upload.service"),
            skip_if_none=True,
        ),
    ]
    if tls:
        front = (f"systemctl restart {JOURNAL_TLS_FRONT}",) if is_monitoring(plan) else ()
        out.append(
            Shell(
                name="Restart journal shipping for its new certificate",
                commands=("systemctl daemon-reload", *front, "systemctl restart systemd-journal-upload.service"),
                if_changed="journal-tls",
            )
        )
    if packages:
        out += [Unit(name=f"{unit} enabled and running", unit=unit) for unit in shipper_units(plan)]
    return tuple(out)
