"""The searcher agent on node hosts: its slice of the host plan (agent_plan: the chains it searches, read
from the nodes planned beside it, and its config file), its release, config, unit and control-API token.

A release is a wheelhouse: the control machine builds wheels of `agent/` and every dependency once per
agent version (cached, like node artifacts) and uploads one tar; the host checks its sha256, makes a venv
in `/opt/mevfleet/mevagent/<version>/` from those wheels only (`--no-index`: hosts need no PyPI) and
writes a marker last; then `current` is switched and the unit restarted. Wheels with compiled parts are
built for the control machine's Python, so the host's `python3` must have the same version: the install
checks it and fails the host, naming both, before anything is switched.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from .catalog import Catalog
from .control import AGENT_BUS_CA, AGENT_REDIS_PASSWORD
from .inputs import AGENT_DIR, SVM_SECTION
from .inventory import AgentSettings, Host, Inventory
from .model import AgentChainPlan, AgentPlan, FileSpec, HostPlan, MevBoostPlan, Removal, ServicePlan
from .nodes.artifacts import CACHE, MARKER
from .nodes.pair import execution_service
from .nodes.planning import OPT
from .registry import bind_host, control_host, listen_ip
from .render import Block

if TYPE_CHECKING:
    from .render import HostFacts
    from .steps import Given, Step

AGENT_USER = "mevagent"
AGENT_ETC = f"/etc/{AGENT_USER}"  # config, API token, bus secrets; keys/ below it
AGENT_ROOT = f"{OPT}/{AGENT_USER}"  # releases, each a venv, behind `current`
AGENT_STATE = f"/var/lib/{AGENT_USER}"
WHEELHOUSE_CACHE = CACHE.parent / "agent"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# The catalog client (clients.yml) whose builder API the agent polls for /relays/status, and the port its
# `-addr` is rendered from.
MEV_BOOST, MEV_BOOST_PORT = "mev-boost", "api"


def agent_plan(host: Host, plan: HostPlan, inventory: Inventory, catalog: Catalog, version: str) -> AgentPlan | None:
    """The agent where the registry runs it (every host with a chain): each chain whose execution node is
    planned on the host, read over IPC first, WebSocket or HTTP else; its listeners; its config file, judged
    by the agent's own models after planning (inputs.judge), since the plan does not import the agent."""
    service = next((s for s in plan.services if s.service == AGENT_USER), None)
    if service is None:
        return None
    devnet = inventory.fleet.nodes == "devnet"
    chains = []
    for chain in plan.chains:
        spec = catalog.chains[chain]
        # The execution node: the stand-in on the devnet, else the service that serves the chain's RPC.
        wanted = execution_service(spec, devnet)
        if wanted is None:
            continue
        node = next((n for n in plan.nodes if n.chain == chain and n.service == wanted and n.rpc_url), None)
        if node is None or node.rpc_url is None:
            continue
        client = catalog.clients[node.client]
        ws = next((p for p in plan.ports() if p.key.startswith(f"{chain}.") and p.name == client.ws_port), None)
        rpc = urlsplit(node.rpc_url)
        # A WebSocket port of its own (`ws`; Agave's `pubsub`), else one port for both (anvil, Erigon,
        # AvalancheGo, the Solana simulator) at the client's ws_path.
        ws_url = f"ws://{rpc.hostname}:{ws.port}" if ws else f"ws://{rpc.netloc}{client.ws_path}"
        solana = spec.vm == "svm"
        chains.append(
            AgentChainPlan(
                chain=chain,
                chain_id=spec.chain_id,
                vm=spec.vm,
                node_unit=node.unit,
                ipc=None if solana else node.ipc,
                rpc_url=node.rpc_url,
                ws_url=ws_url.rstrip("/") if client.subscriptions else None,
                # Solana JSON-RPC is always HTTP (its WebSocket carries subscriptions only).
                http_url=node.rpc_url if solana or not client.subscriptions else None,
                beacon_url=next((n.beacon_url for n in plan.nodes if n.chain == chain and n.beacon_url), None),
                mev_boost=_mev_boost(chain, plan, inventory, catalog),
                flashblocks_ws=plan.flashblocks_ws.get(chain),
                block_engine_url=f"http://{rpc.netloc}{client.block_engine_path}" if client.block_engine_path else None,
                live=chain in inventory.fleet.agent.live,
            )
        )
    api = next(p for p in service.ports if p.name == "api")
    metrics = next(p for p in service.ports if p.name == "metrics")
    agent = AgentPlan(
        user=service.user,
        version=version,
        release_root=AGENT_ROOT,
        config_path=f"{AGENT_ETC}/agent.yml",
        state_dir=AGENT_STATE,
        token_file=f"{AGENT_ETC}/api.token",
        keys_dir=f"{AGENT_ETC}/keys",
        api_bind="127.0.0.1",
        api_port=api.port,
        api_control_bind=bind_host(plan, api) if api.exposure == "control" else None,
        metrics_bind=bind_host(plan, metrics),
        metrics_port=metrics.port,
        cpu_affinity=plan.cpu.agent_cores if plan.cpu else None,
        node_groups=tuple(sorted({n.user for n in plan.nodes if any(c.node_unit == n.unit for c in chains)})),
        chains=tuple(chains),
        config={},
    )
    # Judged by the agent's own models after planning (inputs.judge): the plan does not import the agent.
    config = agent_config(agent, inventory, catalog) | _bus_config(host, agent, inventory, catalog)
    return agent.model_copy(update={"config": config})


def _mev_boost(chain: str, plan: HostPlan, inventory: Inventory, catalog: Catalog) -> MevBoostPlan | None:
    """mev-boost where this host runs it for `chain` (the catalog's service, started): its API from the plan's
    port for it, asked once per slot, waiting as long as mev-boost waits for its relays plus a second."""
    node = next((n for n in plan.nodes if n.chain == chain and n.client == MEV_BOOST and n.start), None)
    service = next((s for s in plan.services if node is not None and s.unit == node.unit), None)
    api = next((p for p in service.ports if p.name == MEV_BOOST_PORT), None) if service else None
    if api is None:
        return None
    timeouts = inventory.fleet.mev_boost_timeouts or catalog.relays.timeouts
    return MevBoostPlan(
        url=f"http://{bind_host(plan, api)}:{api.port}",
        poll_s=catalog.chains[chain].block_time,
        timeout_ms=timeouts.getheader_ms + 1000,
    )


def agent_config(agent: AgentPlan, inventory: Inventory, catalog: Catalog) -> dict[str, Any]:
    """The agent's config file for this host: its chains from the plan, everything else from the inventory."""
    settings = inventory.fleet.agent
    config: dict[str, Any] = {
        "state_dir": agent.state_dir,
        "api": {
            "bind": agent.api_bind,
            "port": agent.api_port,
            "token_file": agent.token_file,
            "metrics_bind": agent.metrics_bind,
            "metrics_port": agent.metrics_port,
            **({"control_bind": agent.api_control_bind} if agent.api_control_bind else {}),
        },
        "chains": [_chain_config(c, agent, settings, catalog) for c in agent.chains],
    }
    for section in ("risk", "strategies", "gas", "profit", "engine", "analytics"):
        value = getattr(settings, section)
        if value:
            config[section] = value
    return config


def _chain_config(c: AgentChainPlan, agent: AgentPlan, settings: AgentSettings, catalog: Catalog) -> dict[str, Any]:
    """One chain of the agent's config: the inventory's settings for it first, the plan's own keys win (and
    inputs.judge refuses an inventory that tries to set them)."""
    config: dict[str, Any] = {
        **settings.chains.get(c.chain, {}),
        "name": c.chain,
        "chain_id": c.chain_id,
        **({"ipc_path": c.ipc} if c.ipc else {}),
        **({"ws_url": c.ws_url} if c.ws_url else {}),
        **({"http_url": c.http_url} if c.http_url else {}),
        **({"beacon_url": c.beacon_url} if c.beacon_url else {}),
        **({"mev_boost": c.mev_boost.model_dump(exclude_none=True)} if c.mev_boost else {}),
        "live": c.live,
        "max_gas_price_gwei": settings.max_gas_price_gwei.get(c.chain, catalog.chains[c.chain].max_gas_price_gwei),
    }
    if c.vm == "svm":
        # Always a `solana:` section (the agent takes a chain without one for an EVM chain): pools, sol_usd
        # and block-engine regions from the inventory, unless the node on this host serves the block engine.
        given = settings.chains.get(c.chain, {}).get(SVM_SECTION)
        section: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
        if c.block_engine_url:  # the node on this host serves the block engine: the agent sends there only
            section["block_engines"] = [{"name": c.node_unit, "url": c.block_engine_url}]
        # Only a live chain signs: the payer's keypair is a file the operator installs (docs/agent.md).
        key = {"signing_key_file": f"{agent.keys_dir}/{c.chain}.json"} if c.live else {}
        return config | {SVM_SECTION: section} | key
    return config | {
        "endpoints": settings.endpoints.get(c.chain, []),
        # Only live chains sign: their keys are files the operator installs (docs/agent.md).
        **(
            {
                "signing_key_file": f"{agent.keys_dir}/{c.chain}.key",
                "searcher_key_file": f"{agent.keys_dir}/{c.chain}-searcher.key",
            }
            if c.live
            else {}
        ),
    }


def _bus_config(host: Host, agent: AgentPlan, inventory: Inventory, catalog: Catalog) -> dict[str, Any]:
    """The agent's `bus:` section in a fleet with a control plane: the control host's Redis (TLS only,
    its certificate checked against the fleet CA) as this agent's own ACL user, and where the control
    plane reaches this agent's API."""
    control = control_host(inventory)
    if control is None or agent.api_control_bind is None:
        return {}
    redis = catalog.fleet.monitoring["redis"].ports["redis"].port
    return {
        "bus": {
            "agent": host.name,
            "redis_url": f"rediss://{listen_ip(inventory.hosts[control])}:{redis}/0",
            "username": host.name,
            "password_file": AGENT_REDIS_PASSWORD,
            "tls_ca_file": AGENT_BUS_CA,
            "lease_required": True,
            "api_url": f"http://{agent.api_control_bind}:{agent.api_port}",
        }
    }


class AgentBuildError(RuntimeError):
    pass


@cache
def wheelhouse(version: str, extra: str = "") -> Path:
    """The agent and all its dependencies as wheels in one tar, built once per version (with an extra's
    dependencies too: `control` for the control host)."""
    target = WHEELHOUSE_CACHE / f"mevagent{'-' + extra if extra else ''}-{version}-py{PYTHON}.tar"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        requirement = f"{AGENT_DIR}[{extra}]" if extra else str(AGENT_DIR)
        run = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), requirement],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise AgentBuildError(f"building the agent's wheels failed: {run.stderr.strip()[-2000:]}")
        staged = Path(tmp) / target.name
        with tarfile.open(staged, "w") as tar:
            for wheel in sorted(wheels.iterdir()):
                tar.add(wheel, arcname=wheel.name)
        staged.replace(target)
    return target


def release_dir(agent: AgentPlan) -> str:
    return f"{agent.release_root}/{agent.version}"


def marker(agent: AgentPlan) -> str:
    return f"{release_dir(agent)}/{MARKER}"


def link(agent: AgentPlan) -> str:
    return f"{agent.release_root}/current"


def venv_install_script(
    release: str, upload: str, sha: str, requirement: str = "mevagent", program: str = "mevagent"
) -> str:
    """The agent's wheelhouse as a venv in `release` (the agent's, a node's that runs from it, or the
    control plane's: requirement `mevagent[control]`, program `mevcontrol`)."""
    q = shlex.quote
    want_python = f"({PYTHON.replace('.', ', ')})"
    return "; ".join(
        [
            "set -e",
            f'got=$(sha256sum < {q(upload)} | cut -d" " -f1)',
            f'if [ "$got" != {q(sha)} ]; then rm -f {q(upload)}; '
            f'echo "checksum mismatch for the agent wheelhouse: expected {sha}, got $got; nothing was switched" >&2; '
            "exit 1; fi",
            f"if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != {want_python})'; then "
            f'echo "the host has $(python3 -V 2>&1); the agent wheelhouse is built for Python {PYTHON}" >&2; '
            "exit 1; fi",
            # The venv's scripts embed its absolute path, so it is built where it will stay; an interrupted
            # build has no marker and is removed and redone here.
            f"rm -rf {q(release)}",
            f"mkdir -p {q(release + '/wheels')}",
            f"tar -xf {q(upload)} -C {q(release + '/wheels')}",
            f"python3 -m venv {q(release + '/venv')}",
            f"{q(release + '/venv/bin/pip')} install --quiet --no-index --no-cache-dir "
            f"--find-links {q(release + '/wheels')} {q(requirement)}",
            f"rm -rf {q(release + '/wheels')}",
            f"{q(release + '/venv/bin/' + program)} --help >/dev/null",
            f"echo {q(sha)} > {q(release + '/' + MARKER)}",
            f"chown -R root:root {q(release)}",
            f"chmod -R go-w {q(release)}",
            f"rm -f {q(upload)}",
        ]
    )


def token_script(agent: AgentPlan) -> str:
    """The control API's bearer token: made on the host once (never in the repo, a log or argv), kept."""
    q = shlex.quote
    token, user = agent.token_file, agent.user
    return "; ".join(
        [
            "set -e",
            "umask 077",
            f"install -d -m 0750 -o root -g {q(user)} {q(token.rsplit('/', 1)[0])}",
            f"install -d -m 0700 -o {q(user)} -g {q(user)} {q(agent.keys_dir)}",
            f"if [ ! -s {q(token)} ]; then od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > {q(token + '.tmp')}; "
            f"mv {q(token + '.tmp')} {q(token)}; fi",
            f"chown {q(user)}:{q(user)} {q(token)}",
            f"chmod 0600 {q(token)}",
        ]
    )


def config_yaml(agent: AgentPlan) -> str:
    return yaml.safe_dump(agent.config, sort_keys=False, default_flow_style=False).rstrip("\n")


def agent_files(plan: HostPlan, facts: HostFacts) -> list[FileSpec]:
    """Every file the agent reads, concern "agent": its config (readable by its group) and its unit; none
    without an agent."""
    agent = plan.agent
    if agent is None:
        return []
    return [
        FileSpec(
            path=agent.config_path,
            concern="agent",
            template="agent/agent.yml.j2",
            context={"host": plan.name, "config_yaml": Block(config_yaml(agent))},
            mode="0640",
            group=agent.user,
        ),
        FileSpec(path=UNIT_FILE, concern="agent", template="agent/mevagent.service.j2", context={"agent": agent}),
    ]


UNIT = "mevagent.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"


def probe_files(plan: HostPlan) -> list[str]:
    return [marker(plan.agent), plan.agent.token_file] if plan.agent else []


def probe_links(plan: HostPlan) -> list[str]:
    return [link(plan.agent)] if plan.agent else []


def agent_units(plan: HostPlan) -> list[str]:
    return [UNIT] if plan.agent else []


def removals(plan: HostPlan) -> list[Removal]:
    """A host that no longer runs the agent (its last chain moved away: every host with a chain, EVM or
    Solana, runs it): the unit, its config, API token and bus secrets, and its release links go. Its state
    dir, its signing keys (keys/ under the config dir) and its releases stay, as a node keeps its data dir."""
    if plan.agent is not None:
        return []
    return [
        Removal(
            concern="agent",
            name="searcher agent",
            units=(UNIT,),
            paths=(
                UNIT_FILE,
                f"{UNIT_FILE}.d",
                f"{AGENT_ETC}/agent.yml",
                f"{AGENT_ETC}/api.token",
                AGENT_REDIS_PASSWORD,
                AGENT_BUS_CA,
                f"{AGENT_ROOT}/current",
                f"{AGENT_ROOT}/previous",
            ),
            kept=f"{AGENT_STATE}, signing keys in {AGENT_ETC}/keys and releases",
        )
    ]


def needs_packages(services: list[ServicePlan], catalog: Catalog) -> tuple[str, ...]:
    """The agent's release, and that of a node run from the agent's bundle, is a venv made from uploaded
    wheels: the host needs python3-venv."""
    runs_agent = any(
        s.service == AGENT_USER or getattr(catalog.clients.get(s.service), "runtime", "") == "agent" for s in services
    )
    return ("python3-venv",) if runs_agent else ()


def steps(plan: HostPlan, given: Given) -> tuple[Step, ...]:
    """The bus secrets the control machine holds for this agent, then the token made on the host, the
    release, config and unit, `current`, and the agent restarted when any of them changed."""
    # Imported here: steps.py names the release types, and release.py imports this module.
    from .release import agent_release
    from .steps import (
        CopiedSecrets,
        CopiesChanged,
        Files,
        FilesChanged,
        FileWant,
        NotSwitched,
        Running,
        SecretScript,
        Select,
        Switch,
        WheelInstall,
    )

    copies = given.copies_for("agent")
    out: list[Step] = [
        CopiedSecrets(name="Agent API token, bus password and the fleet CA (0600)", copies=copies, skip_if_none=True)
    ]
    agent = plan.agent
    if agent is None:
        return tuple(out)
    release = agent_release(agent)
    own = Select(concern="agent")
    return (
        *out,
        SecretScript(
            name="Agent API token (made on the host, 0600) and key directory (0700)",
            script=token_script(agent),
            files=(FileWant(path=agent.token_file, modes=("0600",), owner=agent.user),),
        ),
        WheelInstall(name=f"Agent release {agent.version} (sha256 and Python checked on the host)", release=release),
        Files(name="Agent config and unit", files=own),
        Switch(name=f"Agent current -> {agent.version}", release=release),
        Running(
            name="Agent running (dry-run unless a chain is live)",
            unit=UNIT,
            restart_if=(FilesChanged(files=own), NotSwitched(release=release), CopiesChanged(copies=copies)),
        ),
    )
