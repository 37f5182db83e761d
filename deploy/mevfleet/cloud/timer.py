"""The systemd units that run `mevfleet backup` daily on the control machine (rendered, not installed)."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

from .errors import CloudError

SAFE = re.compile(r"^[A-Za-z0-9_./@:+-]+$")


def _checked(value: str, what: str) -> str:
    # Values land in unit lines: refuse anything that could end or split a line or a word.
    if not SAFE.match(value):
        raise CloudError(f"{what}: {value!r} may hold only letters, digits and _./@:+-")
    return value


def _mevfleet() -> str:
    # The entry point installed beside this interpreter (the venv's), else the one on PATH.
    beside = Path(sys.executable).with_name("mevfleet")
    path = str(beside) if beside.exists() else (shutil.which("mevfleet") or "/usr/local/bin/mevfleet")
    return _checked(path, "mevfleet executable")


def service_unit(inventory: Path, environment_file: str, user: str) -> str:
    exec_start = " ".join(shlex.quote(a) for a in (_mevfleet(), "backup", "-i", str(inventory.resolve())))
    return f"""# Rendered by `mevfleet backup-timer`: one backup of every host of the inventory.
[Unit]
Description=mevfleet backup of {_checked(inventory.name, "inventory")} to S3
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={_checked(user, "--user")}
# Bucket, key and AWS settings; the file is the operator's (0600), never rendered here.
EnvironmentFile={_checked(environment_file, "--environment-file")}
ExecStart={exec_start}
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
TimeoutStartSec=6h
"""


def timer_unit(on_calendar: str) -> str:
    if not re.match(r"^[A-Za-z0-9*:., /-]+$", on_calendar):
        raise CloudError(f"--on-calendar: {on_calendar!r} is not a calendar expression")
    return f"""# Rendered by `mevfleet backup-timer`. The BackupTooOld alert fires when no backup completes.
[Unit]
Description=Daily mevfleet backup

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec=30min
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""


def write_units(output: Path, inventory: Path, environment_file: str, on_calendar: str, user: str) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    service, timer = output / "mevfleet-backup.service", output / "mevfleet-backup.timer"
    service.write_text(service_unit(inventory, environment_file, user))
    timer.write_text(timer_unit(on_calendar))
    return [service, timer]
