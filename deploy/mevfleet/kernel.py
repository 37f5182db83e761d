"""The kernel concern: sysctl.d files (one per concern of the tuning profile, chains raising values in
place), limits, hugepages, THP, the CPU governor and the CPU split between node and agent, planned from
the tuning profile, the host's chains and the inventory's overrides; and the files that carry them (the
boot-time tuning unit sets THP, the governor and hugepages). engine/kernel.py applies them and says what a
container defers."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .catalog import Catalog
from .inventory import Host
from .model import CpuPlan, FileSpec, HostPlan, SysctlFile

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step


class KernelSettings(NamedTuple):
    """The kernel concern's slice of a host plan: HostPlan's fields of the same names."""

    nofile: int
    memlock_bytes: int
    hugepages: int
    sysctl_files: tuple[SysctlFile, ...]
    namespaced_sysctls: tuple[str, ...]
    sysctl_locks: dict[str, str]
    thp: str
    cpu_governor: str
    owns_kernel: bool | None
    cpu: CpuPlan | None


def kernel_settings(host: Host, catalog: Catalog) -> KernelSettings:
    """Limits are the largest of the profile's and the host's chains' documented values; the inventory's
    hugepages, THP and governor override the profile's."""
    profile = catalog.tuning.profiles[host.tuning]
    nofile = max([profile.limits.nofile, *(catalog.chains[c].limits.nofile for c in host.chains)])
    memlock = max([profile.limits.memlock, *(catalog.chains[c].limits.memlock for c in host.chains)])
    hugepages = profile.hugepages if host.hugepages is None else host.hugepages
    files = sysctl_files(host, catalog, nofile, hugepages)
    keys = {k for f in files for k in f.values}
    return KernelSettings(
        nofile=nofile,
        memlock_bytes=memlock,
        hugepages=hugepages,
        sysctl_files=tuple(files),
        namespaced_sysctls=tuple(sorted(k for k in keys if catalog.tuning.known_sysctls[k].namespaced)),
        sysctl_locks={k: v.locks_at for k, v in catalog.tuning.known_sysctls.items() if k in keys and v.locks_at},
        thp=host.thp or profile.thp,
        cpu_governor=host.cpu_governor or profile.cpu_governor,
        owns_kernel=host.owns_kernel,
        cpu=cpu_plan(host),
    )


def sysctl_files(host: Host, catalog: Catalog, nofile: int, hugepages: int) -> list[SysctlFile]:
    """One sysctl.d file per concern of the profile, each key in exactly one: a chain's documented value
    raises the profile's in place (never lowers it), a key the profile lacks gets a chain-<chain> file, and
    the inventory's overrides win (in their key's file, or an overrides file)."""
    profile = catalog.tuning.profiles[host.tuning]
    owner: dict[str, str] = {}
    values: dict[str, dict[str, int | str]] = {}
    notes: dict[str, dict[str, str]] = {}
    for concern, spec in profile.sysctl_concerns.items():
        values[concern] = dict(spec.values)
        notes[concern] = {}
        owner.update({key: concern for key in spec.values})

    def raise_to(key: str, value: int | str, why: str, concern_if_new: str) -> None:
        concern = owner.setdefault(key, concern_if_new)
        bucket = values.setdefault(concern, {})
        notes.setdefault(concern, {})
        current = bucket.get(key)
        if current is None or _bigger(value, current):
            bucket[key] = value
            notes[concern][key] = why

    for chain in host.chains:
        for key, value in catalog.chains[chain].sysctls.items():
            raise_to(key, value, f"{chain} client docs", f"chain-{chain}")
    # fs.nr_open caps every process's open-file limit: it must not sit below the plan's nofile.
    if "fs.nr_open" in owner and int(values[owner["fs.nr_open"]]["fs.nr_open"]) < nofile:
        raise_to("fs.nr_open", nofile, "at least the host's nofile limit", "limits")
    values.setdefault("hugepages", {})["vm.nr_hugepages"] = hugepages
    owner["vm.nr_hugepages"] = "hugepages"
    for key, value in host.sysctls.items():
        concern = owner.setdefault(key, "overrides")
        values.setdefault(concern, {})[key] = value
        notes.setdefault(concern, {})[key] = "inventory override"

    orders = {c: s.order for c, s in profile.sysctl_concerns.items()}
    files = []
    for concern, bucket in values.items():
        if not bucket:
            continue
        order = orders.get(concern, 50 if concern.startswith("chain-") else 60 if concern == "overrides" else 45)
        files.append(
            SysctlFile(
                concern=concern,
                path=f"/etc/sysctl.d/{order:02d}-mevfleet-{concern}.conf",
                values={k: _sysctl_text(v) for k, v in sorted(bucket.items())},
                notes=dict(sorted(notes.get(concern, {}).items())),
            )
        )
    return sorted(files, key=lambda f: f.path)


def _sysctl_text(value: int | str) -> str:
    return " ".join(str(value).split())


def _bigger(new: int | str, old: int | str) -> bool:
    if isinstance(new, int) and isinstance(old, int):
        return new > old
    try:
        return [int(x) for x in str(new).split()] > [int(x) for x in str(old).split()]
    except ValueError:
        return str(new) != str(old)


def cpu_plan(host: Host) -> CpuPlan | None:
    """The cores split between the node(s) and the agent: an eighth (at least one) of the last cores for the
    agent; none without a known core count."""
    cpus = host.hardware.cpus
    if cpus is None:
        return None
    if cpus < 4:
        # Too small to split: the agent takes the last core but shares it with the node.
        last = str(cpus - 1)
        return CpuPlan(cpus=cpus, node_cores=f"0-{cpus - 1}" if cpus > 1 else "0", agent_cores=last, shared=True)
    agent = max(1, cpus // 8)
    node_last = cpus - agent - 1
    agent_cores = str(cpus - 1) if agent == 1 else f"{cpus - agent}-{cpus - 1}"
    return CpuPlan(cpus=cpus, node_cores=f"0-{node_last}", agent_cores=agent_cores, shared=False)


def kernel_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """sysctl.d files (concern "sysctl": applied live where the host may), limits (re-executing systemd
    reads them) and the tuning script with its unit (concern "kernel")."""
    return [
        *(
            FileSpec(path=f.path, concern="sysctl", template="kernel/sysctl.conf.j2", context={"file": f})
            for f in plan.sysctl_files
        ),
        FileSpec(path="/etc/security/limits.d/90-mevfleet.conf", concern="limits", template="kernel/limits.conf.j2"),
        FileSpec(
            path="/etc/systemd/system.conf.d/90-mevfleet-limits.conf",
            concern="limits",
            template="kernel/systemd-limits.conf.j2",
        ),
        FileSpec(
            path="/usr/local/sbin/mevfleet-kernel-tuning",
            concern="kernel",
            template="kernel/mevfleet-kernel-tuning.sh.j2",
            mode="0755",
        ),
        FileSpec(
            path="/etc/systemd/system/mevfleet-kernel-tuning.service",
            concern="kernel",
            template="kernel/mevfleet-kernel-tuning.service.j2",
        ),
    ]


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """sysctl.d files and their values live; files in mevfleet's owned directories the plan no longer has;
    limits (systemd reads DefaultLimit* only on re-exec); THP and CPU governor at boot."""
    from .steps import Files, LiveSysctls, Repair, Select, StaleFiles, Unit

    return (
        Files(name="sysctl.d files", files=Select(concern="sysctl")),
        LiveSysctls(name="Apply sysctls live"),
        StaleFiles(name="Remove files the plan no longer has"),
        Repair(name="Owned directories hold only planned files", kinds=("owned-files",)),
        Files(
            name="limits.d and systemd DefaultLimit*",
            files=Select(concern="limits"),
            then_name="Re-execute systemd for new default limits",
            then=("systemctl daemon-reexec",),
        ),
        # Restart applies the new values; in a container the unit's condition skips it without failing.
        Files(
            name="THP and CPU governor unit",
            files=Select(concern="kernel"),
            then_name="Apply THP and CPU governor",
            then=("systemctl daemon-reload", "systemctl restart mevfleet-kernel-tuning.service"),
        ),
        # running=None: in a container the unit's condition keeps it inactive, and that is its steady state.
        Unit(name="Enable mevfleet-kernel-tuning", unit="mevfleet-kernel-tuning.service", running=None),
    )
