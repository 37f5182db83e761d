"""The time concern: chrony (node hosts follow the monitoring hosts, which serve the fleet), planned here
(time_plan), and its measured offsets exported for Prometheus. Its steps (steps()) restart chrony and the
timer on change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .inventory import Host, Inventory
from .model import FileSpec, HostPlan, TimePlan
from .monitoring import TEXTFILE_DIR

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step

# chrony's own view of time, written to node_exporter's textfile directory by a timer on every host: how
# often, in step with node_exporter's 15 s scrape.
CHRONY_METRICS_SCRIPT = "/usr/local/sbin/mevfleet-chrony-metrics"
CHRONY_METRICS_UNIT = "mevfleet-chrony-metrics.service"
CHRONY_METRICS_TIMER = "mevfleet-chrony-metrics.timer"
CHRONY_METRICS_EVERY_S = 15


def time_plan(host: Host, inventory: Inventory, monitoring: list[Host]) -> TimePlan:
    """Node hosts follow the fleet's monitoring hosts first, then the inventory's sources; monitoring hosts
    follow those sources and serve the fleet's private networks (from their own clock if upstream is gone)."""
    is_monitoring = "monitoring" in host.roles
    monitoring_ips = tuple(m.address for m in monitoring if m.name != host.name)
    return TimePlan(
        servers=tuple(inventory.fleet.time_sources)
        if is_monitoring or not monitoring_ips
        else monitoring_ips + tuple(inventory.fleet.time_sources),
        serve_networks=tuple(inventory.fleet.private_networks) if is_monitoring else (),
    )


def time_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """chrony's config and defaults, the offsets exporter, and in a container the drop-in that runs chronyd
    without setting the clock (a container has no CAP_SYS_TIME)."""
    files = [
        FileSpec(path="/etc/chrony/chrony.conf", concern="time", template="time/chrony.conf.j2"),
        FileSpec(path="/etc/default/chrony", concern="time", template="time/chrony-default.j2"),
        FileSpec(
            path=CHRONY_METRICS_SCRIPT,
            concern="time",
            template="time/mevfleet-chrony-metrics.sh.j2",
            context={"textfile_dir": TEXTFILE_DIR},
            mode="0755",
        ),
        FileSpec(
            path=f"/etc/systemd/system/{CHRONY_METRICS_UNIT}",
            concern="time",
            template="time/mevfleet-chrony-metrics.service.j2",
            context={"textfile_dir": TEXTFILE_DIR},
        ),
        FileSpec(
            path=f"/etc/systemd/system/{CHRONY_METRICS_TIMER}",
            concern="time",
            template="time/mevfleet-chrony-metrics.timer.j2",
            context={"every_s": CHRONY_METRICS_EVERY_S},
        ),
    ]
    if facts.container:
        files.append(
            FileSpec(
                path="/etc/systemd/system/chrony.service.d/90-mevfleet-container.conf",
                concern="time",
                template="time/chrony-container.conf.j2",
            )
        )
    return files


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    from .steps import Files, Select, Unit

    return (
        # chrony and the timer that exports what it measured (templates/time) restart together.
        Files(
            name="chrony configuration",
            files=Select(concern="time"),
            then_name="Restart chrony for its new config",
            then=(
                "systemctl daemon-reload",
                "systemctl restart chrony.service",
                f"systemctl restart {CHRONY_METRICS_TIMER}",
            ),
        ),
        Unit(name="chrony running", unit="chrony.service"),
        Unit(name="chrony's offsets exported", unit=CHRONY_METRICS_TIMER),
    )
