"""What each engine computes from a host's plan in one deploy (mevfleet.desired), for the devnet fleet's 9
hosts, without hosts: the same steps in the same order as engine/host.py (deploy_host, live_drift, --dry's
file_diffs) and ansible_engine (probe_script, host_vars), with the probe's answer taken as a devnet host's
(a container, /proc/sys read-only).

Side by side in the same run:
- baseline: every step computes from the plan afresh (a Desired per step), as the engines did before one
  Desired was handed through a host's run;
- now: one Desired per host per run, as the engines make it.

Prints the median CPU time per fleet (rounds interleaved), the ratio, and the template renders
(render.host_files) per host.
No Docker, no network. Usage: .venv/bin/python bench/desired.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from mevfleet import INVENTORY_DIR, desired, probe, render
from mevfleet.desired import PROBED, Desired
from mevfleet.inventory import load_inventory
from mevfleet.model import HostPlan
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts

FOUND = HostFacts(container=True, proc_sys_writable=False)


def pyinfra_steps(want: Callable[[], Desired], dry: bool) -> None:
    """engine/host.deploy_host (read_state, live_drift, files, removals), then --dry's file_diffs."""
    probe.script(**want().probe_args())  # deploy_host's read_state
    probe.script(**want().probe_args())  # live_drift's read_state
    want().expected(FOUND, None)
    want().files(FOUND)
    want().to_remove(set())
    if dry:
        probe.script(**want().probe_args())
        want().files(FOUND)


def ansible_steps(want: Callable[[], Desired]) -> None:
    """ansible_engine: probe_script before the probe play, host_vars after it."""
    want().expected(PROBED, None)
    probe.script(**want().probe_args())
    want().expected(FOUND, None)
    want().files(FOUND)
    want().to_remove(set())


def deploy(plans: list[HostPlan], steps: Callable[[Callable[[], Desired]], None], shared: bool) -> None:
    for plan in plans:
        if shared:
            one = Desired(plan)
            steps(lambda one=one: one)
        else:
            steps(lambda plan=plan: Desired(plan))


def renders_per_host(plans, steps, shared: bool) -> float:
    """render.host_files calls per host in one deploy."""
    real = render.host_files
    calls = 0

    def counted(plan, facts):
        nonlocal calls
        calls += 1
        return real(plan, facts)

    desired.host_files = counted
    try:
        deploy(plans, steps, shared)
    finally:
        desired.host_files = real
    return calls / len(plans)


def cpu_ms(plans, steps, shared: bool) -> float:
    """CPU time of one deploy's desired-state work (this process, single-threaded: the shared machine's
    other jobs wait in the run queue, not in this figure)."""
    started = time.process_time()
    deploy(plans, steps, shared)
    return (time.process_time() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    plans = list(compile_plan(load_inventory(INVENTORY_DIR / "devnet.yml")).hosts.values())
    for p in plans:  # templates compiled before anything is timed
        render.host_files(p, PROBED)
    engines = {
        "pyinfra": lambda want: pyinfra_steps(want, dry=False),
        "pyinfra --dry": lambda want: pyinfra_steps(want, dry=True),
        "ansible": ansible_steps,
    }
    print(f"devnet, {len(plans)} hosts, median CPU time of {args.rounds} deploys' desired-state work")
    for name, steps in engines.items():
        base, now = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same load
            base.append(cpu_ms(plans, steps, shared=False))
            now.append(cpu_ms(plans, steps, shared=True))
        base_ms, now_ms = statistics.median(base), statistics.median(now)
        print(
            f"  {name:14} baseline {base_ms:6.1f} ms ({renders_per_host(plans, steps, False):.0f} renders/host)   "
            f"now {now_ms:6.1f} ms ({renders_per_host(plans, steps, True):.0f} renders/host)   "
            f"now/baseline {now_ms / base_ms:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
