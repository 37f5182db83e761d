"""deploy_host: every concern, in order, for the host in pyinfra's context."""

from __future__ import annotations

import json

from pyinfra import host

from ..monitoring import receiver_secrets, secrets, shipper_units
from ..plan import HostPlan
from ..render import HostFacts, ManagedFile, host_files
from . import agent, nodes
from .base import directories, ensure_directories, ensure_packages, ensure_system_users
from .facts import HostState, ManagedState
from .files import ensure_files, remove_files
from .firewall import ensure_firewall
from .hardening import ensure_hardening
from .kernel import deferred_sysctls, ensure_kernel_tuning, ensure_limits, ensure_sysctls
from .monitoring import CONCERNS, ensure_log_shipper, ensure_monitoring
from .services import ensure_exporters_running, ensure_log_retention, ensure_sshd_hardened, ensure_time_sync

DEFERRED_REPORT = "/var/lib/mevfleet/deferred.json"
# Where mevfleet writes files whose set varies with the plan: anything here it did not plan is stale.
OWNED_GLOBS = ("/etc/sysctl.d/*-mevfleet-*.conf", "/etc/systemd/system/chrony.service.d/90-mevfleet-*.conf")
SYSFS_READ_ONLY = "sysfs is read-only in a container; the machine's own setting applies"


def read_state(plan: HostPlan) -> HostState:
    # Render for a container too, so the probe covers every path either runtime may need.
    paths = sorted(
        {f.path for f in host_files(plan, HostFacts(container=True))}
        | {DEFERRED_REPORT}
        | {s.path for s in secrets(plan)}
        | {s.path for s in receiver_secrets(plan)}
        | set(nodes.probe_files(plan))
        | set(agent.probe_files(plan))
    )
    current = host.get_fact(
        ManagedState,
        files=tuple(paths),
        dirs=tuple(d for d, _, _ in directories(plan)),
        sysctls=tuple(plan.sysctls()),
        globs=OWNED_GLOBS,
        units=units(plan),
        links=tuple(nodes.probe_links(plan) + agent.probe_links(plan)),
    )
    if plan.owns_kernel is not None:
        current.container = not plan.owns_kernel
    return current


def units(plan: HostPlan) -> tuple[str, ...]:
    """Every unit the deploy keeps enabled or running, read in the same probe as the files."""
    fixed = ("nftables.service", "chrony.service", "mevfleet-kernel-tuning.service")
    return (
        fixed
        + tuple(exporter_units(plan))
        + tuple(nodes.node_units(plan))
        + tuple(agent.agent_units(plan))
        + tuple(shipper_units(plan))
    )


def exporter_units(plan: HostPlan) -> list[str]:
    return [f"{s.package}.service" for s in plan.services if s.package]


def deferred(plan: HostPlan, current: HostState) -> dict[str, dict[str, str]]:
    kernel = {"thp": SYSFS_READ_ONLY, "cpu_governor": SYSFS_READ_ONLY} if current.container else {}
    return {"sysctls": deferred_sysctls(plan, current), "kernel": kernel}


def deploy_host(plan: HostPlan) -> dict[str, dict[str, str]]:
    """Queue the host's operations; returns what is deferred (and why) for the summary."""
    current = read_state(plan)
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    report = deferred(plan, current)
    files = [
        *host_files(plan, facts),
        ManagedFile(path=DEFERRED_REPORT, content=json.dumps(report, indent=2, sort_keys=True) + "\n", concern="plan"),
    ]

    def of(concern: str) -> list[ManagedFile]:
        return [f for f in files if f.concern == concern]

    ensure_packages(plan)
    ensure_system_users(name="System users per service", users=plan.users)
    ensure_directories(name="mevfleet and service directories", plan=plan, current=current)
    ensure_files(name="Host plan and deferral report", files=of("plan"), current=current)
    ensure_firewall(of("firewall"), current)
    ensure_sshd_hardened(of("ssh"), current)
    ensure_hardening(of("hardening"), current)
    ensure_sysctls(plan, of("sysctl"), current)
    stale = sorted(current.globbed - {f.path for f in files})
    if stale:
        remove_files(name="Remove files the plan no longer has", paths=stale)
    ensure_limits(of("limits"), current)
    ensure_kernel_tuning(of("kernel"), current)
    ensure_time_sync(of("time"), current)
    ensure_log_retention(of("journald"), of("logrotate"), current)
    ensure_monitoring({c: of(c) for c in CONCERNS}, secrets(plan), current, receiver_secrets(plan))
    ensure_log_shipper(plan, {c: of(c) for c in CONCERNS}, current)
    ensure_exporters_running(exporter_units(plan), current)
    nodes.ensure_nodes(plan, of("nodes"), current)
    agent.ensure_agent(plan, of("agent"), current)
    return report
