"""What planning needs from outside the inventory, gathered by the caller before planning and handed in
as data (model.PlanInputs): the catalog (YAML files), the release versions of the agent and the control
plane (hashes of their sources under agent/), and, after planning, the judgement of the agent's and the
control plane's own models (packages mevagent and mevcontrol) on the inventory's sections.

plan.plan_fleet itself reads no file and imports neither package; plan.compile_plan is the one entry that
calls gather(), plan_fleet() and judge() in turn.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .catalog import Catalog, load_catalog
from .errors import Problem

if TYPE_CHECKING:
    from .inventory import Inventory
    from .model import FleetPlan, PlanInputs

AGENT_DIR = Path(__file__).resolve().parents[2] / "agent"


def _sources_hash(*packages: str) -> str:
    digest = hashlib.sha256()
    sources = [path for package in packages for path in (AGENT_DIR / package).rglob("*")]
    for path in sorted([AGENT_DIR / "pyproject.toml", *sources]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(AGENT_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def agent_version() -> str:
    """12 hex of the agent's sources and pyproject: what the host's release directory is named after."""
    return _sources_hash("mevagent", "solstandin")


@cache
def control_version() -> str:
    """12 hex of what the control host's venv is built from: a new one is a new release."""
    return _sources_hash("mevagent", "mevcontrol")


def gather(catalog: Catalog | None = None) -> PlanInputs:
    """Read everything planning needs besides the inventory (the package's catalog unless one is given)."""
    from .model import PlanInputs

    return PlanInputs(
        catalog=catalog or load_catalog(), agent_version=agent_version(), control_version=control_version()
    )


def judge(fleet: FleetPlan, inventory: Inventory, catalog: Catalog) -> list[Problem]:
    """The agent's config on each host and the control plane's limits, judged by their own models."""
    problems = []
    for name, plan in fleet.hosts.items():
        if plan.agent is not None:
            problems += [
                Problem(inventory.path, name, f"fleet.agent.{field}", message)
                for field, message in check_agent_config(plan.agent.config, inventory, catalog)
            ]
        if plan.control is not None:
            from mevcontrol.config import FleetLimits  # the control machine installs the bundle with [control]

            for field in ("limits", "ceilings"):
                try:
                    FleetLimits.model_validate(getattr(inventory.fleet.control, field))
                except ValidationError as exc:
                    message = str(exc.errors()[0]["msg"])
                    problems.append(Problem(inventory.path, name, f"fleet.control.{field}", message))
            problems += [
                Problem(inventory.path, name, ".".join(("fleet.control.crosschain", *where)), message)
                for where, message in check_crosschain(inventory.fleet.control.crosschain)
            ]
    return problems


def check_crosschain(settings: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """The control plane's cross-chain settings judged by its own model: (field path, message) each."""
    from mevcontrol.crosschain import CrossChainConfig

    if "registry_file" in settings:  # the deploy ships no other registry to the control host
        return [(("registry_file",), "the control host uses the registry shipped with the agent bundle")]
    try:
        CrossChainConfig.model_validate(settings)
    except ValidationError as exc:
        return [(tuple(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()]
    return []


# The agent's section of an SVM chain (mevagent.config.ChainConfig.solana): the agent's field name, not a chain's.
SVM_SECTION = "solana"

# The agent's chain keys the plan writes from the host's nodes (mev_boost: only where the host runs it),
# `fleet.agent.live`, `endpoints` and the catalog: fleet.agent.chains may set any other ChainConfig field.
PLANNED_CHAIN_KEYS = frozenset(
    {"name", "chain_id", "ipc_path", "ws_url", "http_url", "beacon_url", "live", "max_gas_price_gwei", "endpoints"}
    | {"signing_key_file", "searcher_key_file", "mev_boost"}
)


def check_agent_config(config: dict[str, Any], inventory: Inventory, catalog: Catalog) -> list[tuple[str, str]]:
    """The agent's own models judge the inventory's values (secret files are checked on the host)."""
    from mevagent import config as agent_models  # the control machine installs both packages

    problems: list[tuple[str, str]] = []

    def check(field: str, model: type[BaseModel], value: Any) -> None:
        try:
            model.model_validate(value)
        except ValidationError as exc:
            problems.append((field, agent_models.describe(exc, value if isinstance(value, dict) else {})))

    for section, model in (
        ("risk", agent_models.RiskLimits),
        ("gas", agent_models.GasSettings),
        ("profit", agent_models.ProfitSettings),
        ("engine", agent_models.EngineSettings),
    ):
        check(section, model, config.get(section, {}))
    if "analytics" in config:
        check("analytics", agent_models.AnalyticsConfig, config["analytics"])
    names: set[str] = set()
    for chain in config["chains"]:
        name = chain["name"]
        names.add(name)
        extra = inventory.fleet.agent.chains.get(name, {})
        problems += [
            (f"chains.{name}.{key}", "set by the plan, not the inventory")
            for key in sorted(PLANNED_CHAIN_KEYS & extra.keys())
        ]
        unsigned = {k: v for k, v in chain.items() if not k.endswith("_key_file")} | {"live": False}
        check(f"chains.{name}", agent_models.ChainConfig, unsigned)
        if SVM_SECTION in chain:
            problems += _solana_problems(name, chain, extra, inventory)
        elif chain["live"] and not chain["endpoints"]:
            problems.append((f"endpoints.{name}", "a live chain needs at least one endpoint to submit to"))
    for name, strategy in config.get("strategies", {}).items():
        try:  # each section is judged by its strategy plug-in's own model
            model = agent_models.strategy_model(name)
        except ValueError as exc:
            problems.append((f"strategies.{name}", str(exc)))
            continue
        check(f"strategies.{name}", model, strategy)
    for chain in inventory.fleet.agent.endpoints:
        if chain not in names and chain not in catalog.chains:
            problems.append((f"endpoints.{chain}", f"unknown chain {chain!r}"))
    return problems


def _solana_problems(
    name: str, chain: dict[str, Any], extra: dict[str, Any], inventory: Inventory
) -> list[tuple[str, str]]:
    """A Solana chain's settings the agent's model cannot see were dropped: EVM endpoints for it, block-engine
    regions where the node on the host serves the block engine, a live chain with nowhere to send."""
    problems = []
    if name in inventory.fleet.agent.endpoints:
        problems.append((f"endpoints.{name}", "a Solana chain sends bundles to solana.block_engines, not endpoints"))
    given = extra.get(SVM_SECTION)
    regions = chain[SVM_SECTION].get("block_engines")
    if isinstance(given, dict) and "block_engines" in given and given["block_engines"] != regions:
        problems.append(
            (f"chains.{name}.solana.block_engines", "set by the plan: the node on this host serves the block engine")
        )
    if chain["live"] and not regions:
        problems.append((f"chains.{name}.solana.block_engines", "a live chain needs a block-engine region"))
    return problems
