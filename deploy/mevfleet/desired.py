"""What a host's plan wants beyond its rendered files, for either engine and for verify: the directories
and users' homes it owns, the units that must run, what the one-command probe reads (mevfleet.probe), which
planned settings a host cannot take live (and why), the live state drift is judged against, and what to
remove when the plan drops something (each concern's `removals`, the one script both engines run).

Pure: computed from the plan alone (and, for deferrals, from the probed HostState); no engine here.
A deploy makes one `Desired` per host and hands it to every step, so each part is computed (and the host's
templates rendered) once per run; the module's functions of a plan are one-off reads of the same.
"""

from __future__ import annotations

import shlex
from functools import cached_property
from typing import NamedTuple

from . import agent, control, monitoring, nodes
from .drift import Expected, keeps_docker_tables
from .model import HostPlan, Removal
from .monitoring import JOURNAL_TLS, JOURNAL_TLS_DIR, monitoring_units, receiver_secrets, secrets, shipper_units
from .probe import HostState
from .render import HostFacts, ManagedFile, host_files
from .space import write_paths
from .timesync import CHRONY_METRICS_TIMER

DIRECTORY_MODE = "0755"
# Installed without their Recommends: prometheus-node-exporter's (also pulled in by Prometheus's own) bring
# prometheus-node-exporter-collectors and with it nvme-cli, smartmontools and their timers and units, which
# fail on hosts without that hardware and leave systemd `degraded` for nothing the plan asked for.
WITHOUT_RECOMMENDS = frozenset({"prometheus-node-exporter", "prometheus", "prometheus-alertmanager"})
HOME_MODE = "0750"

DEFERRED_REPORT = "/var/lib/mevfleet/deferred.json"
# Where mevfleet writes files whose set varies with the plan: anything here it did not plan is stale.
OWNED_GLOBS = (
    "/etc/sysctl.d/*-mevfleet-*.conf",
    "/etc/systemd/system/chrony.service.d/90-mevfleet-*.conf",
    # a journal-remote instance per sending host (monitoring.JOURNAL_RECEIVER_DROP_INS): a dropped host's goes
    "/etc/systemd/system/mevfleet-journal-remote@*.service.d/90-mevfleet.conf",
)
SYSFS_READ_ONLY = "sysfs is read-only in a container; the machine's own setting applies"
GLOBAL_KNOB = "global kernel setting: a container shares the machine's kernel, so it is left to the machine"
READ_ONLY = "/proc/sys is read-only in this container runtime"
ABSENT = "not present in this kernel or network namespace"
LOCKED = "locked by the kernel at its current value until reboot (a one-way setting)"


def deferred_sysctls(plan: HostPlan, current: HostState) -> dict[str, str]:
    """Planned sysctls this host cannot take live, each with the reason. They stay in sysctl.d."""
    deferred = {}
    for key in plan.sysctls():
        if current.container and key not in plan.namespaced_sysctls:
            deferred[key] = GLOBAL_KNOB
        elif current.sysctls.get(key) is None:
            deferred[key] = ABSENT
        elif plan.sysctl_locks.get(key) == current.sysctls[key] != plan.sysctls()[key]:
            deferred[key] = LOCKED
        elif current.container and not current.proc_sys_writable:
            deferred[key] = READ_ONLY
    return deferred


class OwnedDirectory(NamedTuple):
    path: str
    mode: str
    owner: str


def directories(plan: HostPlan) -> list[OwnedDirectory]:
    """(path, mode, owner) of every directory the plan owns: mevfleet's own and each service's home."""
    return [OwnedDirectory(d, DIRECTORY_MODE, "root") for d in plan.directories] + [
        OwnedDirectory(u.home, HOME_MODE, u.name) for u in plan.users
    ]


def units(plan: HostPlan) -> tuple[str, ...]:
    """Every unit the deploy keeps enabled or running, read in the same probe as the files (each once)."""
    fixed = ("nftables.service", "chrony.service", CHRONY_METRICS_TIMER, "mevfleet-kernel-tuning.service")
    return tuple(
        dict.fromkeys(
            fixed
            + tuple(exporter_units(plan))
            + tuple(nodes.node_units(plan))
            + tuple(agent.agent_units(plan))
            + tuple(shipper_units(plan))
            + tuple(monitoring_units(plan))
            + tuple(control.control_units(plan))
        )
    )


def exporter_units(plan: HostPlan) -> list[str]:
    return [f"{s.package}.service" for s in plan.services if s.package]


def deferred(plan: HostPlan, current: HostState) -> dict[str, dict[str, str]]:
    kernel = {"thp": SYSFS_READ_ONLY, "cpu_governor": SYSFS_READ_ONLY} if current.container else {}
    return {"sysctls": deferred_sysctls(plan, current), "kernel": kernel}


# What the probe and the removals are computed from, before the probe says what the host is: a container's
# files are a superset of a machine's (the chrony drop-in).
PROBED = HostFacts(container=True)
JOURNAL_TLS_PATHS = frozenset(f"{JOURNAL_TLS_DIR}/{name}" for name in JOURNAL_TLS.values())


class Desired:
    """One host's desired state, each part computed when first asked for and then kept: the engines make
    one per host per deploy and hand it to every step. The probe's paths, the planned paths and the
    removals share one render of the host's templates (PROBED's); the files applied and the drift's expected
    state share one render per facts the probe found (the same one when they equal PROBED). Nothing is kept
    beyond the object, so nothing outlives the run."""

    def __init__(self, plan: HostPlan) -> None:
        self.plan = plan
        self._files: dict[HostFacts, tuple[ManagedFile, ...]] = {}

    def files(self, facts: HostFacts) -> tuple[ManagedFile, ...]:
        """Every file the host gets with these facts (render.host_files, rendered once per facts)."""
        if facts not in self._files:
            self._files[facts] = tuple(host_files(self.plan, facts))
        return self._files[facts]

    @cached_property
    def units(self) -> tuple[str, ...]:
        return units(self.plan)

    @cached_property
    def _files_secrets_copies(self) -> frozenset[str]:
        """The files, secrets and copies the plan puts on the host (PROBED's render)."""
        plan = self.plan
        return frozenset(
            {f.path for f in self.files(PROBED)}
            | {s.path for s in secrets(plan)}
            | {s.path for s in receiver_secrets(plan)}
            | (JOURNAL_TLS_PATHS if monitoring.ships_journals(plan) else frozenset())
            | set(nodes.probe_files(plan) + agent.probe_files(plan) + control.probe_files(plan))
            | set(control.copied_paths(plan))
        )

    @cached_property
    def planned_paths(self) -> frozenset[str]:
        """Every path the plan puts or keeps on the host: files, secrets, copies, directories, homes, links."""
        plan = self.plan
        return (
            self._files_secrets_copies
            | set(nodes.probe_links(plan) + agent.probe_links(plan) + control.probe_links(plan))
            | {d.path for d in directories(plan)}
        )

    @cached_property
    def removals(self) -> tuple[Removal, ...]:
        """What each concern removes when this plan no longer has it on the host (node units, the agent,
        the monitoring services and log shipping, the control plane), never touching what the plan has: a
        unit the plan runs is not stopped, and a path the plan holds (or a directory holding one) is not
        removed."""
        plan = self.plan
        wanted = [*nodes.removals(plan), *agent.removals(plan), *monitoring.removals(plan), *control.removals(plan)]
        # Each planned path and every directory above it: a removed path among them would take a planned one.
        keep = {parent for path in self.planned_paths for parent in _self_and_parents(path)}
        running = set(self.units)

        def holds_planned(path: str) -> bool:
            return path.rstrip("/") in keep

        safe = []
        for r in wanted:
            paths = tuple(p for p in r.paths if not holds_planned(p))
            markers = tuple(p for p in r.markers if not holds_planned(p))
            # Nothing left to remove, or nothing left that says mevfleet put it there: not this host's to remove.
            if paths and (markers or not r.markers):
                stopped = tuple(u for u in r.units if u not in running)
                safe.append(r.model_copy(update={"units": stopped, "paths": paths, "markers": markers}))
        return tuple(safe)

    @cached_property
    def _probe_args(self) -> dict[str, tuple[str, ...]]:
        plan = self.plan
        return {
            # Every journal TLS copy too, planned or not.
            "files": tuple(sorted(self._files_secrets_copies | {DEFERRED_REPORT} | JOURNAL_TLS_PATHS)),
            "dirs": tuple(d for d, _, _ in directories(plan)),
            "sysctls": tuple(plan.sysctls()),
            "globs": OWNED_GLOBS,
            "units": self.units,
            "links": tuple(nodes.probe_links(plan) + agent.probe_links(plan) + control.probe_links(plan)),
            "room": write_paths(plan),
            # A removal is due while any of its markers is on the host: units alone are not asked about, so a
            # package that enables a unit by itself on a host that never ran the concern changes nothing.
            "present": tuple(p for r in self.removals for p in r.evidence),
        }

    def probe_args(self) -> dict[str, tuple[str, ...]]:
        """What the one-command probe reads (both engines run it: the Ansible engine through its probe play)."""
        return dict(self._probe_args)

    def to_remove(self, present: set[str]) -> list[Removal]:
        """The plan's removals the host still has (`present`: the markers the one probe found)."""
        return [r for r in self.removals if any(p in present for p in r.evidence)]

    def expected(self, facts: HostFacts, authorized_keys: tuple[str, ...] | None) -> Expected:
        """The live state drift is judged against (mevfleet.drift): the planned ruleset, the files the plan
        owns in the directories it watches, the units that must be enabled and running, root's authorized
        keys."""
        plan = self.plan
        files = {f.path: f for f in self.files(facts)}
        ruleset = files["/etc/nftables.conf"].content
        managed = (
            set(files)
            | {s.path for s in secrets(plan)}
            | {s.path for s in receiver_secrets(plan)}
            | set(nodes.probe_files(plan))
            | set(agent.probe_files(plan))
        )
        # The boot-time tuning unit's condition keeps it inactive in a container: enabled is its steady state.
        enabled_only = tuple(u for u in self.units if u == "mevfleet-kernel-tuning.service")
        return Expected(
            ruleset=ruleset,
            files=frozenset(managed),
            units=tuple(u for u in self.units if u not in enabled_only),
            enabled_only=enabled_only,
            keep_docker_tables=keeps_docker_tables(plan),
            authorized_keys=authorized_keys,
        )


def _self_and_parents(path: str) -> list[str]:
    parts = path.rstrip("/").split("/")
    return ["/".join(parts[:i]) for i in range(2, len(parts) + 1)]


# One-off reads of a host's desired state (verify, tests, the CLI): each computes from the plan afresh.


def probe_args(plan: HostPlan) -> dict[str, tuple[str, ...]]:
    return Desired(plan).probe_args()


def expected(plan: HostPlan, facts: HostFacts, authorized_keys: tuple[str, ...] | None) -> Expected:
    return Desired(plan).expected(facts, authorized_keys)


def planned_paths(plan: HostPlan) -> frozenset[str]:
    return Desired(plan).planned_paths


def removals(plan: HostPlan) -> list[Removal]:
    return list(Desired(plan).removals)


def to_remove(plan: HostPlan, present: set[str]) -> list[Removal]:
    return Desired(plan).to_remove(present)


def removal_script(removal: Removal) -> str:
    """Stop and disable each unit (in order), remove the paths, reload systemd: the one script both engines
    run. A unit systemd does not know is skipped; kept data is never among the paths."""
    q = shlex.quote
    units = [q(u) for u in removal.units]
    lines = ["set -e"]
    lines += [f"systemctl disable --now {u} 2>/dev/null || true" for u in units]
    lines.append(f"rm -rf -- {' '.join(q(p) for p in removal.paths)}")
    lines.append("systemctl daemon-reload")
    lines += [f"systemctl reset-failed {u} 2>/dev/null || true" for u in units]
    return "\n".join(lines) + "\n"
