"""Provisioning benchmark: first deploy and no-op re-run of the 9-host devnet fleet over SSH.

Prints wall time and operations per host, then a side-by-side ratio in the same run on the same hosts:
the no-op check of every managed file through mevfleet's one-command probe against pyinfra's stock
`files.put` per file (one fact round trip per file), the way a plain pyinfra deploy would manage them.

Then the two engines side by side (unless --skip-engines): the 9-host devnet made fresh and deployed by
pyinfra (first apply, no-op re-run), made fresh again and deployed by Ansible (`--engine ansible`: first
apply, no-op re-run), with the ratios Ansible / pyinfra. `--engine-hosts bae-mon1,bae-arb1` compares on a
subset (the monitoring host and one node host: minutes instead of tens of minutes on a 2-core machine).

Runs on fleet copies of its own (network mevfleet-bench, 172.30.91.0/24; mevfleet-bench-engines,
172.30.144.0/24) and removes them afterwards.
Usage: .venv/bin/python bench/provision.py [--keep] [--skip-engines] [--engines-only] [--engine-hosts H,H]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from io import StringIO
from pathlib import Path

import yaml
from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_host, ctx_state
from pyinfra.operations import files

from mevfleet.ansible_engine.run import run_ansible_deploy
from mevfleet.desired import Desired
from mevfleet.devnet import Harness, TestHost
from mevfleet.devnet.fleet import isolated_devnet
from mevfleet.engine.files import ensure_files
from mevfleet.engine.host import read_state
from mevfleet.engine.run import pyinfra_inventory, run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

NETWORK, SUBNET = "mevfleet-bench", "172.30.91.0/24"
ENGINES_NETWORK, ENGINES_SUBNET = "mevfleet-bench-engines", "172.30.144.0/24"


def _files_noop(plan, stock: bool) -> float:
    """Seconds to check (and find unchanged) every managed file on every host, one way or the other."""
    started = time.monotonic()
    state = State(inventory=pyinfra_inventory(plan, list(plan.hosts)), config=Config())
    connect_all(state)
    with ctx_state.use(state):
        for host in state.inventory.get_active_hosts():
            with ctx_host.use(host):
                host_plan = plan.hosts[host.name]
                if stock:
                    facts = HostFacts(container=True, proc_sys_writable=False)
                    for f in host_files(host_plan, facts):
                        files.put(
                            name=f.path, src=StringIO(f.content), dest=f.path, mode=f.mode, user=f.owner, group=f.group
                        )
                else:
                    current = read_state(Desired(host_plan))
                    facts = HostFacts(container=current.container, proc_sys_writable=current.proc_sys_writable)
                    ensure_files(name="files", files=host_files(host_plan, facts), current=current)
    run_ops(state, no_wait=True)
    changed = sum(
        state.get_op_data_for_host(h, op).operation_meta.did_change()
        for h in state.inventory.get_active_hosts()
        for op in h.op_hash_order
    )
    disconnect_all(state)
    assert changed == 0, f"the no-op comparison changed {changed} operations: the fleet was not converged"
    return time.monotonic() - started


def _engine_runs(deploy, plan, inventory, harness, hosts) -> tuple[float, float, int]:
    """Fresh hosts, first apply, then a no-op re-run: (first s, no-op s, operations changed by the no-op)."""
    harness.down()
    harness.up(hosts)
    first = deploy(plan, inventory, out=lambda _: None)
    assert not first.failed, first.failed
    noop = deploy(plan, inventory, out=lambda _: None)
    assert not noop.failed, noop.failed
    return first.seconds, noop.seconds, sum(len(h.changed) for h in noop.hosts.values())


def compare_engines(keep: bool, only: tuple[str, ...] = ()) -> None:
    """Both engines on the same fresh hosts: every devnet host, or only the named ones."""
    state_dir = Path(tempfile.mkdtemp(prefix="mevfleet-bench-engines-"))
    path = isolated_devnet("bae", ENGINES_NETWORK, ENGINES_SUBNET, state_dir)
    doc = yaml.safe_load(path.read_text())
    if only:
        unknown = sorted(set(only) - set(doc["hosts"]))
        if unknown:
            raise SystemExit(f"--engine-hosts: no such host in the bench fleet: {', '.join(unknown)}")
        doc["hosts"] = {name: spec for name, spec in doc["hosts"].items() if name in only}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inventory = load_inventory(path)
    plan = compile_plan(inventory)
    harness = Harness(network=ENGINES_NETWORK, subnet=ENGINES_SUBNET, state_dir=state_dir)
    hosts = [TestHost(h.name, h.address) for h in inventory.hosts.values()]
    try:
        pyinfra = _engine_runs(run_deploy, plan, inventory, harness, hosts)
        ansible = _engine_runs(run_ansible_deploy, plan, inventory, harness, hosts)
    finally:
        if not keep:
            harness.down()
    names = ", ".join(h.name for h in hosts)
    print(f"\nengines side by side, {len(hosts)} fresh hosts ({names}), same plan, same machine:")
    print(f"{'':28} {'pyinfra':>9} {'ansible':>9} {'ansible/pyinfra':>16}")
    print(f"{'first apply (s)':28} {pyinfra[0]:9.1f} {ansible[0]:9.1f} {ansible[0] / pyinfra[0]:15.1f}x")
    print(f"{'no-op re-run (s)':28} {pyinfra[1]:9.1f} {ansible[1]:9.1f} {ansible[1] / pyinfra[1]:15.1f}x")
    print(f"{'changed by the no-op':28} {pyinfra[2]:9d} {ansible[2]:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the bench fleet running")
    parser.add_argument("--repeat", type=int, default=3, help="no-op repetitions per measurement")
    parser.add_argument("--skip-engines", action="store_true", help="leave out pyinfra vs Ansible")
    parser.add_argument("--engines-only", action="store_true", help="only pyinfra vs Ansible")
    parser.add_argument(
        "--engine-hosts", default="", help="comma-separated bench hosts for pyinfra vs Ansible (default: all 9)"
    )
    args = parser.parse_args()
    if not args.engines_only:
        fleet_figures(args)
    if not args.skip_engines:
        compare_engines(args.keep, tuple(h for h in args.engine_hosts.split(",") if h))


def fleet_figures(args: argparse.Namespace) -> None:

    state_dir = Path(tempfile.mkdtemp(prefix="mevfleet-bench-"))
    inventory = load_inventory(isolated_devnet("bench", NETWORK, SUBNET, state_dir))
    plan = compile_plan(inventory)
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state_dir)
    harness.down()
    try:
        t = time.monotonic()
        harness.up([TestHost(h.name, h.address) for h in inventory.hosts.values()])
        print(f"test hosts up: {len(plan.hosts)} in {time.monotonic() - t:.1f} s")

        first = run_deploy(plan, inventory, out=lambda _: None)
        assert not first.failed, first.failed
        noops = []
        for _ in range(args.repeat):
            result = run_deploy(plan, inventory, out=lambda _: None)
            assert not result.failed and not any(h.changed for h in result.hosts.values()), "not idempotent"
            noops.append(result)

        print(f"\n{'host':12} {'ops':>4} {'changed 1st':>11} {'changed 2nd':>11}")
        for name, host in first.hosts.items():
            print(f"{name:12} {len(host.ops):4} {len(host.changed):11} {len(noops[0].hosts[name].changed):11}")
        noop_s = statistics.median(r.seconds for r in noops)
        print(f"\nfirst deploy, {len(plan.hosts)} hosts: {first.seconds:.1f} s")
        print(f"no-op re-run, {len(plan.hosts)} hosts: {noop_s:.1f} s (median of {args.repeat}; target < 15 s)")

        managed = len(host_files(next(iter(plan.hosts.values())), HostFacts(container=True)))
        probe = statistics.median(_files_noop(plan, stock=False) for _ in range(args.repeat))
        stock = statistics.median(_files_noop(plan, stock=True) for _ in range(args.repeat))
        print(f"\nno-op check of ~{managed} managed files per host on {len(plan.hosts)} hosts (same run, same hosts):")
        print(f"  pyinfra files.put per file (baseline): {stock:.2f} s")
        print(f"  mevfleet one-command probe:            {probe:.2f} s")
        print(f"  ratio baseline / mevfleet:             {stock / probe:.1f}x")
    finally:
        if not args.keep:
            harness.down()


if __name__ == "__main__":
    main()
