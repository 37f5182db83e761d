"""Real clients on the devnet (inventory `fleet.real_clients`): a chain whose catalog entry has
`devnet_clients` runs those (the Ethereum pair: EthereumJS + Lodestar) instead of its stand-in.

The plan sees such a chain exactly like a production chain: its services, ports, users and JWT pair are
the `devnet_clients` ones, so units, firewall, scrape targets, JWT copies and health checks come from the
same code paths as on mainnet. Only the catalog the plan reads is swapped, once, here.
"""

from __future__ import annotations

from ..catalog import Catalog, ChainSpec
from ..errors import Problem
from ..inventory import Inventory


def real_client_problems(inventory: Inventory, catalog: Catalog) -> list[Problem]:
    problems = []
    for chain in inventory.fleet.real_clients:
        spec = catalog.chains.get(chain)
        if spec is None or spec.devnet_clients is None:
            have = ", ".join(c for c, s in catalog.chains.items() if s.devnet_clients) or "none"
            problems.append(
                Problem(inventory.path, None, "fleet.real_clients", f"{chain!r} has no real devnet clients ({have})")
            )
        elif inventory.fleet.nodes != "devnet":
            problems.append(
                Problem(inventory.path, None, "fleet.real_clients", "only a devnet (fleet.nodes: devnet) runs them")
            )
    return problems


def with_real_clients(catalog: Catalog, inventory: Inventory) -> Catalog:
    """The catalog the plan reads: each chain of fleet.real_clients with its real clients as services."""
    chains = dict(catalog.chains)
    for chain in inventory.fleet.real_clients:
        spec = catalog.chains.get(chain)
        if spec is None or spec.devnet_clients is None:
            continue  # reported by real_client_problems
        real = spec.devnet_clients
        chains[chain] = spec.model_copy(update={"services": real.services, "jwt": real.jwt, "stand_in": None})
    return catalog.model_copy(update={"chains": chains}) if chains != catalog.chains else catalog


def execution_service(spec: ChainSpec, devnet: bool) -> str | None:
    """The service whose JSON-RPC the agent uses: the stand-in on the devnet, the real client when the
    devnet runs real clients, else the production service serving the chain's RPC."""
    if spec.stand_in is None:
        return spec.devnet_clients.rpc.partition(".")[0] if devnet and spec.devnet_clients else None
    return spec.stand_in.client if devnet else spec.stand_in.rpc.partition(".")[0]
