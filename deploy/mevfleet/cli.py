"""mevfleet: validate, plan, deploy and verify a fleet; run the local devnet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from . import INVENTORY_DIR, REPO_ROOT
from .errors import InventoryError
from .inventory import Inventory
from .model import FleetPlan, HostPlan
from .nodes.planning import unpinned_artifacts
from .validate import check_fleet

DEFAULT_INVENTORY = INVENTORY_DIR / "devnet.yml"
inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_INVENTORY,
    show_default=True,
    help="Inventory YAML file.",
)


def _load(path: Path) -> tuple[Inventory, FleetPlan]:
    """Validate before anything is touched: any problem exits with status 2 and names file, host, field."""
    try:
        return check_fleet(path)
    except InventoryError as exc:
        click.secho(str(exc), fg="red", err=True)
        sys.exit(2)


def _check_limit(plan: FleetPlan, limit: tuple[str, ...]) -> list[str] | None:
    unknown = [h for h in limit if h not in plan.hosts]
    if unknown:
        raise click.BadParameter(f"unknown host(s): {', '.join(unknown)}", param_hint="--limit")
    return list(limit) or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Provision and verify a fleet of tuned, firewalled chain-node hosts.

    Without -i, commands act on the embedded default: the local devnet fleet (inventory/devnet.yml).
    """


@main.command()
@inventory_option
def validate(inventory_path: Path) -> None:
    """Check an inventory and compile its host plans; touch no host."""
    _, plan = _load(inventory_path)
    chains = sorted({c for h in plan.hosts.values() for c in h.chains})
    click.echo(f"{inventory_path}: OK, {len(plan.hosts)} hosts, chains: {', '.join(chains) or 'none'}")
    # A valid fleet may still name releases nobody has checked yet: say so; `deploy` refuses them.
    unpinned = unpinned_artifacts(plan)
    if unpinned:
        click.secho(f"not deployable until {len(unpinned)} artifact(s) are pinned:", fg="yellow")
        for problem in unpinned:
            click.secho(f"  - {problem}", fg="yellow")


def _summary(host: HostPlan) -> str:
    ports = {}
    for p in host.ports():
        ports.setdefault(p.exposure, []).append(f"{p.port}" + (f"-{p.port_end}" if p.port_end else ""))
    lines = [
        f"{host.name} ({host.address}) roles={','.join(host.roles) or 'node'} chains={','.join(host.chains) or '-'}",
        f"  services: {', '.join(s.unit for s in host.services)}",
        "  ports: "
        + "; ".join(f"{e} {','.join(sorted(set(v), key=lambda x: int(x.split('-')[0])))}" for e, v in ports.items()),
        f"  limits: nofile={host.nofile} memlock={host.memlock_bytes}B  hugepages={host.hugepages} "
        f"thp={host.thp} governor={host.cpu_governor}",
        "  cpu: "
        + (
            f"node {host.cpu.node_cores}, agent {host.cpu.agent_cores}" + (" (shared)" if host.cpu.shared else "")
            if host.cpu
            else "unknown core count: no pinning"
        ),
        f"  sysctl.d: {', '.join(Path(f.path).name for f in host.sysctl_files)}",
        f"  time: {', '.join(host.time.servers) or 'local clock'}"
        + (f"; serves {', '.join(host.time.serve_networks)}" if host.time.serve_networks else ""),
    ]
    for node in host.nodes:
        where = node.rpc_url or "no RPC"
        lines.append(
            f"  node {node.unit}: {node.client} {node.version} ({node.artifact.pinned_by} pin"
            + ("" if node.artifact.sha256 or node.artifact.digest else ", UNPINNED")
            + f"), rpc {where}"
            + (f", ipc {node.ipc}" if node.ipc else "")
            + ("" if node.start else "; not started: " + (node.skip_reason or ""))
        )
    if host.agent:
        modes = ", ".join(f"{c.chain} {'LIVE' if c.live else 'dry-run'}" for c in host.agent.chains)
        lines.append(
            f"  agent {host.agent.version}: {modes}; api {host.agent.api_bind}:{host.agent.api_port}, "
            f"metrics {host.agent.metrics_bind}:{host.agent.metrics_port}, cores {host.agent.cpu_affinity or 'any'}"
        )
    if host.scrape_targets:
        lines.append(f"  scrape targets: {len(host.scrape_targets)}")
    return "\n".join(lines)


@main.command()
@inventory_option
@click.option("--host", "hosts", multiple=True, help="Only this host (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="The full resolved plan as JSON.")
def plan(inventory_path: Path, hosts: tuple[str, ...], as_json: bool) -> None:
    """Show the resolved host plan of every host (what deploy will make true)."""
    _, fleet = _load(inventory_path)
    names = _check_limit(fleet, hosts) or list(fleet.hosts)
    if as_json:
        selected = FleetPlan(inventory=fleet.inventory, hosts={n: fleet.hosts[n] for n in names})
        click.echo(selected.model_dump_json(indent=2))
        return
    for name in names:
        click.echo(_summary(fleet.hosts[name]))


@main.command()
@inventory_option
@click.option("--limit", multiple=True, help="Only this host (repeatable).")
@click.option("--dry", is_flag=True, help="Connect and show what would change; change nothing.")
@click.option(
    "--engine",
    type=click.Choice(["pyinfra", "ansible"]),
    default="pyinfra",
    show_default=True,
    help="Which engine interprets the host plan (ansible: the roles in roles/, docs/deploy.md).",
)
def deploy(inventory_path: Path, limit: tuple[str, ...], dry: bool, engine: str) -> None:
    """Make every host match its plan (idempotent: a second run changes nothing)."""
    from .engine.run import run_deploy

    if dry and engine == "ansible":
        raise click.UsageError("--dry shows the pyinfra engine's diffs; run it without --engine ansible")
    inventory, fleet = _load(inventory_path)
    names = _check_limit(fleet, limit)
    _refuse_unpinned(fleet, names)
    click.echo(f"{'Checking' if dry else 'Deploying'} {len(names or fleet.hosts)} host(s) from {inventory_path}")
    if engine == "ansible":
        from .ansible_engine.run import run_ansible_deploy

        result = run_ansible_deploy(fleet, inventory, limit=names, out=click.echo)
    else:
        result = run_deploy(fleet, inventory, limit=names, dry=dry, out=click.echo)
    click.echo("")
    verb = "would change" if dry else "changed"
    for name, host in result.hosts.items():
        if host.error:
            click.secho(f"{name}: FAILED: {host.error}", fg="red")
            continue
        deferred = host.deferred.get("sysctls", {})
        click.echo(
            f"{name}: {len(host.ops)} operations, {len(host.changed)} {verb}"
            # Name the changes when they are few (a drift fix); a first deploy changes nearly everything.
            + (f" ({', '.join(host.changed)})" if 0 < len(host.changed) <= 5 else "")
            + (f"; {len(deferred)} sysctls deferred" if deferred else "")
        )
        for drift in host.drift:
            click.echo(f"  live drift {'found' if dry else 'repaired'}: {drift}")
    for name, host in result.hosts.items():
        for diff in host.diffs:
            click.echo(f"--- {name}\n{diff.rstrip()}")
    if any(h.deferred.get("sysctls") for h in result.hosts.values()):
        reasons = sorted({r for h in result.hosts.values() for r in h.deferred.get("sysctls", {}).values()})
        click.echo("deferred sysctls are written to /etc/sysctl.d but not applied live: " + "; ".join(reasons))
        click.echo("  (per host and key: /var/lib/mevfleet/deferred.json)")
    click.echo(f"{len(result.hosts)} host(s) in {result.seconds:.1f} s")
    if result.failed:
        click.secho(f"failed: {', '.join(result.failed)} (full output: {result.log})", fg="red", err=True)
        sys.exit(1)


def _refuse_unpinned(fleet: FleetPlan, names: list[str] | None) -> None:
    unpinned = unpinned_artifacts(fleet, names)
    if unpinned:
        click.secho("refusing to deploy unpinned artifacts (no host was touched):", fg="red", err=True)
        for problem in unpinned:
            click.secho(f"  - {problem}", fg="red", err=True)
        sys.exit(2)


@main.command()
@inventory_option
@click.option("--limit", multiple=True, help="Only this host (repeatable).")
def status(inventory_path: Path, limit: tuple[str, ...]) -> None:
    """Per host and chain: unit state, head block, head lag (vs the fleet's highest), peers, version.

    Exits 1 when a node the plan starts is not active or does not answer its head.
    """
    from .nodes.ops import fleet_status

    _, fleet = _load(inventory_path)
    rows = fleet_status(fleet, _check_limit(fleet, limit))
    # HEAD is a block number, or a slot for beacon nodes (LAG: their own sync distance); FINAL is the
    # finalized epoch; KIND says whether the node is a real client or a devnet simulator (anvil).
    header = (
        f"{'HOST':14} {'CHAIN':10} {'UNIT':28} {'STATE':12} {'HEAD':>9} {'LAG':>5} {'PEERS':>5} {'FINAL':>5} "
        f"{'KIND':9} VERSION"
    )
    click.echo(header)
    for r in rows:
        version = r.version or "-"
        if r.version and r.version != r.planned:
            version += f" (planned {r.planned})"
        head = _dash(r.head) if r.head_kind != "slot" or r.head is None else f"s{r.head}"
        click.echo(
            f"{r.host:14} {r.chain:10} {r.unit:28} {r.state:12} {head:>9} {_dash(r.lag):>5} "
            f"{_dash(r.peers):>5} {_dash(r.finalized_epoch):>5} {_kind(r):9} {version}"
            + (f"  {r.note}" if r.note else "")
        )
    sick = [r for r in rows if not r.healthy]
    control = _control_status(fleet, _check_limit(fleet, limit))
    if sick or (control is not None and not control.healthy):
        names = ", ".join(f"{r.host}/{r.unit} ({r.state})" for r in sick) or "-"
        click.secho(f"{len(sick)} node(s) or agent(s) not answering: {names}", fg="red", err=True)
        sys.exit(1)
    started = sum(r.expected for r in rows if not r.agent)
    nodes = sum(not r.agent for r in rows)
    agents = sum(r.agent for r in rows)
    click.echo(
        f"all {started} started node(s) and {agents} agent(s) answer; {nodes - started} rendered but not started"
        " (see plan)"
    )


CONTROL_SETTLE_S = 30.0


def _control_status(fleet: FleetPlan, limit: list[str] | None):
    """The control plane's line and one per agent: heartbeat age and lease as the control plane sees them."""
    from .control import control_status

    host = next((p for p in fleet.hosts.values() if p.control is not None), None)
    if host is None or (limit and host.name not in limit):
        return None
    # Right after a deploy the agents may not have had a lease round yet (every TTL/3): allow a few.
    deadline = time.monotonic() + CONTROL_SETTLE_S
    status = control_status(host)
    while not status.healthy and time.monotonic() < deadline:
        time.sleep(2)
        status = control_status(host)
    click.echo(f"control plane on {status.host}: mevcontrol {status.state}, postgresql {status.postgres}")
    for a in status.agents:
        age = "-" if a.heartbeat_age_s is None else f"{a.heartbeat_age_s:.1f} s"
        lease = "-" if a.lease_expires_in_s is None else f"{a.lease_expires_in_s:.1f} s"
        ok = "ok" if a.connected else "NOT CONNECTED"
        click.echo(f"  agent {a.agent:14} heartbeat {age:>8} ago, lease {lease:>8} left  {ok}")
    return status


def _kind(row) -> str:
    return "agent" if row.agent else "simulator" if row.simulator else "real"


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _report(results, verb: str) -> None:
    for r in results:
        click.echo(
            f"{r.host}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s" + (f": {r.detail}" if r.detail else "")
        )
    failed = [r for r in results if not r.ok]
    if failed:
        click.secho(f"{verb} stopped at {failed[0].host}; hosts after it were not touched", fg="red", err=True)
        sys.exit(1)
    click.echo(f"{verb}: {len(results)} host(s) done")


@main.command()
@inventory_option
@click.argument("chain")
@click.option("--to", "version", required=True, help="Client version (pinned in the catalog or the inventory).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds each host has to pass its health gate.")
def upgrade(inventory_path: Path, chain: str, version: str, timeout: float) -> None:
    """Roll CHAIN's node to VERSION one host at a time; stop at the first host that fails its health gate.

    The health gate: unit active, `current` on VERSION, RPC answering with the chain's id, and the host's
    beacon nodes of the chain (if any) healthy, not syncing, head slot advancing. A host that fails is put
    back on its previous version. Versions rolled out are recorded per host in <inventory>.rollout.yml, so
    later deploys keep them.
    """
    from .nodes.ops import upgrade as run_upgrade

    _, fleet = _load(inventory_path)
    if not any(n.chain == chain for h in fleet.hosts.values() for n in h.nodes):
        raise click.BadParameter(f"no host runs a node of chain {chain!r}", param_hint="CHAIN")
    click.echo(f"Upgrading {chain} to {version}, one host at a time")
    _report(run_upgrade(inventory_path, chain, version, out=click.echo, timeout=timeout), "upgrade")


@main.command()
@inventory_option
@click.argument("chain")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds each host has to pass its health gate.")
def rollback(inventory_path: Path, chain: str, timeout: float) -> None:
    """Switch CHAIN's node back to the release `previous` points at, one host at a time, health-gated."""
    from .nodes.ops import rollback as run_rollback

    _, fleet = _load(inventory_path)
    if not any(n.chain == chain for h in fleet.hosts.values() for n in h.nodes):
        raise click.BadParameter(f"no host runs a node of chain {chain!r}", param_hint="CHAIN")
    click.echo(f"Rolling {chain} back, one host at a time")
    _report(run_rollback(inventory_path, chain, out=click.echo, timeout=timeout), "rollback")


@main.command(context_settings={"ignore_unknown_options": True})
@inventory_option
@click.option("--limit", multiple=True, help="Only this host (repeatable).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def verify(inventory_path: Path, limit: tuple[str, ...], pytest_args: tuple[str, ...]) -> None:
    """Run the testinfra suite (tests/verify) against every host of an inventory, over SSH.

    Extra arguments go to pytest, e.g. `mevfleet verify -i inv.yml -x -k firewall`.
    """
    _, fleet = _load(inventory_path)
    _check_limit(fleet, limit)
    args = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO_ROOT / "tests" / "verify"),
        "-p",
        "no:cacheprovider",
        f"--inventory={inventory_path}",
        *(f"--limit={h}" for h in limit),
        *pytest_args,
    ]
    sys.exit(subprocess.call(args, cwd=REPO_ROOT))


@main.group()
def devnet() -> None:
    """The local devnet: test hosts as systemd containers on a Docker network of their own."""


def _harness(inventory: Inventory):
    from .devnet.harness import Harness, TestHost

    if inventory.devnet is None:
        raise click.UsageError(f"{inventory.path} has no 'devnet' section: it is not a devnet inventory")
    harness = Harness(network=inventory.devnet.network, subnet=inventory.devnet.subnet)
    hosts = [TestHost(name=h.name, address=h.address) for h in inventory.hosts.values()]
    return harness, hosts


@devnet.command("up")
@inventory_option
def devnet_up(inventory_path: Path) -> None:
    """Build the test-host image if needed and start every host of the devnet inventory."""
    inventory, _ = _load(inventory_path)
    harness, hosts = _harness(inventory)
    click.echo(f"Starting {len(hosts)} test hosts on {harness.network} ({harness.subnet})")
    harness.up(hosts)
    click.echo(f"{len(hosts)} test hosts up; SSH key {harness.key_path}")


@devnet.command("down")
@inventory_option
def devnet_down(inventory_path: Path) -> None:
    """Remove every devnet test host and the devnet network."""
    inventory, _ = _load(inventory_path)
    harness, _ = _harness(inventory)
    harness.down()
    click.echo("devnet removed")


@devnet.command("status")
@inventory_option
def devnet_status(inventory_path: Path) -> None:
    """Container, systemd and SSH state of every devnet host."""
    inventory, _ = _load(inventory_path)
    harness, _ = _harness(inventory)
    rows = harness.status()
    if not rows:
        click.echo("no devnet hosts")
    for s in rows:
        click.echo(
            f"{s.name:8} {s.address:15} {s.container_state:9} systemd={s.systemd_state or '-':9} "
            f"ssh={'yes' if s.ssh_reachable else 'no'}"
            + (f" failed units: {', '.join(s.failed_units)}" if s.failed_units else "")
        )


def _register_cloud() -> None:
    from .cloud.commands import register

    register(main)


_register_cloud()


def _register_ctl() -> None:
    from mevfleet.ctl import ctl  # the fleet control plane's operator URLs (docs/control-plane.md)

    main.add_command(ctl)


_register_ctl()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
