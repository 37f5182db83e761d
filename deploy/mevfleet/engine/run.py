"""Run the pyinfra engine over a fleet plan through pyinfra's Python API, with per-host progress."""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyinfra.api import BaseStateCallback, Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_host, ctx_state, host
from pyinfra.facts.files import FileContents

from ..inventory import Inventory as FleetInventory
from ..plan import FleetPlan, HostPlan
from ..render import HostFacts, host_files
from .files import differs, sha256
from .host import deploy_host, read_state

Printer = Callable[[str], None]


@dataclass
class OpResult:
    name: str
    changed: bool
    error: str | None = None


@dataclass
class HostResult:
    name: str
    error: str | None = None
    ops: list[OpResult] = field(default_factory=list)
    deferred: dict[str, dict[str, str]] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)  # --dry: unified diffs of files that would change

    @property
    def changed(self) -> list[str]:
        return [op.name for op in self.ops if op.changed]


@dataclass
class DeployResult:
    hosts: dict[str, HostResult]
    seconds: float
    dry: bool

    @property
    def failed(self) -> dict[str, str]:
        return {name: r.error for name, r in self.hosts.items() if r.error}


def pyinfra_inventory(inventory: FleetInventory, names: list[str]) -> Inventory:
    hosts = []
    for name in names:
        spec = inventory.hosts[name]
        data = {
            "ssh_hostname": spec.address,
            "ssh_port": spec.ssh.port,
            "ssh_user": spec.ssh.user,
            "ssh_strict_host_key_checking": "accept-new" if spec.ssh.strict_host_keys else "no",
            # Never fall back to whatever keys an agent or ~/.ssh holds: the inventory names the key.
            "ssh_allow_agent": False,
            "ssh_look_for_keys": spec.ssh.key is None,
            "ssh_connect_retries": 1,
        }
        if spec.ssh.key:
            data["ssh_key"] = os.path.expanduser(spec.ssh.key)
        if spec.ssh.known_hosts:
            data["ssh_known_hosts_file"] = os.path.expanduser(spec.ssh.known_hosts)
        if spec.ssh.user != "root":
            data["_sudo"] = True
        hosts.append((name, data))
    return Inventory((hosts, {}))


class _Progress(BaseStateCallback):
    def __init__(self, out: Printer, results: dict[str, HostResult]):
        self.out = out
        self.results = results

    def host_connect(self, state: State, host) -> None:
        self.out(f"  {host.name}: connected")

    def host_connect_error(self, state: State, host, error) -> None:
        self.results[host.name].error = f"cannot connect: {error}"
        self.out(f"  {host.name}: FAILED to connect: {error}")

    def operation_host_success(self, state: State, host, op_hash, retry_count: int = 0) -> None:
        data = state.get_op_data_for_host(host, op_hash)
        if data.operation_meta.will_change and _condition_holds(data):
            self.out(f"  {host.name}: {data.global_arguments.get('name')} ... changed")

    def operation_host_error(self, state: State, host, op_hash, retry_count: int = 0, max_retries: int = 0):
        meta = state.get_op_data_for_host(host, op_hash)
        self.out(f"  {host.name}: {meta.global_arguments.get('name')} ... FAILED")


def run_deploy(
    plan: FleetPlan,
    inventory: FleetInventory,
    limit: list[str] | None = None,
    dry: bool = False,
    out: Printer = print,
) -> DeployResult:
    started = time.monotonic()
    names = [n for n in plan.hosts if not limit or n in limit]
    results = {n: HostResult(name=n) for n in names}
    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)

    state = State(inventory=pyinfra_inventory(inventory, names), config=Config(CONNECT_TIMEOUT=10))
    state.add_callback_handler(_Progress(out, results))
    try:
        connect_all(state)
    except PyinfraError as exc:  # every host failed to connect
        for r in results.values():
            r.error = r.error or str(exc)
        return DeployResult(results, time.monotonic() - started, dry)

    active = list(state.inventory.get_active_hosts())
    with ctx_state.use(state):
        for host in active:
            with ctx_host.use(host):
                results[host.name].deferred = deploy_host(plan.hosts[host.name])
                if dry:
                    results[host.name].diffs = file_diffs(plan.hosts[host.name])

    if not dry:
        try:
            run_ops(state, no_wait=True)
        except PyinfraError as exc:  # raised only when no host is left
            out(f"  deploy stopped: {exc}")
    for host in active:
        results[host.name].ops = _op_results(state, host, dry)
        failed = [op for op in results[host.name].ops if op.error]
        if failed and not results[host.name].error:
            results[host.name].error = f"{failed[0].name}: {failed[0].error}"
    disconnect_all(state)
    return DeployResult(results, time.monotonic() - started, dry)


def file_diffs(plan: HostPlan, max_lines: int = 60) -> list[str]:
    """What --dry shows: for each managed file that differs, a unified diff (remote -> planned)."""
    current = read_state(plan)  # cached: the same fact deploy_host read
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    diffs = []
    for f in host_files(plan, facts):
        if not differs(f, current):
            continue
        have = current.files.get(f.path)
        if have is not None and have.sha256 == sha256(f.content):
            diffs.append(f"{f.path}: mode/owner {have.mode} {have.owner}:{have.group} -> {f.mode} {f.owner}:{f.group}")
            continue
        remote = host.get_fact(FileContents, path=f.path) or []
        lines = list(
            difflib.unified_diff(
                [line + "\n" for line in remote],
                f.content.splitlines(keepends=True),
                fromfile=f"{f.path} (host)",
                tofile=f"{f.path} (plan)",
            )
        )
        diffs.append(
            "".join(lines[:max_lines])
            + (f"... ({len(lines) - max_lines} more lines)\n" if len(lines) > max_lines else "")
        )
    return diffs


def _condition_holds(data) -> bool:
    """Evaluate an op's `_if` (restarts that follow a file change) the way pyinfra does at execution."""
    conditions = data.global_arguments.get("_if")
    if not conditions:
        return True
    if callable(conditions):
        return bool(conditions())
    return all(c() for c in conditions)


def _op_results(state: State, host, dry: bool) -> list[OpResult]:
    ops = []
    for op_hash in host.op_hash_order:
        data = state.get_op_data_for_host(host, op_hash)
        meta = data.operation_meta
        name = str(data.global_arguments.get("name") or op_hash)
        if dry or not meta.is_complete():
            # A conditional op (a restart that follows a file change) is a consequence, not a change of
            # its own: its condition cannot be evaluated before the file op runs.
            conditional = bool(data.global_arguments.get("_if"))
            ops.append(
                OpResult(
                    name,
                    changed=bool(meta.will_change and not conditional) if dry else False,
                    error=None if dry else "not run (an earlier operation failed)",
                )
            )
            continue
        error = None
        if not meta.did_succeed(_raise_if_not_complete=False):
            error = (meta.stderr or meta.stdout or "command failed").strip().splitlines()[-1]
        ops.append(OpResult(name, changed=meta.did_change(), error=error))
    return ops
