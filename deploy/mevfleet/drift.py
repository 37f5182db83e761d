"""Live drift: what a host runs or holds beyond the bytes of its managed files, judged against the plan.

The deploy owns the whole of every place it manages, not only the files it writes there:

- `firewall`: the running nftables ruleset, every table, equals the planned ruleset as nft itself loads
  it (the planned file is loaded into a private network namespace on the host and listed the same way),
  so a rule inserted by hand, another table, a chain jumped to from `input` or a policy set to accept is
  seen. Docker's iptables tables are left alone on hosts whose plan runs containers.
- `owned-files`: the `.d` directories the deploy writes hold only the files it planned (and those a
  Debian package ships there): an extra `sshd_config.d` file turning password login on is removed.
- `unit-override`: a unit the deploy runs has no unit file or drop-in under /etc or /run that the plan
  did not write (a drop-in replacing a node's ExecStart is removed, the unit reloaded and restarted).
- `unit-state`: every planned unit is unmasked, enabled and running (the engine's ensure_unit repairs).
- `authorized-keys`: the SSH user's authorized_keys are exactly the inventory's keys.

One shell command reads all of it (`probe_command`); `findings` turns its output into named drifts, each
with the commands that repair it. The engine runs the repairs; `tests/verify` reports each kind by name.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from .model import HostPlan

# The iptables-nft tables Docker writes: left alone where the plan runs containers (Docker owns them).
DOCKER_TABLES = frozenset({"ip filter", "ip nat", "ip6 filter", "ip6 nat", "ip raw", "ip mangle", "ip6 raw"})
MEVFLEET_TABLE = "inet mevfleet"
APPLY = "/usr/local/sbin/mevfleet-firewall-apply"
# Directories the deploy writes whose whole content it owns (besides package-shipped files).
OWNED_DIRS = (
    "/etc/ssh/sshd_config.d",
    "/etc/sysctl.d",
    "/etc/security/limits.d",
    "/etc/systemd/journald.conf.d",
    "/etc/systemd/system.conf.d",
    "/etc/chrony/conf.d",
    "/etc/chrony/sources.d",
)
# What re-reads each owned directory once a file is removed from it (sysctl.d: the planned values are
# re-applied live by the kernel concern; limits.d is read at each login).
READERS = {
    "/etc/ssh/sshd_config.d": ("sshd -t && systemctl reload ssh.service",),
    "/etc/systemd/journald.conf.d": ("systemctl restart systemd-journald.service",),
    "/etc/systemd/system.conf.d": ("systemctl daemon-reexec",),
    "/etc/chrony/conf.d": ("systemctl restart chrony.service",),
    "/etc/chrony/sources.d": ("systemctl restart chrony.service",),
}
# Where an administrator (or an intruder) overrides a unit; /usr and /lib belong to packages.
OVERRIDE_ROOTS = ("/etc/systemd/system/", "/run/systemd/system/")
KINDS = ("firewall", "owned-files", "unit-override", "unit-state", "authorized-keys")

_SECTION = "@@mevfleet-drift "


@dataclass(frozen=True)
class Drift:
    kind: str
    what: str  # one line naming the drift
    fix: tuple[str, ...] = ()  # shell commands that repair it (empty: another operation repairs it)
    detail: str = ""  # what --dry shows beyond the line (the ruleset diff)
    after: tuple[str, ...] = ()  # what makes the reader pick the repair up (a reload, a restart)


@dataclass
class LiveState:
    ruleset: str = ""
    planned_ruleset: str = ""
    planned_error: str = ""
    dir_files: dict[str, list[str]] = field(default_factory=dict)  # owned dir -> unplanned entries
    packaged: set[str] = field(default_factory=set)  # unplanned paths a Debian package ships
    units: dict[str, dict[str, str]] = field(default_factory=dict)  # unit -> systemctl show properties
    authorized_keys: list[str] | None = None  # None: file absent


@dataclass(frozen=True)
class Expected:
    """What the plan says about the places drift is judged in."""

    ruleset: str  # /etc/nftables.conf as rendered
    files: frozenset[str]  # every managed path
    units: tuple[str, ...]  # units that must be enabled and running
    enabled_only: tuple[str, ...] = ()  # units that must be enabled (their condition may keep them inactive)
    keep_docker_tables: bool = False
    authorized_keys: tuple[str, ...] | None = None  # None: not managed
    authorized_keys_path: str = "/root/.ssh/authorized_keys"


def probe_command(expected: Expected) -> str:
    """One command: live and planned rulesets, owned directories, unit overrides and states, keys."""
    q = shlex.quote
    units = " ".join(q(u) for u in (*expected.units, *expected.enabled_only))
    planned = " ".join(q(p) for p in sorted(expected.files))
    lines = [
        f"echo {q(_SECTION + 'ruleset')}",
        "nft -s list ruleset",
        f"echo {q(_SECTION + 'planned-ruleset')}",
        # The planned ruleset as this host's nft loads and lists it, in a network namespace of its own:
        # nothing about the host's own ruleset changes.
        f"printf '%s' {q(expected.ruleset)} | unshare --net sh -c 'nft -f /dev/stdin && nft -s list ruleset' 2>&1",
        f"echo {q(_SECTION + 'files')}",
        # Every entry of the owned directories that the plan did not write, and which of them dpkg ships.
        f"planned=$(printf '%s\\n' {planned})",
        # mktemp, never a guessable name: /tmp is writable by every user of the host.
        "unplanned=$(mktemp)",
        f'for d in {" ".join(q(d) for d in OWNED_DIRS)}; do [ -d "$d" ] || continue; '
        'for f in "$d"/* "$d"/.[!.]*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
        'printf "%s\\n" "$planned" | grep -qxF "$f" || echo "$f"; done; done > "$unplanned"',
        'cat "$unplanned"',
        f"echo {q(_SECTION + 'packaged')}",
        '[ -s "$unplanned" ] && xargs -d \'\\n\' dpkg-query -S < "$unplanned" 2>/dev/null '
        "| sed 's/^[^:]*: //'; rm -f \"$unplanned\"",
        f"echo {q(_SECTION + 'units')}",
    ]
    if units:
        lines.append(
            f"systemctl show --property Id --property LoadState --property UnitFileState --property ActiveState "
            f"--property Result --property FragmentPath --property DropInPaths {units}"
        )
    lines.append(f"echo {q(_SECTION + 'keys')}")
    path = q(expected.authorized_keys_path)
    lines.append(f"if [ -f {path} ]; then cat {path}; else echo '@@absent'; fi")
    lines.append("true")
    return "\n".join(lines)


def parse(output: list[str]) -> LiveState:
    state = LiveState()
    section = ""
    sections: dict[str, list[str]] = {}
    for line in output:
        if line.startswith(_SECTION):
            section = line[len(_SECTION) :].strip()
            sections[section] = []
        elif section:
            sections[section].append(line)
    state.ruleset = "\n".join(sections.get("ruleset", []))
    planned = sections.get("planned-ruleset", [])
    if any(line.lstrip().startswith(("Error:", "/dev/stdin:", "unshare:")) for line in planned):
        state.planned_error = "\n".join(planned)
    state.planned_ruleset = "\n".join(planned)
    for path in sections.get("files", []):
        if path.strip():
            state.dir_files.setdefault(posixpath.dirname(path), []).append(path)
    state.packaged = {p.strip() for p in sections.get("packaged", []) if p.strip()}
    props: dict[str, str] = {}
    for line in sections.get("units", []):
        if not line.strip():
            if props.get("Id"):
                state.units[props["Id"]] = props
            props = {}
            continue
        key, _, value = line.partition("=")
        props[key] = value
    if props.get("Id"):
        state.units[props["Id"]] = props
    keys = sections.get("keys", [])
    state.authorized_keys = None if keys == ["@@absent"] else [k for k in keys if k.strip()]
    return state


def tables(ruleset: str) -> dict[str, list[str]]:
    """`family name` -> the table's lines, with the elements of dynamic sets (runtime state) left out."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    block: list[str] = []
    for line in ruleset.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^table (\S+) (\S+) \{$", line)
        if m:
            current = out.setdefault(f"{m.group(1)} {m.group(2)}", [])
            continue
        if current is None or line == "}":
            current = None if line == "}" else current
            continue
        # Buffer each set's block so a dynamic set's elements (meters filled by traffic) can be dropped.
        if re.match(r"^\t(set|map) \S+ \{$", line):
            block = [line]
            continue
        if block:
            block.append(line)
            if line == "\t}":
                current.extend(_static(block))
                block = []
            continue
        current.append(line)
    return out


def _static(block: list[str]) -> list[str]:
    if not any("flags" in line and "dynamic" in line for line in block):
        return block
    kept, skipping = [], False
    for line in block:
        if line.strip().startswith("elements = {"):
            skipping = True
        if not skipping:
            kept.append(line)
        if skipping and line.rstrip().endswith("}") and line != "\t}":
            skipping = False
    if block[-1] == "\t}" and kept[-1] != "\t}":
        kept.append("\t}")
    return kept


def ruleset_drift(live: str, planned: str, keep_docker_tables: bool) -> list[Drift]:
    have, want = tables(live), tables(planned)
    drifts = []
    for name in sorted(set(have) - set(want)):
        # Docker's iptables tables: left alone where the plan runs containers, or where Docker made them
        # (its DOCKER chains are in them): deleting them would cut every container off.
        docker = any(line.startswith("\tchain DOCKER") for line in have[name])
        if name in DOCKER_TABLES and (keep_docker_tables or docker):
            continue
        family, table = name.split()
        drifts.append(
            Drift(
                "firewall",
                f"table {name} is not in the plan",
                fix=(f"nft delete table {shlex.quote(family)} {shlex.quote(table)}",),
                detail="\n".join(f"+{line}" for line in have[name]),
            )
        )
    for name in sorted(want):
        if name not in have:
            drifts.append(Drift("firewall", f"table {name} is not loaded", fix=(APPLY,)))
        elif have[name] != want[name]:
            diff = [
                line
                for line in difflib.unified_diff(want[name], have[name], "plan", "host", lineterm="", n=1)
                if not line.startswith(("---", "+++"))
            ]
            changed = [line[1:].strip() for line in diff if line[:1] in "+-" and line[1:].strip()]
            drifts.append(
                Drift(
                    "firewall",
                    f"table {name} differs from the plan: {'; '.join(changed[:3])}"
                    + (" ..." if len(changed) > 3 else ""),
                    fix=(APPLY,),
                    detail="\n".join(diff),
                )
            )
    return drifts


def findings(expected: Expected, live: LiveState) -> list[Drift]:
    """Every drift of the host, in KINDS order."""
    drifts: list[Drift] = []
    if live.planned_error:
        drifts.append(Drift("firewall", f"the planned ruleset cannot be evaluated on the host: {live.planned_error}"))
    else:
        drifts += ruleset_drift(live.ruleset, live.planned_ruleset, expected.keep_docker_tables)
    for directory, paths in sorted(live.dir_files.items()):
        for path in paths:
            if path not in live.packaged:
                drifts.append(
                    Drift(
                        "owned-files",
                        f"{path}: not planned in {directory}",
                        fix=(f"rm -rf {shlex.quote(path)}",),
                        after=READERS.get(directory, ()),
                    )
                )
    for unit in (*expected.units, *expected.enabled_only):
        props = live.units.get(unit, {})
        overrides = [props.get("FragmentPath", ""), *props.get("DropInPaths", "").split()]
        for path in overrides:
            if path and path.startswith(OVERRIDE_ROOTS) and path not in expected.files:
                drifts.append(
                    Drift(
                        "unit-override",
                        f"{unit}: {path} is not planned",
                        fix=(f"rm -f {shlex.quote(path)}",),
                        after=("systemctl daemon-reload",)
                        + ((f"systemctl restart {shlex.quote(unit)}",) if unit in expected.units else ()),
                    )
                )
        drifts += _unit_state(unit, props, running=unit in expected.units)
    if expected.authorized_keys is not None:
        have = sorted({normal_key(k) for k in live.authorized_keys or [] if not k.lstrip().startswith("#")})
        want = sorted({normal_key(k) for k in expected.authorized_keys})
        if have != want:
            extra, missing = len(set(have) - set(want)), len(set(want) - set(have))
            drifts.append(
                Drift(
                    "authorized-keys",
                    f"{expected.authorized_keys_path}: {extra} key(s) not in the inventory, {missing} missing",
                    fix=(_write_keys(expected),),
                )
            )
    return drifts


def _unit_state(unit: str, props: dict[str, str], running: bool) -> list[Drift]:
    if not props or props.get("LoadState") == "not-found":
        return [Drift("unit-state", f"{unit}: not installed")]
    state = props.get("UnitFileState", "")
    active = props.get("ActiveState", "")
    if state == "masked" or props.get("LoadState") == "masked":
        return [Drift("unit-state", f"{unit}: masked")]
    out = []
    if state not in ("enabled", "static", "alias", "generated", "indirect", "enabled-runtime"):
        out.append(Drift("unit-state", f"{unit}: {state or 'not enabled'}"))
    if running and active not in ("active", "reloading", "activating"):
        result = props.get("Result", "")
        why = f" ({result})" if result and result != "success" else ""
        out.append(Drift("unit-state", f"{unit}: {active or 'not running'}{why}"))
    return out


def _write_keys(expected: Expected) -> str:
    path = expected.authorized_keys_path
    content = "".join(f"{k}\n" for k in expected.authorized_keys or ())
    directory = posixpath.dirname(path)
    # Written beside, then renamed: the SSH session running this never sees a half-written file.
    return (
        f"install -d -m 0700 {shlex.quote(directory)} && umask 077 && "
        f"printf '%s' {shlex.quote(content)} > {shlex.quote(path + '.mevfleet-new')} && "
        f"mv -f {shlex.quote(path + '.mevfleet-new')} {shlex.quote(path)}"
    )


def keeps_docker_tables(plan: HostPlan) -> bool:
    return any(n.start and n.runtime == "container" for n in plan.nodes)


def normal_key(line: str) -> str:
    """An authorized_keys line without its comment (options, type and key are what grant access)."""
    parts = line.split()
    if len(parts) >= 2 and (parts[0].startswith(("ssh-", "ecdsa-", "sk-"))):
        return f"{parts[0]} {parts[1]}"
    return line.strip()


def inventory_keys(key_file: str | None, user: str) -> tuple[str, ...] | None:
    """root's planned authorized keys: the public half of the inventory's SSH key (None: not managed).

    Managed only when the deploy logs in as root with a key the inventory names: that key is then the
    one way in the deploy relies on, and any other key in root's file is a way in nobody planned.
    """
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    if user != "root" or not key_file:
        return None
    data = Path(key_file).expanduser().read_bytes()
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            return None  # an encrypted key: the deploy cannot know its public half without the passphrase
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return (normal_key(public.decode()),)
