"""The Ansible engine (roles/) against the pyinfra engine on fresh test hosts: one node host and the
monitoring host are deployed by pyinfra and their managed files read back; the same hosts are then made
again from scratch (same names, addresses and plan) and deployed by `mevfleet deploy --engine ansible`.
Every managed file must be byte-identical (sha256 of the content), with the same mode, owner and group,
on both; the verify suite passes on the Ansible hosts; a second Ansible run changes nothing.

The hosts share one network and subnet of their own (nothing else uses them) and are removed at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import docker.errors
import pytest
import yaml

from mevfleet import REPO_ROOT, probe
from mevfleet.desired import DEFERRED_REPORT
from mevfleet.devnet import Harness, TestHost
from mevfleet.devnet.fleet import isolated_devnet
from mevfleet.engine.files import sha256
from mevfleet.engine.run import run_deploy
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files
from mevfleet.sshclient import key_file, openssh_options

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ansible")]

NETWORK = "mevfleet-ansible"
SUBNET = "172.30.143.0/24"
HOSTS = ("ans-mon1", "ans-arb1")
# Ansible is several times slower than pyinfra (bench/provision.py): two fresh deploys and a no-op run.
SLOW = pytest.mark.timeout(2400)


def mevfleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mevfleet.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800
    )


def managed_files(plan, name: str) -> dict[str, tuple[str, str, str, str] | None]:
    """(sha256, mode, owner, group) of every file mevfleet manages on the host, read over SSH in one command
    (the OpenSSH client, as the plan's SshPlan says: a reader of its own, not the engines')."""
    spec = plan.hosts[name].ssh
    paths = tuple(sorted({f.path for f in host_files(plan.hosts[name], HostFacts(container=True))} | {DEFERRED_REPORT}))
    script = probe.script(files=paths, dirs=(), sysctls=(), globs=())
    ssh = [
        "ssh",
        "-i",
        str(key_file(spec)),
        "-o",
        "IdentitiesOnly=yes",
        *openssh_options(spec),  # the fleet's known_hosts file, strictly (as every client reads it)
        "-o",
        "BatchMode=yes",
        "-p",
        str(spec.port),
        f"{spec.user}@{spec.address}",
        "sh",
        "-s",
    ]
    run = subprocess.run(ssh, input=script, capture_output=True, text=True, timeout=60, check=True)
    state = probe.parse(run.stdout.splitlines())
    return {
        path: None if have is None else (str(have.sha256), have.mode, have.owner, have.group)
        for path, have in state.files.items()
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker engine unreachable ({exc}); `make test` starts it through deploy/bootstrap.sh")
    state_dir = tmp_path_factory.mktemp("ansible")
    path = isolated_devnet("ans", NETWORK, SUBNET, state_dir)
    doc = yaml.safe_load(path.read_text())
    doc["hosts"] = {name: spec for name, spec in doc["hosts"].items() if name in HOSTS}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    inventory = load_inventory(path)
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state_dir)
    harness.down()
    yield path, inventory, compile_plan(inventory), harness
    harness.down()


@pytest.fixture(scope="module")
def both(fleet):
    """Deploy with pyinfra, read the files; recreate the hosts fresh, deploy with Ansible, read them again."""
    path, inventory, plan, harness = fleet
    hosts = [TestHost(h.name, h.address) for h in inventory.hosts.values()]
    harness.up(hosts)
    first = run_deploy(plan, inventory, out=lambda _: None)
    assert not first.failed, first.failed
    pyinfra = {name: managed_files(plan, name) for name in HOSTS}
    harness.down()
    harness.up(hosts)
    run = mevfleet("deploy", "--engine", "ansible", "-i", str(path))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    ansible = {name: managed_files(plan, name) for name in HOSTS}
    return pyinfra, ansible, run.stdout


@SLOW
def test_every_managed_file_is_byte_identical_to_pyinfras(both, fleet):
    pyinfra, ansible, _ = both
    plan = fleet[2]
    for name in HOSTS:
        assert set(ansible[name]) == set(pyinfra[name])
        missing = sorted(p for p, have in ansible[name].items() if have is None and pyinfra[name][p] is not None)
        assert missing == [], f"{name}: Ansible left out {missing}"
        differ = {p: (pyinfra[name][p], have) for p, have in ansible[name].items() if have != pyinfra[name][p]}
        assert differ == {}, f"{name}: (pyinfra, ansible) differ for {json.dumps(differ, indent=1)}"
        # Both wrote what the plan renders (a container host), content and ownership.
        for f in host_files(plan.hosts[name], HostFacts(container=True, proc_sys_writable=False)):
            assert ansible[name][f.path] == (sha256(f.content), f.mode, f.owner, f.group), f.path
    # The comparison covers every concern's files, the monitoring host's checked configs and the node's.
    assert len(pyinfra["ans-mon1"]) > 50 and "/etc/prometheus/prometheus.yml" in pyinfra["ans-mon1"]
    assert "/etc/systemd/system/mevagent.service" in pyinfra["ans-arb1"]


@SLOW
def test_verify_passes_on_the_ansible_hosts(both, fleet):
    run = mevfleet("verify", "-i", str(fleet[0]), "-q", "-p", "no:randomly")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1] and "failed" not in run.stdout.splitlines()[-1]


@SLOW
def test_second_ansible_run_changes_nothing(both, fleet):
    first = both[2]
    assert all(f"{name}: " in first for name in HOSTS)
    run = mevfleet("deploy", "--engine", "ansible", "-i", str(fleet[0]))
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for name in HOSTS:
        line = next(line for line in run.stdout.splitlines() if line.startswith(f"{name}: "))
        assert " 0 changed" in line, run.stdout
