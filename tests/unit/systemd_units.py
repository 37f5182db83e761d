"""`systemd-analyze verify` on rendered units written to a directory, as the unit tests run it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def verify_problems(directory: Path, units: dict[str, str], entry: str, *, forgiven: str | None = None) -> list[str]:
    """Write `units` (file name -> content) into `directory`, verify `entry` (which may name an instance of a
    template written there) and return systemd's complaints about any of them, except lines holding
    `forgiven` (what this machine lacks and the hosts have)."""
    for name, content in units.items():
        (directory / name).write_text(content)
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(directory / entry)], capture_output=True, text=True, timeout=60
    )
    stems = {name.split("@")[0].rsplit(".", 1)[0] for name in units}
    return [
        line
        for line in run.stderr.splitlines()
        if any(stem in line for stem in stems) and (forgiven is None or forgiven not in line)
    ]
