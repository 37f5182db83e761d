"""One deploy renders each host's templates once per facts (mevfleet.desired.Desired): once as a container
(PROBED: what the probe reads, the planned paths and the removals, computed before the probe says what the
host is) and once with the facts the probe found (the files applied and drift's expected state), the same
render when those facts equal PROBED. Both engines' host steps are run here without hosts: the Ansible
engine's whole run with its two playbook runs answered in process, the pyinfra engine's deploy_host and
--dry's file_diffs with pyinfra's fact reads answered and its operations recorded instead of queued."""

from __future__ import annotations

from collections import Counter

import pytest

from mevfleet import INVENTORY_DIR, desired, render
from mevfleet.ansible_engine import run as ansible_run
from mevfleet.ansible_engine.handoff import Probe, Stage
from mevfleet.drift import parse
from mevfleet.engine import host as pyinfra_host
from mevfleet.engine import run as pyinfra_run
from mevfleet.engine import steps as pyinfra_steps
from mevfleet.engine.log import DeployLog
from mevfleet.engine.run import HostResult
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts

from .test_ansible_roles import converged

# The facts of a devnet host (a container whose /proc/sys is read-only): not PROBED, so two renders.
FOUND = HostFacts(container=True, proc_sys_writable=False)


@pytest.fixture(scope="module")
def devnet():
    inventory = load_inventory(INVENTORY_DIR / "devnet.yml")
    return inventory, compile_plan(inventory)


class Renders:
    """host_files calls per (host, facts), and template renders in and out of them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.host_files: Counter[tuple[str, HostFacts]] = Counter()
        self.templates = 0
        self.templates_in_host_files = 0
        real_render, real_host_files = render.render, render.host_files

        def counted_render(template: str, **context: object) -> str:
            self.templates += 1
            return real_render(template, **context)

        def counted_host_files(plan, facts):
            self.host_files[(plan.name, facts)] += 1
            before = self.templates
            files = real_host_files(plan, facts)
            self.templates_in_host_files += self.templates - before
            return files

        monkeypatch.setattr(render, "render", counted_render)
        monkeypatch.setattr(render, "host_files", counted_host_files)
        monkeypatch.setattr(desired, "host_files", counted_host_files)

    def assert_once_per_facts(self, hosts) -> None:
        assert self.host_files == Counter({(name, facts): 1 for name in hosts for facts in (desired.PROBED, FOUND)})
        # Every template rendered was rendered inside one of those: nothing renders beside them.
        assert self.templates == self.templates_in_host_files > 0


def test_the_ansible_engine_renders_each_host_once_per_facts(devnet, monkeypatch, tmp_path):
    inventory, plan = devnet
    monkeypatch.setenv("MEVFLEET_CA_DIR", str(tmp_path / "ca"))
    monkeypatch.setenv("MEVFLEET_LOG_DIR", str(tmp_path / "logs"))
    plays = []

    def play(playbook, stage, hosts, log, out, progress):
        plays.append(playbook)
        if playbook == "probe":
            return [
                {"host": h, "task": ansible_run.PROBE_TASK, "status": "ok", "stdout": "", "changed": False, "msg": ""}
                for h in hosts
            ]
        return []  # site.yml: nothing applied here

    monkeypatch.setattr(ansible_run, "_play", play)
    monkeypatch.setattr(ansible_run, "inventory_keys", lambda key, user: None)  # no devnet key on this machine
    monkeypatch.setattr(ansible_run, "read_probe", lambda p, output: Probe(state=converged(p), drift_lines=[]))
    renders = Renders(monkeypatch)
    names = list(plan.hosts)
    results = {n: HostResult(name=n) for n in names}
    (tmp_path / "stage").mkdir()
    log = DeployLog.open()
    try:
        ansible_run._run(plan, inventory, names, results, Stage(tmp_path / "stage"), log, lambda _: None)
    finally:
        log.close()
    assert plays == ["probe", "site"]
    assert all((tmp_path / "stage" / "host_vars" / f"{n}.yml").is_file() for n in names), results
    renders.assert_once_per_facts(names)


class _FactsOf:
    """pyinfra's `host` for one host: the one probe's answer, an empty file for any content asked."""

    def __init__(self, state):
        self.state = state

    def get_fact(self, fact, **kwargs):
        return self.state if fact is pyinfra_host.ManagedState else []


def test_the_pyinfra_engine_renders_each_host_once_per_facts(devnet, monkeypatch):
    _, plan = devnet
    queued: list[str] = []

    # Every step kind's interpreter records its kind instead of queueing operations.
    for kind in list(pyinfra_steps.INTERPRETERS):
        monkeypatch.setitem(pyinfra_steps.INTERPRETERS, kind, lambda step, run: queued.append(type(step).__name__))
    monkeypatch.setattr(pyinfra_host, "read_live", lambda expected: parse([]))
    renders = Renders(monkeypatch)
    for host_plan in plan.hosts.values():
        facts = _FactsOf(converged(host_plan))
        monkeypatch.setattr(pyinfra_host, "host", facts)
        monkeypatch.setattr(pyinfra_run, "host", facts)
        want = desired.Desired(host_plan)  # as engine/run._run makes it: one per host for the run
        pyinfra_host.deploy_host(want)
        pyinfra_run.file_diffs(want)  # --dry
    assert {"Files", "CheckedFiles", "WheelInstall", "Running", "SecretScript"} <= set(queued)
    renders.assert_once_per_facts(list(plan.hosts))


def test_one_off_reads_render_once_each(devnet, monkeypatch):
    """probe_args alone (verify, the CLI) renders once: its planned paths and removals share the render."""
    _, plan = devnet
    renders = Renders(monkeypatch)
    host_plan = plan.hosts["mon1"]
    desired.probe_args(host_plan)
    assert renders.host_files == Counter({("mon1", desired.PROBED): 1})
