"""The hand-off from the host plan to roles/: per host, its rendered files and one host-vars document.

Everything a role needs is compiled here by the same Python the pyinfra engine uses (host_files renders
every file from templates/, the node/agent/JWT/token scripts come from the same functions), so the two
engines cannot disagree about content: the roles only decide, from the host's own answers, what to
change, and do it with Ansible's modules. Rendered files are staged on the control machine and copied
byte for byte (`ansible.builtin.copy` with `src`), never templated again by Ansible; every host-vars string
that holds a `{` is tagged `!unsafe`, so that nothing inside a script or a path is ever evaluated.

What the plan cannot know (container or not, live sysctls, the running ruleset) comes from the one
command the pyinfra engine also runs (mevfleet.probe and mevfleet.drift's probe), read once
per host by the probe play before anything is rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from .. import probe as host_probe
from ..agent import token_script
from ..control import POSTGRES_CHECK, POSTGRES_UNIT, host_secret_files, migrate_command, secrets_script
from ..control import UNIT as CONTROL_UNIT
from ..desired import (
    DEFERRED_REPORT,
    PROBED,
    WITHOUT_RECOMMENDS,
    Desired,
    deferred,
    directories,
    exporter_units,
    removal_script,
)
from ..drift import Drift, findings, parse, probe_command
from ..fleetca import HostCredentials
from ..hardening import PRIVATE_TO_ROOT, SYSTEMD_MANAGER_CONF, TOOLCHAIN, TOOLCHAIN_MODE
from ..model import HostPlan, NodePlan
from ..monitoring import (
    JOURNAL_TLS_FRONT,
    REDIS_AUTH,
    SERVICES,
    UPSTREAM,
    CopiedSecret,
    is_monitoring,
    journal_tls_copies,
    monitoring_units,
    receiver_secrets,
    secrets,
    shipper_packages,
    shipper_units,
)
from ..nodes import files_of, release_ok
from ..nodes import installs as node_installs
from ..nodes import marker as node_marker
from ..nodes import npm as npm_bundles
from ..nodes.artifacts import file_sha256, local_artifact
from ..nodes.artifacts import incoming_path as artifact_incoming
from ..nodes.artifacts import install_script as artifact_install_script
from ..nodes.jwt import jwt_script
from ..release import WheelRelease, agent_release, control_release, node_release
from ..render import HostFacts, ManagedFile

PROBE_SPLIT = "@@mevfleet-ansible-drift"
# Every concern of host_files that a role applies (monitoring's checked services come from SERVICES):
# a file of any other concern would be left out silently, so the hand-off refuses it.
HANDED_OVER = frozenset(
    {
        "plan",
        "firewall",
        "ssh",
        "hardening",
        "sysctl",
        "limits",
        "kernel",
        "time",
        "journald",
        "logrotate",
        "journal-remote",
        "journal-upload",
        "node_exporter",
        "nodes",
        "agent",
        "postgresql",
        "control",
        *SERVICES,
    }
)


class HandoffError(RuntimeError):
    pass


class Unsafe(str):
    """A host-vars string Ansible must take literally (dumped with the `!unsafe` tag)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style="'"))


def _unsafe(value: Any) -> Any:
    # Only strings that could open a Jinja expression, statement or comment: Ansible resolves an `!unsafe`
    # scalar's type as if it were plain, so a mode like '0644' would come back as an integer.
    if isinstance(value, str) and "{" in value:
        return Unsafe(value)
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unsafe(v) for v in value]
    return value


def host_vars_yaml(host_vars: dict[str, Any]) -> str:
    return yaml.dump(_unsafe(host_vars), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


class Probe(BaseModel):
    """What the probe play reads from a host before anything is rendered for it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    state: host_probe.HostState
    drift_lines: list[str]


def probe_script(want: Desired, authorized_keys: tuple[str, ...] | None) -> str:
    """The pyinfra engine's two probes (managed state, live drift) as one script: one round trip per host.

    want: the host's desired state, made once for this run (the same for host_vars)."""
    # The planned file set as a container renders it: a superset (the chrony drop-in) that only widens what
    # the owned-directories check accepts; the ruleset does not depend on the runtime.
    expected = want.expected(PROBED, authorized_keys)
    state = host_probe.script(**want.probe_args())
    return f"#!/bin/sh\n{state}\necho {PROBE_SPLIT}\n{probe_command(expected)}\n"


def read_probe(plan: HostPlan, output: str) -> Probe:
    lines = output.splitlines()
    split = lines.index(PROBE_SPLIT) if PROBE_SPLIT in lines else len(lines)
    state = host_probe.parse([line for line in lines[:split] if line])
    if plan.owns_kernel is not None:
        state.container = not plan.owns_kernel
    return Probe(state=state, drift_lines=lines[split + 1 :])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Stage:
    """A run's staging directory on the control machine: rendered files, probe scripts, host vars."""

    def __init__(self, root: Path):
        self.root = root

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def probe_path(self, host: str) -> Path:
        return self.host_dir(host) / "probe.sh"

    def probe_output(self, host: str) -> Path:
        return self.host_dir(host) / "probe.out"

    def stage_file(self, host: str, file: ManagedFile) -> str:
        path = self.host_dir(host) / "files" / file.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.content.encode())
        return str(path)


def _file_entry(stage: Stage, host: str, file: ManagedFile) -> dict[str, str]:
    return {
        "src": stage.stage_file(host, file),
        "path": file.path,
        "mode": file.mode,
        "owner": file.owner,
        "group": file.group,
    }


def _copied(copy: CopiedSecret) -> dict[str, str]:
    return {
        "src": os.path.expanduser(copy.source),
        "path": copy.path,
        "dir": posixpath.dirname(copy.path),
        "owner": copy.owner,
        "group": copy.file_group,
        "dir_group": copy.file_group,
        "mode": copy.mode,
        "service": copy.service,
    }


def _node_release(node: NodePlan, probe: Probe) -> dict[str, Any] | None:
    """How the node's release gets onto the host; the upload is prepared only when the host lacks it."""
    if not node_installs(node):
        return None
    ok = release_ok(node, probe.state)
    entry: dict[str, Any] = {
        "marker": node_marker(node),
        # None: any marker means complete (a venv release named after the agent's sources).
        "marker_sha256": None if node.runtime == "agent" else _digest(f"{node.artifact.sha256}\n"),
        "src": None,
        "upload": None,
        "install": None,
    }
    if ok:
        return entry
    binary = (node.executable or "").removeprefix(node.link + "/")
    release = node_release(node)
    if isinstance(release, WheelRelease):
        local, upload, script = release.prepare()
    elif node.artifact.npm:
        local = npm_bundles.build(node.artifact.npm)
        sha = file_sha256(local)
        upload, script = npm_bundles.incoming_path(node, sha), npm_bundles.install_script(node, sha)
    else:
        local = local_artifact(node.artifact)
        upload, script = artifact_incoming(node), artifact_install_script(node, binary)
    entry.update(src=str(local), upload=upload, install=script)
    return entry


def node_vars(plan: HostPlan, files: list[ManagedFile], stage: Stage, probe: Probe) -> list[dict[str, Any]]:
    nodes, seen = [], set()
    for node in plan.nodes:
        release = _node_release(node, probe) if node.release_dir not in seen else None
        if release is not None:
            seen.add(node.release_dir)
        nodes.append(
            {
                "unit": f"{node.unit}.service",
                "name": node.unit,
                "client": node.client,
                "version": node.version,
                "start": node.start,
                "release": release,
                "installs": node_installs(node),
                "release_dir": node.release_dir,
                "link": node.link,
                "switch": node_release(node).switch_script(),
                "image": f"{node.artifact.image}@{node.artifact.digest}"
                if node.start and node.runtime == "container"
                else None,
                "jwt_copies": [node.jwt] if node.jwt else [],
                "files": [_file_entry(stage, plan.name, f) for f in files_of(node, files)],
            }
        )
    return nodes


def _wheel_upload(release: WheelRelease, probe: Probe) -> dict[str, Any]:
    """The wheelhouse to upload and the script that installs it, prepared only when the host lacks it."""
    if release.installed(probe.state):
        return {"src": None, "upload": None, "install": None}
    local, upload, script = release.prepare()
    return {"src": str(local), "upload": upload, "install": script}


def control_vars(
    plan: HostPlan, files: list[ManagedFile], stage: Stage, probe: Probe, copies: list[CopiedSecret]
) -> dict[str, Any] | None:
    """The control plane (control.steps): PostgreSQL checked, secrets, release, schema, unit."""
    control = plan.control
    if control is None:
        return None
    release = control_release(control)
    return {
        "version": control.version,
        "postgres_unit": POSTGRES_UNIT,
        "postgres_check": POSTGRES_CHECK,
        "postgres_files": [_file_entry(stage, plan.name, f) for f in files if f.concern == "postgresql"],
        "secret_files": host_secret_files(control),
        "secrets": secrets_script(control, REDIS_AUTH),
        "copies": [_copied(c) for c in copies],
        "marker": release.marker,
        "release": _wheel_upload(release, probe),
        "release_dir": release.dir,
        "link": release.link,
        "switch": release.switch_script(),
        "migrate": migrate_command(control),
        "unit": CONTROL_UNIT,
        "files": [_file_entry(stage, plan.name, f) for f in files if f.concern == "control"],
    }


def agent_vars(
    plan: HostPlan, files: list[ManagedFile], stage: Stage, probe: Probe, copies: list[CopiedSecret]
) -> dict[str, Any] | None:
    agent = plan.agent
    if agent is None:
        return None
    release = agent_release(agent)
    return {
        "version": agent.version,
        "token_file": agent.token_file,
        "user": agent.user,
        "token": token_script(agent),
        "marker": release.marker,
        "release": _wheel_upload(release, probe),
        "release_dir": release.dir,
        "link": release.link,
        "switch": release.switch_script(),
        "files": [_file_entry(stage, plan.name, f) for f in files],
        "secrets": [_copied(c) for c in copies],
    }


def _drift_fixes(drifts: list[Drift], *kinds: str) -> list[str]:
    """Each drift's repair, then each reader's reload once (engine/live.repair's order)."""
    fix: list[str] = []
    after: list[str] = []
    for d in drifts:
        if d.kind in kinds and (d.fix or d.after):
            fix += d.fix
            after += [c for c in d.after if c not in after]
    return fix + after


def host_vars(
    want: Desired,
    probe: Probe,
    stage: Stage,
    authorized_keys: tuple[str, ...] | None,
    journal_tls: HostCredentials | None,
    fleet_copies: tuple[CopiedSecret, ...] = (),
) -> tuple[dict[str, Any], dict[str, dict[str, str]], list[Drift]]:
    """The host plan as the roles read it; also the deferral report and the live drift, for the run's summary.

    want: the host's desired state, made once for this run (the same as probe_script's).
    fleet_copies: the control plane's secrets the control machine holds for this host (engine/run.fleet_copies).
    """
    plan = want.plan

    def copies_for(service: str) -> list[CopiedSecret]:
        return [c for c in fleet_copies if c.service == service]

    current = probe.state
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    report = deferred(plan, current)
    expected = want.expected(facts, authorized_keys)
    drifts = findings(expected, parse(probe.drift_lines))
    files = [
        *want.files(facts),
        ManagedFile(path=DEFERRED_REPORT, content=json.dumps(report, indent=2, sort_keys=True) + "\n", concern="plan"),
    ]

    unknown = sorted({f.concern for f in files} - HANDED_OVER)
    if unknown:
        raise HandoffError(f"no role in roles/ applies the files of concern(s) {', '.join(unknown)}")

    def of(concern: str) -> list[dict[str, str]]:
        return [_file_entry(stage, plan.name, f) for f in files if f.concern == concern]

    hardening = [f for f in files if f.concern == "hardening"]
    tls = (
        journal_tls_copies(plan, str(journal_tls.ca), str(journal_tls.cert), str(journal_tls.key))
        if journal_tls
        else []
    )
    live = {k: v for k, v in plan.sysctls().items() if k not in report["sysctls"]}
    node_files = [f for f in files if f.concern == "nodes"]
    out: dict[str, Any] = {
        "mevfleet_host": plan.name,
        "mevfleet_container": current.container,
        # base
        "mevfleet_packages": [p for p in plan.packages if p not in WITHOUT_RECOMMENDS],
        "mevfleet_packages_no_recommends": [p for p in plan.packages if p in WITHOUT_RECOMMENDS],
        "mevfleet_users": [{"name": u.name, "home": u.home} for u in plan.users],
        "mevfleet_directories": [{"path": p, "mode": m, "owner": o} for p, m, o in directories(plan)],
        "mevfleet_plan_files": of("plan"),
        # what the plan dropped (node units, the agent, monitoring, the control plane) that the probe still
        # found: each concern's one removal script, run before anything planned starts (data kept)
        "mevfleet_removed": [
            {"name": r.task, "script": removal_script(r)} for r in want.to_remove(probe.state.present)
        ],
        # Made (mkdir -p, as the pyinfra engine's uploads do) where missing, after the packages are in.
        "mevfleet_file_dirs": sorted({posixpath.dirname(f.path) for f in files}),
        # network/firewall
        "mevfleet_firewall_files": of("firewall"),
        "mevfleet_firewall_repairs": _drift_fixes(drifts, "firewall"),
        # ssh
        "mevfleet_ssh_files": of("ssh"),
        "mevfleet_authorized_keys_repairs": _drift_fixes(drifts, "authorized-keys"),
        # hardening
        "mevfleet_hardening_files": [
            _file_entry(stage, plan.name, f) for f in hardening if not f.path.startswith(SYSTEMD_MANAGER_CONF)
        ],
        "mevfleet_hardening_manager_files": [
            _file_entry(stage, plan.name, f) for f in hardening if f.path.startswith(SYSTEMD_MANAGER_CONF)
        ],
        "mevfleet_private_to_root": PRIVATE_TO_ROOT,
        "mevfleet_toolchain": list(TOOLCHAIN),
        "mevfleet_toolchain_mode": TOOLCHAIN_MODE,
        # kernel
        "mevfleet_sysctl_files": of("sysctl"),
        "mevfleet_sysctls_live": live,
        "mevfleet_stale_files": sorted(current.globbed - {f.path for f in files}),
        "mevfleet_owned_files_repairs": _drift_fixes(drifts, "owned-files"),
        "mevfleet_limits_files": of("limits"),
        "mevfleet_kernel_files": of("kernel"),
        # time
        "mevfleet_time_files": of("time"),
        # logs
        "mevfleet_journald_files": of("journald"),
        "mevfleet_logrotate_files": of("logrotate"),
        "mevfleet_shipper_packages": shipper_packages(plan),
        "mevfleet_shipper_units": shipper_units(plan),
        "mevfleet_journal_remote_files": of("journal-remote"),
        "mevfleet_journal_upload_files": of("journal-upload"),
        "mevfleet_journal_tls": [_copied(c) for c in tls],
        "mevfleet_journal_tls_front": JOURNAL_TLS_FRONT if is_monitoring(plan) else None,
        # monitoring
        "mevfleet_secrets": [s.model_dump() for s in secrets(plan)],
        "mevfleet_receiver_secrets": [_copied(c) for c in [*receiver_secrets(plan), *copies_for("redis")]],
        "mevfleet_checked_services": [
            {
                "service": service,
                "check": check,
                "unit": unit,
                "installed_only": service in UPSTREAM,
                "files": of(service),
            }
            for service, (check, unit) in SERVICES.items()
            if of(service)
        ],
        "mevfleet_monitoring_units": monitoring_units(plan),
        "mevfleet_exporter_files": of("node_exporter"),
        "mevfleet_exporter_units": exporter_units(plan),
        # nodes
        "mevfleet_jwts": [
            {
                "chain": j.chain,
                "script": jwt_script(j),
                "copies": [{"path": p, "owner": o} for p, o in j.copies],
                "units": list(j.units),
            }
            for j in plan.jwts
        ],
        "mevfleet_nodes": node_vars(plan, node_files, stage, probe),
        # agent
        "mevfleet_agent": agent_vars(
            plan, [f for f in files if f.concern == "agent"], stage, probe, copies_for("agent")
        ),
        # control plane
        "mevfleet_control": control_vars(plan, files, stage, probe, copies_for("control")),
        # live drift beyond files: overrides of units
        "mevfleet_unit_override_repairs": _drift_fixes(drifts, "unit-override"),
    }
    return out, report, drifts
