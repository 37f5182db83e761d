"""Permissions on files that are not ours to write (steps.RootOnly, declared by hardening.py).

Cron's and sshd's configuration become private to root (CIS 5.1), and the assembler, linkers and
compilers become root-only through dpkg-statoverride: dpkg applies an override whenever it unpacks
the file, so upgrades keep the restriction and a compiler installed later arrives restricted.
needrestart pulls in binutils; nothing on these hosts builds code as another user, and a foothold in
a service account should not find a toolchain.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pyinfra.api import FactBase, operation


@dataclass
class PermissionState:
    modes: dict[str, str] = field(default_factory=dict)
    # toolchain path -> whether dpkg-statoverride already has an entry for it (present or not)
    toolchain: dict[str, bool] = field(default_factory=dict)


class Permissions(FactBase):
    """Modes of the private paths and the toolchain's statoverride entries, in one command.

    Toolchain paths are fixed rather than looked up: this fact is read before the deploy installs
    packages (binutils arrives with needrestart), and an override may name a file not there yet.
    """

    def command(self, paths: tuple[str, ...], tools: tuple[str, ...]) -> str:
        lines = [f'[ -e {shlex.quote(p)} ] && echo "mode|{p}|$(stat -c %a {shlex.quote(p)})"' for p in paths]
        lines.append("triplet=$(uname -m)-linux-gnu")
        lines += [
            f'f="/usr/bin/$triplet-{t}"; '
            'if dpkg-statoverride --list "$f" >/dev/null; then echo "tool|$f|1"; else echo "tool|$f|0"; fi'
            for t in tools
        ]
        return "\n".join([*lines, "true"])

    def process(self, output: list[str]) -> PermissionState:
        state = PermissionState()
        for line in output:
            kind, path, value = line.split("|", 2)
            if kind == "mode":
                state.modes[path] = f"{int(value, 8):04o}"
            elif kind == "tool":
                state.toolchain[path] = value == "1"
        return state


@operation()
def restrict_to_root(state: PermissionState, private: dict[str, str], mode: str):
    for path, allowed in private.items():
        have = state.modes.get(path)
        if have is not None and int(have, 8) & ~int(allowed, 8):
            yield f"chmod {allowed} {shlex.quote(path)}"
    for path, overridden in sorted(state.toolchain.items()):
        # An existing override is an operator's decision (or ours from an earlier run): keep it.
        # --update applies it now if the file exists; otherwise dpkg warns and applies it on unpack.
        if not overridden:
            yield f"dpkg-statoverride --update --add root root {mode} {shlex.quote(path)}"
