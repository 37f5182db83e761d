"""The testinfra suite operators run against a fleet: `mevfleet verify -i inventory/production.yml`.

It reads the host plan to know what to expect on every host and reaches hosts over SSH exactly as the
deploy does: the plan's SshPlan (address, user, port, key, host-key rule) through mevfleet.sshclient.
"""

from __future__ import annotations

import pytest
import testinfra

from mevfleet.inventory import Inventory, load_inventory
from mevfleet.model import FleetPlan, HostPlan
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts
from mevfleet.sshclient import verify_host


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--inventory", default=None, help="inventory YAML to verify")
    parser.addoption("--limit", action="append", default=[], help="only this host (repeatable)")


def _fleet(config: pytest.Config) -> tuple[Inventory, FleetPlan]:
    path = config.getoption("--inventory")
    if not path:
        raise pytest.UsageError("tests/verify needs --inventory (use: mevfleet verify -i INVENTORY)")
    inventory = load_inventory(path)
    return inventory, compile_plan(inventory)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hostname" in metafunc.fixturenames:
        _, plan = _fleet(metafunc.config)
        limit = metafunc.config.getoption("--limit")
        metafunc.parametrize("hostname", [h for h in plan.hosts if not limit or h in limit])


@pytest.fixture(scope="session")
def fleet(pytestconfig: pytest.Config) -> tuple[Inventory, FleetPlan]:
    return _fleet(pytestconfig)


@pytest.fixture(scope="session")
def _hosts(fleet):
    """One SSH connection per host for the whole run (testinfra's paramiko backend)."""
    _, plan = fleet
    opened: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in opened:
            opened[name] = verify_host(plan.hosts[name].ssh)
        return opened[name]

    yield get
    for target in opened.values():
        target.backend.client.close()


@pytest.fixture
def host(hostname: str, _hosts):
    return _hosts(hostname)


@pytest.fixture
def plan(hostname: str, fleet) -> HostPlan:
    return fleet[1].hosts[hostname]


@pytest.fixture
def facts(host, plan) -> HostFacts:
    # Rendering depends on the runtime exactly as the deploy saw it.
    container = host.run("systemd-detect-virt --container --quiet || test -f /.dockerenv").rc == 0
    if plan.owns_kernel is not None:
        container = not plan.owns_kernel
    writable = host.run("test -w /proc/sys/net/ipv4/tcp_fastopen").rc == 0
    return HostFacts(container=container, proc_sys_writable=writable)
