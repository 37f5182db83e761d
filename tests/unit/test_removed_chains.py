"""What the plan removes: a chain dropped from a host's inventory leaves no unit, drop-in, config or release
link behind (both engines run the same removal script), and never its data dir. The agent, monitoring and
control plane's removals: test_removed_concerns.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mevfleet.ansible_engine.handoff import read_probe
from mevfleet.desired import probe_args, removal_script, to_remove
from mevfleet.engine.facts import ManagedState
from mevfleet.inventory import parse_inventory
from mevfleet.model import HostPlan, RemovedUnit
from mevfleet.nodes import removal_paths, removals
from mevfleet.plan import compile_plan
from mevfleet.probe import script


def host(chains: str, fleet: str = "fleet: {nodes: devnet}\n") -> HostPlan:
    text = f"{fleet}hosts: {{n: {{chains: [{chains}], address: 10.0.0.5}}}}"
    return compile_plan(parse_inventory(text, "f.yml")).hosts["n"]


def removed(plan: HostPlan) -> dict[str, RemovedUnit]:
    return {r.unit: r for r in plan.remove}


def test_a_chain_dropped_from_the_inventory_is_in_the_plans_remove_part():
    before, after = host("optimism, bsc"), host("optimism")
    assert "bsc-anvil" not in removed(before)
    gone = removed(after)["bsc-anvil"]
    bsc = next(n for n in before.nodes if n.unit == "bsc-anvil")
    assert gone.unit_file == "/etc/systemd/system/bsc-anvil.service"
    assert gone.dropins == "/etc/systemd/system/bsc-anvil.service.d"
    assert gone.config_dir == bsc.config_dir
    assert gone.link_dir == bsc.link.rsplit("/", 1)[0]
    # The data dir, the service user and the shared release stay.
    assert not {bsc.data_dir, bsc.release_dir} & set(removal_paths(gone))
    assert any(u.name == bsc.user for u in before.users)


def test_nothing_planned_is_ever_removed():
    for plan in (host("optimism, bsc"), host("ethereum, base", "fleet: {nodes: mainnet}\n")):
        planned = {n.unit for n in plan.nodes} | {s.unit for s in plan.services}
        assert plan.remove and not planned & set(removed(plan))
        kept = {p for n in plan.nodes for p in (n.data_dir, n.config_dir, n.link, n.release_dir)}
        assert not kept & {p for r in plan.remove for p in removal_paths(r)}
        # Every other chain's units are listed (a host may have run any of them before).
        assert {"arbitrum-anvil", "arbitrum-nitro", "solana-agave", "solana-solana-standin"} <= set(removed(plan))


def test_a_client_the_chain_no_longer_runs_is_removed_too():
    """Switching Ethereum from its stand-in to the real devnet pair drops the stand-in's unit."""
    stand_in = host("ethereum")
    real = host("ethereum", "fleet: {nodes: devnet, real_clients: [ethereum]}\n")
    assert "ethereum-anvil" in {n.unit for n in stand_in.nodes}
    assert "ethereum-anvil" in removed(real) and "ethereum-ethereumjs" not in removed(real)
    assert "ethereum-ethereumjs" in removed(stand_in)


def test_the_probe_finds_what_is_left_and_both_engines_remove_only_that(tmp_path):
    """The one-command probe (run here by a real shell) reports the removal paths present; the pyinfra
    engine and the Ansible hand-off both act on exactly those units."""
    plan = host("optimism")
    left = removed(plan)["bsc-anvil"]
    (tmp_path / "etc").mkdir()
    moved = {p: str(tmp_path / "etc" / p.strip("/").replace("/", "_")) for p in removal_paths(left)}
    plan = plan.model_copy(
        update={
            "remove": tuple(
                r.model_copy(update={k: moved[v] for k, v in r.model_dump().items() if v in moved}) for r in plan.remove
            )
        }
    )
    probe = ManagedState()
    args = probe_args(plan)
    (tmp_path / "etc" / "etc_systemd_system_bsc-anvil.service").write_text("[Unit]\n")
    (tmp_path / "etc" / "opt_mevfleet_bsc-anvil").mkdir()
    command = probe.command(script(files=(), dirs=(), sysctls=(), globs=(), present=args["present"]))
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    state = probe.process(output.splitlines())
    assert [r.name for r in to_remove(plan, state.present)] == ["bsc-anvil"]
    # The Ansible engine reads the same probe output the same way.
    assert read_probe(plan, output).state.present == state.present


def test_the_removal_script_stops_disables_and_removes_but_keeps_data(tmp_path):
    """The script both engines run, executed by a real shell; systemctl is not available here (no systemd
    outside the test hosts), so a recorder stands in for it and the integration test runs the real one."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (bin_dir / "systemctl").chmod(0o755)
    unit = RemovedUnit(
        unit="bsc-anvil",
        unit_file=str(root / "bsc-anvil.service"),
        dropins=str(root / "bsc-anvil.service.d"),
        config_dir=str(root / "nodes" / "bsc-anvil"),
        link_dir=str(root / "opt" / "bsc-anvil"),
    )
    for path in (unit.dropins, unit.config_dir, unit.link_dir, str(root / "var" / "bsc")):
        Path(path).mkdir(parents=True)
    (root / "bsc-anvil.service").write_text("[Unit]\n")
    (root / "bsc-anvil.service.d" / "override.conf").write_text("[Service]\n")
    (root / "opt" / "bsc-anvil" / "current").symlink_to(root / "var")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    (removal,) = removals(host("optimism").model_copy(update={"remove": (unit,)}))
    assert removal.task == "bsc-anvil removed (no longer planned; data dir kept)"
    subprocess.run(["sh", "-c", removal_script(removal)], env=env, check=True)
    assert not any(Path(p).exists() or Path(p).is_symlink() for p in removal_paths(unit))
    assert (root / "var" / "bsc").is_dir()  # the data stays
    assert calls.read_text().splitlines() == [
        "disable --now bsc-anvil.service",
        "daemon-reload",
        "reset-failed bsc-anvil.service",
    ]
