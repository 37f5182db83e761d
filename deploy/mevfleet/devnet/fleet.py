"""A copy of the devnet fleet on a network of its own, for tests and benchmarks that must not disturb
(or be disturbed by) a devnet an operator started with `make devnet`."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TypeVar

import yaml

from .. import INVENTORY_DIR
from ..inventory import load_inventory
from .harness import Harness, TestHost

T = TypeVar("T")


def isolated_devnet(
    prefix: str,
    network: str,
    subnet: str,
    state_dir: Path,
    real_clients: bool = False,
    hosts: Collection[str] | None = None,
) -> Path:
    """Write the devnet inventory as fleet `devnet-<prefix>`, hosts renamed `<prefix>-<name>`, onto `subnet`;
    return its path.

    Without `real_clients` every chain runs its anvil stand-in (the real Ethereum pair takes minutes to
    build and start; tests/integration/test_eth_pair.py covers it). `hosts` (renamed names) keeps only
    those hosts.
    """
    doc = yaml.safe_load((INVENTORY_DIR / "devnet.yml").read_text())
    if not real_clients:
        doc["fleet"].pop("real_clients", None)
    old = ipaddress.ip_network(doc["devnet"]["subnet"])
    new = ipaddress.ip_network(subnet)

    def move(address: str) -> str:
        return str(new.network_address + (int(ipaddress.ip_address(address)) - int(old.network_address)))

    doc["devnet"] = {"network": network, "subnet": subnet}
    # A fleet of its own name: the fleet CA, the agents' secrets and the bus ACL file live per fleet name on
    # this machine, and fleets that run side by side must not rewrite each other's (one fleet's Redis once
    # got the other's ACL file mid-deploy).
    doc["fleet"]["name"] = f"{doc['fleet']['name']}-{prefix}"
    doc["fleet"]["private_networks"] = [subnet]
    doc["fleet"]["operator_allowlist"] = [f"{move(str(old.network_address + 1))}/32"]
    doc["defaults"]["ssh"]["key"] = str(state_dir / "id_ed25519")
    doc["defaults"]["ssh"]["known_hosts"] = str(state_dir / f"{network}.known_hosts")
    doc["hosts"] = {
        f"{prefix}-{name}": {**spec, "address": move(spec["address"])}
        for name, spec in doc["hosts"].items()
        if hosts is None or f"{prefix}-{name}" in hosts
    }
    path = state_dir / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextlib.contextmanager
def hosts_up(inventory: Path, network: str, subnet: str, state_dir: Path) -> Iterator[Harness]:
    """The inventory's hosts as fresh test hosts on a harness of their own (what an interrupted earlier run
    left is removed first); removed again on the way out, unless MEVFLEET_KEEP_HOSTS is set (to look at a
    failure). HarnessError when the Docker engine does not answer."""
    harness = Harness(network=network, subnet=subnet, state_dir=state_dir)
    harness.down()
    try:
        harness.up([TestHost(h.name, h.address) for h in load_inventory(inventory).hosts.values()])
        yield harness
    finally:
        if not os.environ.get("MEVFLEET_KEEP_HOSTS"):
            harness.down()


def wait_until(what: str, within_s: float, check: Callable[[], T], every_s: float = 2.0) -> T:
    """Poll `check` until it returns something truthy and return it; fail naming `what` after `within_s`.

    Fleet tests wait on real hosts (alerts firing, leases renewed, units restarted): one bounded poll for all
    of them, so a slow host fails with what it was waiting for rather than hanging."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s} s")
        time.sleep(every_s)
