"""Prometheus, Alertmanager and Redis on monitoring hosts: secrets, validated configs, restarts on change.

A config the service would reject must never replace the one it runs: changed files are uploaded beside
their targets, swapped in, checked with the service's own validator, and swapped back if it refuses,
all in one remote step; the service restarts only when that check passed and something changed.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation

from ..monitoring import Secret
from ..render import ManagedFile
from .facts import HostState
from .files import differs, sha256

NEW = ".mevfleet-new"
PREVIOUS = ".mevfleet-prev"
ABSENT = ".mevfleet-absent"

# Service -> (the command that validates its installed config, the unit it restarts). promtool also
# checks every rule file the config names. Redis has no config checker; its file is plain key/value
# lines rendered from the plan.
SERVICES: dict[str, tuple[str | None, str]] = {
    "prometheus": ("promtool check config /etc/prometheus/prometheus.yml", "prometheus.service"),
    "alertmanager": ("amtool check-config /etc/prometheus/alertmanager.yml", "prometheus-alertmanager.service"),
    "redis": (None, "redis-server.service"),
}


@operation()
def ensure_secrets(secrets: Iterable[Secret], current: HostState):
    """Generate each missing secret on the host (32 random bytes, hex), owner-only; never overwrite one."""
    for secret in secrets:
        path, owner = shlex.quote(secret.path), shlex.quote(secret.owner)
        have = current.files.get(secret.path)
        if have is None:
            # umask before the file exists, so the secret is never readable by others, even briefly.
            yield (
                f"mkdir -p $(dirname {path}) && (umask 077 && [ -s {path} ] || "
                f"printf {shlex.quote(secret.template)} \"$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n')\" "
                f"> {path}) && chown {owner}:{owner} {path} && chmod 0600 {path}"
            )
        elif (have.mode, have.owner, have.group) != ("0600", secret.owner, secret.owner):
            yield f"chown {owner}:{owner} {path} && chmod 0600 {path}"


@operation()
def ensure_checked_files(
    files: Iterable[ManagedFile], current: HostState, check: str | None, unit: str, restart_anyway: bool = False
):
    """Swap in the changed files, validate, restore on refusal; restart the unit when something changed."""
    changed = [f for f in files if differs(f, current)]
    if not changed and not restart_anyway:
        return
    for f in changed:
        tmp = f.path + NEW
        yield f"mkdir -p {shlex.quote(tmp.rsplit('/', 1)[0])}"
        yield FileUploadCommand(
            StringIO(f.content), tmp, remote_temp_filename=host.get_temp_filename(tmp + sha256(f.content))
        )
        yield f"chown {f.owner}:{f.group} {shlex.quote(tmp)} && chmod {f.mode} {shlex.quote(tmp)}"
    swap, restore, cleanup = [], [], []
    for f in changed:
        path, new, prev, absent = (shlex.quote(f.path + s) for s in ("", NEW, PREVIOUS, ABSENT))
        swap.append(f"if [ -e {path} ]; then cp -p {path} {prev}; else : > {absent}; fi; mv -f {new} {path}")
        restore.append(f"if [ -e {prev} ]; then mv -f {prev} {path}; else rm -f {path}; fi; rm -f {absent}")
        cleanup.append(f"rm -f {prev} {absent}")
    script = "; ".join(swap) if swap else ":"
    if check:
        refused = f"{'; '.join(restore) or ':'}; echo 'config rejected: the previous one stays' >&2; exit 1"
        script += f"; if ! {check} >&2; then {refused}; fi"
    # daemon-reload picks up drop-ins; reset-failed lets a unit that gave up on the old config start again.
    u = shlex.quote(unit)
    script += (
        f"; {'; '.join(cleanup) or ':'}; systemctl daemon-reload; systemctl reset-failed {u}; systemctl restart {u}"
    )
    yield f"sh -c {shlex.quote(script)}"


def ensure_monitoring(of: dict[str, list[ManagedFile]], secrets: list[Secret], current: HostState) -> None:
    """Secrets first (Redis includes its password file), then each service's files, checked, then restart."""
    new_secrets = {s.service for s in secrets if current.files.get(s.path) is None}
    ensure_secrets(name="Monitoring secrets generated on the host", secrets=secrets, current=current)
    for service, (check, unit) in SERVICES.items():
        if of.get(service):
            ensure_checked_files(
                name=f"{service} configuration (checked before restart)",
                files=of[service],
                current=current,
                check=check,
                unit=unit,
                restart_anyway=service in new_secrets,
            )
