"""Run the Ansible engine: probe every host, hand its plan over as host vars and files, apply roles/.

Two ansible-playbook runs per deploy: the probe play reads each host once (the same command as the pyinfra
engine's probe), then site.yml applies the roles. Results come back through the mevfleet_report callback
as JSON lines and are summarised exactly like the pyinfra engine's (engine/run.DeployResult).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .. import REPO_ROOT
from ..desired import Desired
from ..drift import inventory_keys
from ..engine.log import DeployLog
from ..engine.run import DeployResult, HostResult, OpResult, Printer, fleet_copies
from ..engine.watchdog import default_bound
from ..fleetca import ca_dir, ensure_host
from ..inventory import Inventory
from ..model import FleetPlan
from ..monitoring import ships_journals
from ..sshclient import ansible_vars
from .handoff import Stage, host_vars, host_vars_yaml, probe_script, read_probe

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
ROLES = REPO_ROOT / "roles"
PROBE_TASK = "Read the host's managed state in one command"
POLL_S = 0.5


class AnsibleEngineError(RuntimeError):
    pass


def ansible_playbook() -> str:
    """The ansible-playbook of this environment (the venv mevfleet runs from), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise AnsibleEngineError("ansible-playbook not found: install ansible-core (bash deploy/bootstrap.sh)")
    return found


def _env(stage: Path, report: Path, forks: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # An empty config of the run's own: no ansible.cfg from the working directory or home changes a run.
            "ANSIBLE_CONFIG": str(stage / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROLES),
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback"),
            "ANSIBLE_CALLBACKS_ENABLED": "mevfleet_report",
            "MEVFLEET_ANSIBLE_REPORT": str(report),
            "ANSIBLE_FORKS": str(max(forks, 1)),
            "ANSIBLE_PIPELINING": "True",
            # No terminal on the host: with one, systemctl pages its output and the probe waits forever.
            "ANSIBLE_SSH_USETTY": "False",
            # The same per-step bound as the pyinfra engine's watchdog (MEVFLEET_HOST_TIMEOUT).
            "ANSIBLE_TASK_TIMEOUT": str(int(default_bound())),
            "ANSIBLE_LOCAL_TEMP": str(stage / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(stage / "cp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        }
    )
    return env


def _play(
    playbook: str, stage: Path, hosts: list[str], log: DeployLog, out: Printer, progress: bool
) -> list[dict[str, object]]:
    """One ansible-playbook run over `hosts`; every task result as a dict (host, task, status, changed, msg)."""
    report = stage / f"{playbook}.jsonl"
    report.unlink(missing_ok=True)
    report.touch(mode=0o600)
    cmd = [
        ansible_playbook(),
        "-i",
        str(stage / "inventory.yml"),
        "--limit",
        ",".join(hosts),
        str(PLAYBOOKS / f"{playbook}.yml"),
    ]
    log.write(f"$ {' '.join(cmd)}")
    results: list[dict[str, object]] = []
    with (stage / f"{playbook}.out").open("w") as screen, report.open() as lines:
        proc = subprocess.Popen(cmd, cwd=stage, env=_env(stage, report, len(hosts)), stdout=screen, stderr=screen)
        while True:
            done = proc.poll() is not None
            for line in lines:
                result = json.loads(line)
                results.append(result)
                if progress and result["changed"]:
                    out(f"  {result['host']}: {result['task']} ... changed")
                elif result["status"] in ("failed", "unreachable"):
                    out(f"  {result['host']}: {result['task']} ... FAILED")
            if done:
                break
            time.sleep(POLL_S)
    screen_text = (stage / f"{playbook}.out").read_text()
    log.write(screen_text)
    # 2: a host failed, 4: a host was unreachable (both reported per host); anything else stopped the run.
    if proc.returncode not in (0, 2, 4) and not results:
        last = [line for line in screen_text.splitlines() if line.strip()][-1:] or ["no output"]
        raise AnsibleEngineError(f"ansible-playbook {playbook} exited {proc.returncode}: {last[0]}")
    return results


def run_ansible_deploy(
    plan: FleetPlan, inventory: Inventory, limit: list[str] | None = None, out: Printer = print
) -> DeployResult:
    started = time.monotonic()
    names = [n for n in plan.hosts if not limit or n in limit]
    results = {n: HostResult(name=n) for n in names}
    log = DeployLog.open()
    stage_root = Path(tempfile.mkdtemp(prefix="mevfleet-ansible-"))
    try:
        _run(plan, inventory, names, results, Stage(stage_root), log, out)
    except Exception as exc:  # an engine bug must not reach the operator as a traceback: one line, details logged
        log.exception("deploy", exc)
        for r in results.values():
            r.error = r.error or f"deploy stopped: {log.one_line(exc)}"
    finally:
        log.close()
        if not os.environ.get("MEVFLEET_KEEP_STAGE"):
            shutil.rmtree(stage_root, ignore_errors=True)
    return DeployResult(results, time.monotonic() - started, False, str(log.path))


def _fail(results: dict[str, HostResult], play: list[dict[str, object]]) -> None:
    for r in play:
        if r["status"] in ("failed", "unreachable") and not results[str(r["host"])].error:
            why = "cannot connect" if r["status"] == "unreachable" else str(r["task"])
            msg = str(r["msg"]).strip().splitlines()
            results[str(r["host"])].error = f"{why}: {msg[-1] if msg else 'failed'}"


def _run(
    plan: FleetPlan,
    inventory: Inventory,
    names: list[str],
    results: dict[str, HostResult],
    stage: Stage,
    log: DeployLog,
    out: Printer,
) -> None:
    for d in ("tmp", "cp", "host_vars"):
        (stage.root / d).mkdir(mode=0o700)
    (stage.root / "ansible.cfg").write_text("")
    copies = fleet_copies(plan, inventory)
    keys = {n: inventory_keys(plan.hosts[n].ssh.key, plan.hosts[n].ssh.user) for n in names}
    # Each host's desired state, computed once for the probe and the hand-off.
    wants = {n: Desired(plan.hosts[n]) for n in names}
    hosts = {}
    for name in names:
        script = stage.probe_path(name)
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(probe_script(wants[name], keys[name]))
        hosts[name] = {**ansible_vars(plan.hosts[name].ssh), "mevfleet_probe_script": str(script)}
    (stage.root / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))

    probed = _play("probe", stage.root, names, log, out, progress=False)
    _fail(results, probed)
    outputs = {
        str(r["host"]): str(r.get("stdout", "")) for r in probed if r["task"] == PROBE_TASK and r["status"] == "ok"
    }
    for name in names:
        if results[name].error:
            continue
        if name not in outputs:
            results[name].error = "cannot connect: no answer to the probe"
            continue
        out(f"  {name}: connected")
        try:
            tls = None
            if ships_journals(plan.hosts[name]):
                # Issued (once) on this control machine; the host gets a root-only copy.
                ca = ca_dir(inventory.fleet.name)
                tls = ensure_host(ca, inventory.fleet.name, name, plan.hosts[name].address)
            probe = read_probe(plan.hosts[name], outputs[name])
            data, report, drifts = host_vars(wants[name], probe, stage, keys[name], tls, copies.get(name, ()))
        except Exception as exc:  # this host's plan could not be handed over: fail it alone, by name
            log.exception(name, exc)
            results[name].error = f"{log.one_line(exc)} (details: {log.path})"
            continue
        (stage.root / "host_vars" / f"{name}.yml").write_text(host_vars_yaml(data))
        results[name].deferred = report
        results[name].drift = [f"{d.kind}: {d.what}" for d in drifts]

    ready = [n for n in names if not results[n].error]
    if not ready:
        return
    applied = _play("site", stage.root, ready, log, out, progress=True)
    for r in applied:
        if r["status"] in ("ok", "failed"):
            results[str(r["host"])].ops.append(
                OpResult(str(r["task"]), bool(r["changed"]), str(r["msg"]) if r["status"] == "failed" else None)
            )
    _fail(results, applied)
    seen = {str(r["host"]) for r in applied}
    for name in ready:
        if name not in seen and not results[name].error:
            results[name].error = f"ansible-playbook stopped before this host ran (details: {log.path})"
