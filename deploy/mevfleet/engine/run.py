"""Run the pyinfra engine over a fleet plan through pyinfra's Python API, with per-host progress."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from pyinfra.api import BaseStateCallback, Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError

# pyinfra's per-host runner: the same one its no-wait strategy spawns for each host.
from pyinfra.api.operations import _run_host_ops
from pyinfra.connectors.sshuserclient.client import get_host_keys
from pyinfra.context import ctx_host, ctx_state, host
from pyinfra.facts.files import FileContents

from ..control import agent_copies, agent_secrets, control_copies, write_acl
from ..desired import Desired
from ..drift import inventory_keys
from ..fleetca import ca_dir, ensure_host
from ..inventory import Inventory as FleetInventory
from ..model import FleetPlan
from ..monitoring import CopiedSecret, ships_journals
from ..render import HostFacts
from ..sshclient import pyinfra_config, pyinfra_host_data
from .files import differs, sha256
from .host import deploy_host, read_state
from .log import DeployLog
from .watchdog import Watchdog, default_bound

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
    drift: list[str] = field(default_factory=list)  # live drift found (repaired unless --dry), one line each

    @property
    def changed(self) -> list[str]:
        return [op.name for op in self.ops if op.changed]


@dataclass
class DeployResult:
    hosts: dict[str, HostResult]
    seconds: float
    dry: bool
    log: str | None = None  # the run's log file: every failure's full output and any engine traceback

    @property
    def failed(self) -> dict[str, str]:
        return {name: r.error for name, r in self.hosts.items() if r.error}


def pyinfra_inventory(plan: FleetPlan, names: list[str]) -> Inventory:
    """The hosts as pyinfra reaches them: each host plan's SSH connection (sshclient.pyinfra_host_data)."""
    # pyinfra keeps a known_hosts file's keys for the life of the process; sshclient.connect reads the file
    # at each connection. Read afresh here, so a file rewritten since (a test host recreated with a new key,
    # a key pinned by another client) means the same to both.
    get_host_keys.cache.clear()
    return Inventory(([(name, pyinfra_host_data(plan.hosts[name].ssh)) for name in names], {}))


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
    bound: float | None = None,
) -> DeployResult:
    """bound: seconds a host may go without progress before it is cut off and failed (default 900)."""
    started = time.monotonic()
    names = [n for n in plan.hosts if not limit or n in limit]
    results = {n: HostResult(name=n) for n in names}
    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
    log = DeployLog.open()
    try:
        with Watchdog(bound or default_bound()) as watchdog:
            result = _run(plan, inventory, names, results, dry, out, log, started, watchdog)
        for name, why in watchdog.timed_out.items():
            result.hosts[name].error = why  # the closed connection's own error says less
        return result
    except Exception as exc:  # an engine bug must not reach the operator as a traceback: one line, details logged
        log.exception("deploy", exc)
        for r in results.values():
            r.error = r.error or f"deploy stopped: {log.one_line(exc)}"
        return DeployResult(results, time.monotonic() - started, dry, str(log.path))
    finally:
        log.close()


def _run(plan, inventory, names, results, dry, out, log: DeployLog, started: float, watchdog: Watchdog):
    state = State(inventory=pyinfra_inventory(plan, names), config=Config(**pyinfra_config()))
    state.add_callback_handler(_Progress(out, results))
    state.add_callback_handler(watchdog)
    try:
        connect_all(state)
    except PyinfraError as exc:  # every host failed to connect
        for r in results.values():
            r.error = r.error or str(exc)
        return DeployResult(results, time.monotonic() - started, dry, str(log.path))

    active = list(state.inventory.get_active_hosts())
    for connected in active:
        # Connected, with nothing in flight until its own probe below: a host waiting for another's probe is
        # not hanging (before, a host that hung in its probe had every host still waiting cut off with it).
        watchdog.idle(connected)
    copies = fleet_copies(plan, inventory)
    with ctx_state.use(state):
        for host in active:
            planned = plan.hosts[host.name]
            watchdog.step(host)
            with ctx_host.use(host):
                try:
                    keys = inventory_keys(planned.ssh.key, planned.ssh.user)
                    tls = None
                    if ships_journals(planned):
                        # Issued (once) on this control machine; the host gets a root-only copy.
                        ca = ca_dir(inventory.fleet.name)
                        tls = ensure_host(ca, inventory.fleet.name, host.name, planned.address)
                    # The host's desired state, computed once for every step of this run.
                    want = Desired(planned)
                    report, drifts = deploy_host(want, keys, tls, copies.get(host.name, ()))
                    results[host.name].deferred = report
                    results[host.name].drift = [f"{d.kind}: {d.what}" for d in drifts]
                    if dry:
                        results[host.name].diffs = file_diffs(want) + [
                            f"live {d.kind}: {d.what}" + (f"\n{d.detail}" if d.detail else "") for d in drifts
                        ]
                except Exception as exc:  # this host's plan could not be queued: fail it alone, by name
                    log.exception(host.name, exc)
                    results[host.name].error = f"{log.one_line(exc)} (details: {log.path})"
            watchdog.idle(host)
    failed_early = {h for h in active if results[h.name].error}
    active = [h for h in active if h not in failed_early]
    if failed_early and active:
        state.fail_hosts(failed_early)  # their half-queued operations never run

    if not dry and active:
        _run_hosts(state, active, watchdog, log)
    for host in active:
        results[host.name].ops = _op_results(state, host, dry, log)
        failed = [op for op in results[host.name].ops if op.error]
        if failed and not results[host.name].error:
            results[host.name].error = f"{failed[0].name}: {failed[0].error}"
    disconnect_all(state)
    return DeployResult(results, time.monotonic() - started, dry, str(log.path))


def fleet_copies(plan: FleetPlan, inventory: FleetInventory) -> dict[str, tuple[CopiedSecret, ...]]:
    """The control plane's secrets held on this control machine (beside the fleet CA), per host: each
    agent's API token, bus password and the fleet CA; the control host's certificate (for the API and
    Redis's TLS port), the fleet CA, the agents' tokens and the Redis ACL file. Made once and kept, so a
    second deploy copies nothing."""
    control = next((p for p in plan.hosts.values() if p.control is not None), None)
    if control is None or control.control is None:
        return {}
    directory = ca_dir(inventory.fleet.name)
    agents = {a.name: agent_secrets(directory, a.name) for a in control.control.agents}
    acl = write_acl(directory, agents)
    tls = ensure_host(directory, inventory.fleet.name, control.name, control.listen_address)
    copies = {name: tuple(agent_copies(made, tls.ca)) for name, made in agents.items()}
    copies[control.name] = (*copies.get(control.name, ()), *control_copies(control, agents, acl, tls))
    return copies


def _run_hosts(state: State, hosts: list, watchdog: Watchdog, log: DeployLog) -> None:
    """Every host's operations at once, each host on its own (pyinfra's no-wait strategy), without letting
    a failed host's exception print a traceback: a failed operation is recorded in its meta, the rest logged."""

    def one(host) -> None:
        watchdog.step(host)
        try:
            _run_host_ops(state, host)
        except PyinfraError:
            pass  # an operation failed: _op_results names it
        except Exception as exc:
            log.exception(host.name, exc)
        finally:
            watchdog.idle(host)

    state.is_executing = True
    with ctx_state.use(state):
        gevent.joinall([gevent.spawn(one, host) for host in hosts])


def file_diffs(want: Desired, max_lines: int = 60) -> list[str]:
    """What --dry shows: for each managed file that differs, a unified diff (remote -> planned)."""
    current = read_state(want)  # cached: the same fact deploy_host read
    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
    diffs = []
    for f in want.files(facts):
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


def _op_results(state: State, host, dry: bool, log: DeployLog) -> list[OpResult]:
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
            output = (meta.stderr or meta.stdout or "command failed").strip()
            error = output.splitlines()[-1] if output else "command failed"
            log.write(f"{host.name}: {name} FAILED\n  stdout:\n{meta.stdout}\n  stderr:\n{meta.stderr}\n")
        ops.append(OpResult(name, changed=meta.did_change(), error=error))
    return ops
