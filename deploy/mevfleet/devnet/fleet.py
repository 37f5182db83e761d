"""A copy of the devnet fleet on a network of its own, for tests and benchmarks that must not disturb
(or be disturbed by) a devnet an operator started with `make devnet`."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from .. import INVENTORY_DIR


def isolated_devnet(prefix: str, network: str, subnet: str, state_dir: Path) -> Path:
    """Write the devnet inventory with hosts renamed `<prefix>-<name>` onto `subnet`; return its path."""
    doc = yaml.safe_load((INVENTORY_DIR / "devnet.yml").read_text())
    old = ipaddress.ip_network(doc["devnet"]["subnet"])
    new = ipaddress.ip_network(subnet)

    def move(address: str) -> str:
        return str(new.network_address + (int(ipaddress.ip_address(address)) - int(old.network_address)))

    doc["devnet"] = {"network": network, "subnet": subnet}
    doc["fleet"]["private_networks"] = [subnet]
    doc["fleet"]["operator_allowlist"] = [f"{move(str(old.network_address + 1))}/32"]
    doc["defaults"]["ssh"]["key"] = str(state_dir / "id_ed25519")
    doc["defaults"]["ssh"]["known_hosts"] = str(state_dir / f"{network}.known_hosts")
    doc["hosts"] = {
        f"{prefix}-{name}": {**spec, "address": move(spec["address"])} for name, spec in doc["hosts"].items()
    }
    path = state_dir / "inventory.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
