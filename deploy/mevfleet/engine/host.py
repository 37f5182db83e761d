"""deploy_host: every concern, in order, for the host in pyinfra's context."""

from __future__ import annotations

import json

from pyinfra import host

from .. import probe
from ..desired import DEFERRED_REPORT, Desired, deferred, exporter_units
from ..drift import Drift, findings
from ..fleetca import HostCredentials
from ..monitoring import (
    CONCERNS,
    CopiedSecret,
    journal_tls_copies,
    receiver_secrets,
    secrets,
)
from ..probe import HostState
from ..render import HostFacts, ManagedFile
from ..space import refuse_if_full
from . import agent, control, nodes
from .base import ensure_directories, ensure_packages, ensure_system_users
from .facts import ManagedState
from .files import ensure_files, remove_files
from .firewall import ensure_firewall
from .hardening import ensure_hardening
from .kernel import ensure_kernel_tuning, ensure_limits, ensure_sysctls
from .live import read_live, repair
from .monitoring import ensure_log_shipper, ensure_monitoring
from .services import ensure_exporters_running, ensure_log_retention, ensure_sshd_hardened, ensure_time_sync
from .units import ensure_removed


def read_state(want: Desired) -> HostState:
    current = host.get_fact(ManagedState, script=probe.script(**want.probe_args()))
    if want.plan.owns_kernel is not None:
        current.container = not want.plan.owns_kernel
    return current


def live_drift(want: Desired, authorized_keys: tuple[str, ...] | None = None) -> list[Drift]:
    """What the host runs or holds beyond its managed files (mevfleet.drift), judged against the plan."""
    current = read_state(want)
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    expected = want.expected(facts, authorized_keys)
    return findings(expected, read_live(expected))


def deploy_host(
    want: Desired,
    authorized_keys: tuple[str, ...] | None = None,
    journal_tls: HostCredentials | None = None,
    fleet_copies: tuple[CopiedSecret, ...] = (),
) -> tuple[dict, list[Drift]]:
    """Queue the host's operations; returns what is deferred (and why) and the live drift found.

    want: the host's desired state, made once for this run (the same for file_diffs).

    journal_tls: this host's certificate and key from the fleet CA (journal-remote fleets).
    fleet_copies: secrets the control machine holds for this host (control.py: an agent's token and bus
    password; on the control host, the agents' tokens, the API certificate and Redis's ACL file)."""
    plan = want.plan
    current = read_state(want)
    # Before anything is queued: a host short of room is failed by name and left as it is.
    refuse_if_full(current.filesystems)
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    report = deferred(plan, current)
    drifts = live_drift(want, authorized_keys)

    def drift_of(*kinds: str) -> list[Drift]:
        return [d for d in drifts if d.kind in kinds and (d.fix or d.after)]

    files = [
        *want.files(facts),
        ManagedFile(path=DEFERRED_REPORT, content=json.dumps(report, indent=2, sort_keys=True) + "\n", concern="plan"),
    ]

    def of(concern: str) -> list[ManagedFile]:
        return [f for f in files if f.concern == concern]

    ensure_packages(plan)
    ensure_system_users(name="System users per service", users=plan.users)
    ensure_directories(name="mevfleet and service directories", plan=plan, current=current)
    ensure_files(name="Host plan and deferral report", files=of("plan"), current=current)
    # What the plan dropped goes before anything planned starts (a dropped unit may hold a planned port).
    for removal in want.to_remove(current.present):
        ensure_removed(name=removal.task, removal=removal)
    ensure_firewall(of("firewall"), current)
    repair(name="Live nftables ruleset equals the plan", drifts=drift_of("firewall"))
    repair(name="root's authorized_keys equal the inventory's", drifts=drift_of("authorized-keys"))
    ensure_sshd_hardened(of("ssh"), current)
    ensure_hardening(of("hardening"), current)
    ensure_sysctls(plan, of("sysctl"), current)
    stale = sorted(current.globbed - {f.path for f in files})
    if stale:
        remove_files(name="Remove files the plan no longer has", paths=stale)
    repair(name="Owned directories hold only planned files", drifts=drift_of("owned-files"))
    ensure_limits(of("limits"), current)
    ensure_kernel_tuning(of("kernel"), current)
    ensure_time_sync(of("time"), current)
    ensure_log_retention(of("journald"), of("logrotate"), current)
    redis_copies = [c for c in fleet_copies if c.service == "redis"]
    ensure_monitoring({c: of(c) for c in CONCERNS}, secrets(plan), current, receiver_secrets(plan) + redis_copies)
    tls = (
        journal_tls_copies(plan, str(journal_tls.ca), str(journal_tls.cert), str(journal_tls.key))
        if journal_tls
        else []
    )
    ensure_log_shipper(plan, {c: of(c) for c in CONCERNS}, current, tls)
    ensure_exporters_running(exporter_units(plan), of("node_exporter"), current)
    nodes.ensure_nodes(plan, of("nodes"), current)
    agent_copies = [c for c in fleet_copies if c.service == "agent"]
    agent.ensure_agent(plan, of("agent"), current, control.ensure_agent_secrets(agent_copies, current))
    control.ensure_control(
        plan,
        {c: of(c) for c in ("postgresql", "control")},
        current,
        [c for c in fleet_copies if c.service == "control"],
    )
    repair(name="Unit files and drop-ins only as planned", drifts=drift_of("unit-override"))
    return report, drifts
