"""Room on the filesystems a host writes to, judged one way by the alert and verify, and by the deploy.

A filesystem with less than `MIN_FREE_RATIO` of its size free is short of room: Prometheus raises
DiskAlmostFull for it (dashboards/rules/hosts.yml) and `mevfleet verify` names it. Both leave out the same
filesystem types: a container's overlay root (the machine's disk, not the host's), squashfs, ramfs, nsfs.
`mevfleet deploy` fails such a host before changing anything on it when the room left is also below
`DEPLOY_FLOOR_KIB`: a config rewritten on a full disk can be left truncated, and the restart that follows
starts a node that cannot write its database. (A 4 TB disk at 96% still has room for a deploy; the alert
has already told the operator.)
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from .model import HostPlan

# DiskAlmostFull's threshold (dashboards/rules/hosts.yml): below 5% free, writes start failing within minutes
# on a busy node.
MIN_FREE_RATIO = 0.05
# Below this much room, on a filesystem short of room, a deploy could not finish its writes safely.
DEPLOY_FLOOR_KIB = 1024 * 1024
# The alert's fstype filter: never the host's own disk.
IGNORED_TYPES = frozenset({"overlay", "squashfs", "ramfs", "nsfs"})
# What the deploy writes besides the plan's own directories: configs, unit files, the journal.
SYSTEM_PATHS = ("/", "/etc", "/var/lib", "/var/log")
_TAG = "room|"


@dataclass(frozen=True)
class Filesystem:
    mount: str
    size_kib: int
    avail_kib: int
    fstype: str = ""

    @property
    def free_ratio(self) -> float:
        return self.avail_kib / self.size_kib if self.size_kib else 1.0

    def describe(self) -> str:
        used = 100 - round(100 * self.free_ratio)
        return f"{self.mount}: {_mib(self.avail_kib)} free of {_mib(self.size_kib)} ({used}% used)"


class DiskFull(Exception):
    """A filesystem the host writes to is short of room: the deploy changes nothing on that host."""


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB" if kib < 1024 * 1024 else f"{kib / 1024 / 1024:.1f} GiB"


def write_paths(plan: HostPlan) -> tuple[str, ...]:
    """Every place the deploy writes to on this host, and where its nodes and agent keep their data."""
    paths = [*SYSTEM_PATHS, *plan.directories, *(u.home for u in plan.users)]
    paths += [n.data_dir for n in plan.nodes]
    if plan.agent is not None:
        paths.append(plan.agent.state_dir)
    return tuple(dict.fromkeys(paths))


def probe_command(paths: Iterable[str]) -> str:
    """One line `room|<type>|<size KiB>|<avail KiB>|<mount point>` per existing path (df's POSIX format)."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        f'for p in {quoted}; do [ -e "$p" ] || continue; '
        'df -P -k -T "$p" 2>/dev/null | awk \'NR > 1 { m = $7; for (i = 8; i <= NF; i++) m = m " " $i; '
        f'print "{_TAG}" $2 "|" $3 "|" $5 "|" m }}\'; done; true'
    )


def parse(lines: Iterable[str]) -> list[Filesystem]:
    """The probe's lines, one Filesystem per mount point (several paths often share one)."""
    seen: dict[str, Filesystem] = {}
    for line in lines:
        if not line.startswith(_TAG):
            continue
        fstype, size, avail, mount = line[len(_TAG) :].split("|", 3)
        if size.isdigit() and avail.isdigit():
            seen.setdefault(mount, Filesystem(mount, int(size), int(avail), fstype))
    return list(seen.values())


def short_of_room(filesystems: Iterable[Filesystem]) -> list[Filesystem]:
    """DiskAlmostFull's judgement: what verify names."""
    return [fs for fs in filesystems if fs.fstype not in IGNORED_TYPES and fs.free_ratio < MIN_FREE_RATIO]


def refuse_if_full(filesystems: Iterable[Filesystem]) -> None:
    """The deploy's: short of room and under the floor."""
    full = [fs for fs in short_of_room(filesystems) if fs.avail_kib < DEPLOY_FLOOR_KIB]
    if full:
        names = "; ".join(fs.describe() for fs in full)
        raise DiskFull(f"no room to deploy: {names}: free space there, then deploy again")
