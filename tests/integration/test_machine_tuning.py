"""The tuning profile applied to this machine itself, live, then put back.

Test hosts are containers: kernel-global knobs (hugepages, net.core.* buffers, vm.*) cannot be set
there without changing the machine under them, so the deploy defers them. This test closes that gap:
it runs the real `apply_sysctls` operation through pyinfra's local connector against this machine,
checks the live values, and restores every previous value whatever happens.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.operations import run_ops
from pyinfra.context import ctx_host, ctx_state

from mevfleet.desired import ABSENT, LOCKED, Desired, deferred_sysctls
from mevfleet.engine.host import read_state
from mevfleet.engine.kernel import apply_sysctls
from mevfleet.inventory import parse_inventory
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.machine]

# A Solana + Ethereum host: the largest documented values of both chains. 16 huge pages (32 MiB), not
# the profile's 4 GiB: enough to prove the knob is applied without starving this 24 GiB machine.
INVENTORY = """
fleet:
  # A Solana host's agent needs its pools for the plan to compile (nothing here runs the agent).
  agent:
    chains:
      solana:
        solana: {sol_usd: 150, pools: [{kind: raydium_cpmm, address: 3yhvSRXkPLexUp9k4MvbnrBYU1NVqrYpLEYnwfUb3Eru}]}
hosts:
  machine: {chains: [ethereum, solana], hugepages: 16, owns_kernel: true}
"""


def _read(key: str) -> str | None:
    try:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


@pytest.fixture
def plan():
    if os.geteuid() != 0:
        pytest.skip("needs root to change kernel settings on this machine")
    if subprocess.run(["sh", "-c", "test -w /proc/sys/vm/swappiness"]).returncode != 0:
        pytest.skip("/proc/sys is read-only on this machine: it does not own its kernel settings")
    return compile_plan(parse_inventory(INVENTORY, "machine.yml")).hosts["machine"]


def test_tuning_profile_applies_live_and_restores(plan):
    before = {key: _read(key) for key in plan.sysctls()}
    state = State(inventory=Inventory(([("@local", {})], {})), config=Config())
    connect_all(state)
    (host,) = list(state.inventory)
    try:
        with ctx_state.use(state), ctx_host.use(host):
            current = read_state(Desired(plan))
            deferred = deferred_sysctls(plan, current)
            apply_sysctls(name="Apply sysctls live", plan=plan, current=current)
        run_ops(state)
        assert not state.failed_hosts, "applying sysctls on this machine failed"
        # The only acceptable deferrals on a machine that owns its kernel: the key does not exist here,
        # or an earlier boot locked a one-way knob (kernel.unprivileged_bpf_disabled=1) harder than planned.
        assert set(deferred.values()) <= {ABSENT, LOCKED}, deferred
        live = {key: _read(key) for key in plan.sysctls() if key not in deferred}
        wrong = {k: (v, plan.sysctls()[k]) for k, v in live.items() if v != plan.sysctls()[k]}
        assert not wrong, f"not in effect (live, planned): {wrong}"
        assert live["net.core.rmem_max"] == "134217728" and live["vm.max_map_count"] == "16777216"
    finally:
        for key, value in before.items():
            if value is not None and _read(key) != value:
                subprocess.run(["sysctl", "-q", "-w", f"{key}={value}"], check=False)
    restored = {key: _read(key) for key in before}
    assert restored == before, "a previous value was not restored"
