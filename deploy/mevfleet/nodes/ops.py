"""Operations on running nodes: status, the health gate, rolling upgrade and rollback.

Each host is reached over SSH exactly as the deploy reaches it (its plan's SshPlan, through
mevfleet.sshclient), and
every check runs on the host itself, so RPC ports never need to be open to the control machine.
An upgrade is a deploy with a version override: the version each host runs is recorded, host by host as
the rollout goes, in the rollout file beside the inventory (inventory.rollout_path), which the inventory
loader merges into the host's `versions`; a later `deploy` therefore keeps what was rolled out.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import paramiko
import yaml
from pydantic import BaseModel, ConfigDict

from ..inventory import Inventory, load_inventory, load_rollout, rollout_path
from ..model import FleetPlan, HostPlan, NodePlan, SshPlan
from ..plan import compile_plan
from ..sshclient import connect
from .beacon import BeaconState, beacon_probe, beacon_problems, parse_beacon
from .planning import unpinned_artifacts

Printer = Callable[[str], None]
HEALTH_TIMEOUT_S = 60.0


class NodeStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    chain: str
    unit: str
    state: str
    head: int | None
    lag: int | None
    peers: int | None
    version: str | None  # the release `current` points at, as installed
    planned: str
    note: str = ""
    expected: bool = True  # False for nodes the plan renders but does not start (Solana on the devnet)
    # Beacon nodes: head is the head slot, lag the node's own sync distance (slots behind the clock).
    head_kind: Literal["block", "slot", "none"] = "block"
    finalized_epoch: int | None = None
    syncing: bool | None = None  # a beacon node that says it is syncing (head behind the clock) is not healthy
    simulator: bool = False  # a devnet stand-in (anvil), not a real client
    agent: bool = False  # the host's searcher agent, not a node: healthy when its unit is active

    @property
    def healthy(self) -> bool:
        if self.agent:
            return self.state == "active"
        if not self.expected:
            return True
        answers = self.head is not None or self.head_kind == "none"
        return self.state == "active" and answers and self.syncing is not True


def run(client: paramiko.SSHClient, command: str, timeout: float = 30) -> tuple[int, str]:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out


def rpc_command(url: str, method: str) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
    return (
        f"curl -s -m 3 -H 'Content-Type: application/json' --data {shlex.quote(body)} {shlex.quote(url)} || echo '{{}}'"
    )


def _probe(node: NodePlan) -> str:
    """One shell snippet printing the node's state, link target, head and peers on four lines."""
    unit = shlex.quote(f"{node.unit}.service")
    lines = [f"systemctl show --property ActiveState --value {unit}"]
    lines.append(f"readlink {shlex.quote(node.link)} || echo -")
    if node.rpc_url and node.sync_method:
        lines += [
            rpc_command(node.rpc_url, node.sync_method),
            "echo",
            rpc_command(node.rpc_url, "net_peerCount"),
            "echo",
        ]
    else:
        lines += ["echo '{}'", "echo '{}'"]
    return "; ".join(lines)


def _result_int(text: str) -> int | None:
    try:
        value = json.loads(text).get("result")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    return value if isinstance(value, int) else None


AGENT_UNIT = "mevagent.service"


def agent_status(client: paramiko.SSHClient, name: str) -> NodeStatus:
    """The agent's unit: `failed (exit-code)` when it gave up, so status shows a dead agent by name."""
    # Key=value, not --value: systemctl prints properties in its own order, not the order asked.
    _, out = run(client, f"systemctl show --property ActiveState --property Result {AGENT_UNIT}")
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state, result = props.get("ActiveState", "unknown"), props.get("Result", "")
    shown = f"{state} ({result})" if state == "failed" and result else state
    return NodeStatus(
        host=name, chain="-", unit="mevagent", state=shown, head=None, lag=None, peers=None, version=None,
        planned="-", agent=True, head_kind="none",
    )  # fmt: skip


def host_status(plan: HostPlan) -> list[NodeStatus]:
    """The host's nodes and, when it runs one, its agent."""
    nodes = plan.nodes
    if not nodes:
        return []
    try:
        client = connect(plan.ssh)
    except (OSError, paramiko.SSHException) as exc:
        return [
            NodeStatus(host=plan.name, chain=n.chain, unit=n.unit, state="unreachable", head=None, lag=None,
                       peers=None, version=None, planned=n.version, note=str(exc), expected=n.start) for n in nodes
        ]  # fmt: skip
    try:
        rows = []
        for node in nodes:
            if node.beacon_url:
                _, out = run(client, f"{_probe(node)}; {beacon_probe(node.beacon_url)}")
            else:
                _, out = run(client, _probe(node))
            state, link, head, peers = [*out.splitlines(), "", "-", "{}", "{}"][:4]
            version = None if link.strip() in ("-", "") else link.strip().rsplit("/", 1)[-1]
            beacon = parse_beacon(out.splitlines()[4:]) if node.beacon_url else None
            rows.append(
                NodeStatus(
                    host=plan.name,
                    chain=node.chain,
                    unit=node.unit,
                    state=state.strip() or "unknown",
                    head=_result_int(head),
                    lag=None,
                    peers=_result_int(peers),
                    version=version if node.runtime == "binary" else node.version,
                    planned=node.version,
                    note=(node.skip_reason and "not started: no binary here (see plan)") or "",
                    expected=node.start,
                    simulator=node.simulator,
                    head_kind="block" if node.rpc_url and node.sync_method else "none",
                )
            )
            if beacon is not None:
                rows[-1] = rows[-1].model_copy(update=beacon.status_fields())
        if plan.agent is not None:
            rows.append(agent_status(client, plan.name))
        return rows
    finally:
        client.close()


def fleet_status(fleet: FleetPlan, hosts: list[str] | None = None) -> list[NodeStatus]:
    names = [n for n in fleet.hosts if fleet.hosts[n].nodes and (not hosts or n in hosts)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        per_host = list(pool.map(lambda n: host_status(fleet.hosts[n]), names))
    rows = [r for rs in per_host for r in rs]
    # Lag against the fleet's highest head for the chain: the configured reference is the fleet itself.
    best: dict[str, int] = {}
    for r in rows:
        if r.head is not None and r.head_kind == "block":
            best[r.chain] = max(best.get(r.chain, 0), r.head)
    return [
        r.model_copy(update={"lag": best[r.chain] - r.head}) if r.head is not None and r.head_kind == "block" else r
        for r in rows
    ]


Shell = Callable[[str], str]  # runs a shell snippet on the host, returns its stdout


def host_beacons(nodes: tuple[NodePlan, ...], chain: str) -> tuple[str, ...]:
    """The beacon APIs of the chain's started consensus clients on a host: an upgrade of any of the chain's
    nodes there is healthy only once these are synced and following the chain again."""
    return tuple(n.beacon_url for n in nodes if n.chain == chain and n.beacon_url and n.start)


def gate(
    check: Callable[[], str | None],
    shell: Shell,
    beacons: tuple[str, ...],
    timeout: float,
    interval: float = 1.0,
) -> str | None:
    """Poll until `check` (the node itself) passes and every beacon API in `beacons` answers health 200,
    is not syncing and has a head slot past the first one read here (the chain moves again); None then,
    else what was still wrong at the timeout."""
    deadline = time.monotonic() + timeout
    first: dict[str, BeaconState] = {}
    while True:
        problem = check()
        if problem is None:
            problems = []
            for url in beacons:
                state = parse_beacon(shell(beacon_probe(url)).splitlines())
                if state.head_slot is not None:
                    first.setdefault(url, state)
                problems += beacon_problems(url, first.get(url), state)
            problem = "; ".join(problems) or None
        if problem is None:
            return None
        if time.monotonic() > deadline:
            return f"{problem} after {timeout:.0f} s"
        time.sleep(interval)


def health_gate(
    ssh: SshPlan, node: NodePlan, version: str, timeout: float = HEALTH_TIMEOUT_S, beacons: tuple[str, ...] = ()
) -> str | None:
    """None when the node is healthy on `version` within the timeout, and so are the beacon nodes at
    `beacons` (see gate); otherwise what was wrong."""
    if node.health is None or node.rpc_url is None:
        return f"{node.client} has no JSON-RPC health check: cannot gate an upgrade on it"
    health, rpc_url = node.health, node.rpc_url
    expect = {"chain_id": hex(node.chain_id), "ok": "ok"}.get(health.expect)
    client = connect(ssh)

    def shell(command: str) -> str:
        return run(client, command)[1]

    def check() -> str | None:
        state, _, link = (
            shell(_probe(node).split("; ")[0] + "; readlink " + shlex.quote(node.link)).strip().partition("\n")
        )
        answer = shell(rpc_command(rpc_url, health.method))
        try:
            result = json.loads(answer).get("result")
        except (ValueError, AttributeError):
            result = None
        if link.rsplit("/", 1)[-1] != version:
            return f"current -> {link or 'nothing'}, expected {version}"
        if state != "active":
            return f"unit {state}"
        if result is None or (expect is not None and result != expect):
            return f"{health.method} answered {answer.strip()[:120] or 'nothing'}, expected {expect}"
        return None

    try:
        return gate(check, shell, beacons, timeout)
    finally:
        client.close()


def record(inventory_path: Path, host: str, key: str, version: str | None) -> None:
    """Write (or clear) a host's rolled-out version in the rollout file, atomically."""
    hosts = load_rollout(inventory_path)
    entry = hosts.setdefault(host, {})
    if version is None:
        entry.pop(key, None)
    else:
        entry[key] = version
    hosts = {h: v for h, v in hosts.items() if v}
    file = rollout_path(inventory_path)
    tmp = file.with_suffix(".tmp")
    header = "# Written by `mevfleet upgrade` / `mevfleet rollback`: the node versions rolled out per host.\n"
    tmp.write_text(header + yaml.safe_dump({"hosts": hosts}, sort_keys=True))
    os.replace(tmp, file)


class StepResult(BaseModel):
    host: str
    ok: bool
    seconds: float
    detail: str = ""


def _deploy_one(inventory_path: Path, host: str, out: Printer) -> tuple[Inventory, FleetPlan, str | None]:
    from ..engine.run import run_deploy

    inventory = load_inventory(inventory_path)
    fleet = compile_plan(inventory)
    problems = unpinned_artifacts(fleet, [host])
    if problems:
        return inventory, fleet, "; ".join(str(p) for p in problems)
    result = run_deploy(fleet, inventory, limit=[host], out=lambda _: None)
    return inventory, fleet, result.failed.get(host)


def roll(
    inventory_path: Path,
    chain: str,
    target: Callable[[NodePlan, SshPlan], str | None],
    out: Printer = print,
    timeout: float = HEALTH_TIMEOUT_S,
) -> list[StepResult]:
    """One host at a time: record the host's new version, deploy it, gate on health; at the first
    failure put that host back on the version it ran, gate again, and stop."""
    inventory = load_inventory(inventory_path)
    fleet = compile_plan(inventory)
    results: list[StepResult] = []
    for name, plan in fleet.hosts.items():
        node = next((n for n in plan.nodes if n.chain == chain and n.health), None)
        if node is None:
            continue
        key = f"{chain}.{node.service}"
        beacons = host_beacons(plan.nodes, chain)
        version = target(node, plan.ssh)
        if version is None or version == node.version:
            out(f"  {name}: {node.unit} already on {node.version}" if version else f"  {name}: nothing to do")
            continue
        before = load_rollout(inventory_path).get(name, {}).get(key)
        started = time.monotonic()
        out(f"  {name}: {node.unit} {node.version} -> {version}")
        record(inventory_path, name, key, version)
        _, new_fleet, error = _deploy_one(inventory_path, name, out)
        deployed = time.monotonic()
        if error is None:
            new_node = next(n for n in new_fleet.hosts[name].nodes if n.unit == node.unit)
            error = health_gate(new_fleet.hosts[name].ssh, new_node, version, timeout, beacons)
        if error is None:
            results.append(StepResult(host=name, ok=True, seconds=time.monotonic() - started))
            gated = f"the node and {len(beacons)} beacon node(s)" if beacons else "the node"
            out(
                f"  {name}: healthy on {version} ({results[-1].seconds:.1f} s: deploy {deployed - started:.1f} s, "
                f"health gate on {gated} {time.monotonic() - deployed:.1f} s)"
            )
            continue
        out(f"  {name}: FAILED health gate: {error}; putting it back on {node.version}")
        record(inventory_path, name, key, before)
        _, _, back = _deploy_one(inventory_path, name, out)
        back = back or health_gate(plan.ssh, node, node.version, timeout, beacons)
        detail = error + ("" if back is None else f"; and back on {node.version} it is not healthy either: {back}")
        results.append(StepResult(host=name, ok=False, seconds=time.monotonic() - started, detail=detail))
        break
    return results


def upgrade(inventory_path: Path, chain: str, version: str, out: Printer = print, timeout: float = HEALTH_TIMEOUT_S):
    return roll(inventory_path, chain, lambda node, _: version, out, timeout)


def previous_version(node: NodePlan, ssh: SshPlan) -> str | None:
    client = connect(ssh)
    try:
        _, link = run(client, f"readlink {shlex.quote(node.previous_link)} || true")
    finally:
        client.close()
    return link.strip().rsplit("/", 1)[-1] or None


def rollback(inventory_path: Path, chain: str, out: Printer = print, timeout: float = HEALTH_TIMEOUT_S):
    """Back to the release `previous` points at on each host (already installed: a link switch)."""
    return roll(inventory_path, chain, previous_version, out, timeout)
