"""The one-command probe both engines run: everything the no-op path needs, read in a single remote command.

Stock per-file facts cost one round trip per file; a host manages dozens of files, so checking them one by
one makes a no-op re-run grow with the number of files. The probe stats and hashes every managed path, reads
every planned sysctl, unit state and link, and probes the runtime in one shell command. `script` builds the
command from what mevfleet.desired.probe_args says to read; `parse` turns its output into a HostState.
The pyinfra engine runs it as a fact (engine/facts.py), the Ansible engine in its probe play.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from . import space


@dataclass(frozen=True)
class FileState:
    mode: str
    owner: str
    group: str
    sha256: str | None = None  # None for directories


@dataclass
class HostState:
    container: bool = False
    proc_sys_writable: bool = True
    files: dict[str, FileState | None] = field(default_factory=dict)
    dirs: dict[str, FileState | None] = field(default_factory=dict)
    sysctls: dict[str, str | None] = field(default_factory=dict)
    globbed: set[str] = field(default_factory=set)
    # unit -> (UnitFileState, ActiveState); absent when systemd does not know the unit (yet)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    # symlink -> its target (as written, not resolved); None when the path is not a symlink
    links: dict[str, str | None] = field(default_factory=dict)
    # paths asked about by `present` (files, directories or links) that exist on the host
    present: set[str] = field(default_factory=set)
    # the filesystems behind the paths the deploy writes to, each once (mevfleet.space)
    filesystems: list[space.Filesystem] = field(default_factory=list)


def script(
    files: tuple[str, ...],
    dirs: tuple[str, ...],
    sysctls: tuple[str, ...],
    globs: tuple[str, ...],
    units: tuple[str, ...] = (),
    links: tuple[str, ...] = (),
    room: tuple[str, ...] = (),
    present: tuple[str, ...] = (),
) -> str:
    q = shlex.quote
    lines = [
        "if systemd-detect-virt --container --quiet 2>/dev/null || [ -f /.dockerenv ]; "
        "then echo 'container|1'; else echo 'container|0'; fi",
        # access(2) reports EROFS for a read-only /proc/sys (how container runtimes mount it).
        "if [ -w /proc/sys/net/ipv4/tcp_fastopen ]; then echo 'procsys|1'; else echo 'procsys|0'; fi",
    ]
    for path in files:
        lines.append(
            f"if [ -f {q(path)} ]; then echo \"file|{path}|$(stat -c '%a|%U|%G' {q(path)})|"
            f"$(sha256sum < {q(path)} | cut -d' ' -f1)\"; else echo 'file|{path}|-'; fi"
        )
    for path in dirs:
        lines.append(
            f"if [ -d {q(path)} ]; then echo \"dir|{path}|$(stat -c '%a|%U|%G' {q(path)})\"; "
            f"else echo 'dir|{path}|-'; fi"
        )
    for key in sysctls:
        proc = "/proc/sys/" + key.replace(".", "/")
        lines.append(
            f"if [ -r {q(proc)} ]; then echo \"sysctl|{key}|$(tr -s '\\t ' '  ' < {q(proc)})\"; "
            f"else echo 'sysctl|{key}|-'; fi"
        )
    for path in links:
        lines.append(
            f"if [ -L {q(path)} ]; then echo \"link|{path}|$(readlink {q(path)})\"; else echo 'link|{path}|-'; fi"
        )
    if present:
        names = " ".join(q(p) for p in present)
        lines.append(f'for p in {names}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "present|$p"; fi; done')
    for pattern in globs:
        lines.append(f'for f in {pattern}; do [ -e "$f" ] && echo "glob|$f"; done; true')
    if units:
        names = " ".join(q(u) for u in units)
        lines.append(
            f"systemctl show --property Id --property UnitFileState --property ActiveState {names} | sed 's/^/unit|/'"
        )
    if room:
        lines.append(space.probe_command(room))
    return "\n".join(lines)


def parse(output: list[str]) -> HostState:
    state = HostState()
    properties: dict[str, str] = {}
    state.filesystems = space.parse(output)
    for line in output:
        kind, _, rest = line.partition("|")
        if kind == "container":
            state.container = rest == "1"
        elif kind == "procsys":
            state.proc_sys_writable = rest == "1"
        elif kind in ("file", "dir"):
            path, _, info = rest.partition("|")
            parts = info.split("|")
            entry = None
            if info != "-":
                mode, owner, group = parts[:3]
                entry = FileState(f"{int(mode, 8):04o}", owner, group, parts[3] if kind == "file" else None)
            (state.files if kind == "file" else state.dirs)[path] = entry
        elif kind == "sysctl":
            key, _, value = rest.partition("|")
            state.sysctls[key] = None if value == "-" else " ".join(value.split())
        elif kind == "link":
            path, _, target = rest.partition("|")
            state.links[path] = None if target == "-" else target
        elif kind == "present":
            state.present.add(rest)
        elif kind == "glob":
            state.globbed.add(rest)
        elif kind == "unit":
            key, _, value = rest.partition("=")
            properties[key] = value
            if {"Id", "UnitFileState", "ActiveState"} <= properties.keys():
                # systemd answers for unknown units too ("not-found"/"inactive"): treat them as absent.
                if properties["UnitFileState"] and properties["UnitFileState"] != "not-found":
                    state.units[properties["Id"]] = (properties["UnitFileState"], properties["ActiveState"])
                properties = {}
    return state
