"""Hostile inventory values: every string of a full inventory (every field, every mapping key) is replaced
by values that would break out of a config line, a quoted string, a unit's command line or a shell
(newlines, quotes, `$()`, backticks, `;`, spaces, `%`, backslashes, unicode). Each one is either refused,
naming the field, or rendered into every file of every host without escaping: the files are then read
by what reads them (bash -n, nft -c, YAML/JSON parsers, sshd's and systemd's line grammar) and keep the
shape they have with the inventory's own values.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mevfleet.errors import InventoryError, Problem
from mevfleet.inventory import Inventory, inspect_inventory
from mevfleet.model import FleetPlan
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, ManagedFile, RenderError, host_files

from .conftest import SOLANA_AGENT

# Each value combines several ways out (a value refused for one is refused; one accepted carries them all).
HOSTILE = [
    "a\nPermitRootLogin yes",
    "x\u2028y",
    "$(touch /tmp/mevfleet-pwned)",
    "q\"u'o`te; reboot",
    "a b %n \\ ünï☃",
]
CONTROL = HOSTILE[:2]
# Mappings whose keys are the inventory's data (names); other keys are model fields (extra=forbid).
DATA_KEYS = {"hosts", "groups", "sysctls", "ports", "secrets", "versions", "artifacts", "flashblocks_ws", "endpoints"}
AVAX = {"mainnet": "v1.14.1", "devnet": "1.7.0"}
KEY = "0x" + "ab" * 48  # a relay's BLS public key: 96 hex
NFT = shutil.which("nft") or "/usr/sbin/nft"
BASH = shutil.which("bash")


def full_inventory(secret: str, shipper: str, nodes: str) -> dict[str, Any]:
    """An inventory that sets every field a string can be given in."""
    evm = {"groups": ["evm"]}
    return {
        "fleet": {
            "name": "mainnet",
            "private_networks": ["10.20.0.0/16"],
            "operator_allowlist": ["198.51.100.10/32"],
            "ssh_sources": ["192.0.2.0/24"],
            "time_sources": ["time.cloudflare.com", "10.20.0.200"],
            "nodes": nodes,
            "l1_rpc": "https://l1.example.net/rpc",
            "l1_beacon": "http://10.20.0.11:5052",
            "mev_boost_relays": [f"https://{KEY}@relay.example.net"],
            "flashblocks_ws": {"base": "wss://flashblocks.example.net/ws"},
            "agent": {
                "live": ["ethereum"],
                "endpoints": {
                    "ethereum": [{"name": "builder", "url": "https://builder.example.net", "kind": "bundle"}]
                },
                "risk": {"max_position_size_usd": 10000},
                **SOLANA_AGENT,
            },
            "monitoring": {
                "log_shipper": shipper,
                "receivers": [
                    {"type": "webhook", "url": "https://ops.example.net/alerts", "bearer_token_file": secret},
                    {"type": "slack", "api_url_file": secret, "channel": "#mev-alerts"},
                    {"type": "pagerduty", "routing_key_file": secret, "severities": ["critical"]},
                    {
                        "type": "email",
                        "to": "ops@example.net",
                        "sender": "fleet@example.net",
                        "smarthost": "smtp.example.net:587",
                        "auth_username": "fleet",
                        "auth_password_file": secret,
                    },
                ],
            },
        },
        "artifacts": {
            "erigon": {"3.2.2": {"url": "https://mirror.example.net/erigon.tar.gz", "sha256": "0" * 64}},
            "bsc-geth": {"1.6.7": {"path": secret, "sha256": "1" * 64}},
            "nitro": {
                "v3.9.5-66e42c4": {"image": "docker.io/offchainlabs/nitro-node:v3.9.5", "digest": "sha256:" + "2" * 64}
            },
        },
        "defaults": {
            "ssh": {"user": "root", "port": 22, "key": "~/.ssh/fleet", "known_hosts": "~/.ssh/fleet_known_hosts"},
            "tuning": "default",
        },
        "groups": {"evm": {"hardware": {"cpus": 16, "memory_gib": 128}, "thp": "madvise"}},
        "hosts": {
            "mon1": {"address": "10.20.0.10", "roles": ["monitoring"], "hugepages": 0, "secrets": {"grafana": secret}},
            "eth1": {
                **evm,
                "address": "10.20.0.11",
                "chains": ["ethereum"],
                "cpu_governor": "performance",
                "sysctls": {"net.ipv4.tcp_congestion_control": "bbr", "net.ipv4.tcp_rmem": "4096 87380 67108864"},
            },
            "arb1": {**evm, "address": "10.20.0.12", "chains": ["arbitrum"]},
            "op1": {**evm, "address": "10.20.0.13", "chains": ["optimism"]},
            "base1": {**evm, "address": "10.20.0.14", "chains": ["base"]},
            "poly1": {**evm, "address": "10.20.0.15", "chains": ["polygon"]},
            "bsc1": {**evm, "address": "bsc1.fleet.example.net", "listen_address": "10.20.0.16", "chains": ["bsc"]},
            "avax1": {
                **evm,
                "address": "10.20.0.17",
                "chains": ["avalanche"],
                "versions": {"avalanche.avalanchego": "v1.14.1"}
                if nodes == "mainnet"
                else {"avalanche.anvil": "1.7.0"},
            },
            "sol1": {"address": "10.20.0.18", "chains": ["solana"], "ports": {"solana.agave.rpc": 8899}},
        },
    }


def leaves(node: Any, loc: tuple[Any, ...] = ()):
    """(location, is a mapping key) of every string value and every name in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if loc and (loc[-1] in DATA_KEYS or loc[0] == "artifacts"):
                yield (*loc, key), True
            yield from leaves(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*loc, i))
    elif isinstance(node, str):
        yield loc, False


def replaced(doc: dict[str, Any], loc: tuple[Any, ...], is_key: bool, value: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in loc[:-1]:
        parent = parent[part]
    if is_key:
        items = list(parent.items())
        parent.clear()
        parent.update({(value if k == loc[-1] else k): v for k, v in items})
    else:
        parent[loc[-1]] = value
    return doc


def check(doc: dict[str, Any]) -> tuple[Inventory | None, FleetPlan | None, list[Problem]]:
    inventory, problems = inspect_inventory(yaml.safe_dump(doc), "fleet.yml")
    if problems or inventory is None:
        return inventory, None, problems
    try:
        return inventory, compile_plan(inventory), []
    except InventoryError as exc:
        return inventory, None, exc.problems


def names(problems: list[Problem], loc: tuple[Any, ...], is_key: bool, value: str) -> bool:
    """Whether one of the problems names the field (or, for a mapping key, the name) that was changed:
    the field itself, the element holding it (a receiver refused by its type), or the agent's own
    models naming it in the message."""
    dotted = ".".join(map(str, loc))
    words = [str(x) for x in loc if not isinstance(x, int)]
    host = str(loc[1]) if loc[0] == "hosts" and len(loc) > 1 else None
    if is_key:
        return any(value == p.host or value in p.field for p in problems)
    return any(
        (host is None or p.host == host)
        and (dotted.startswith(p.field) or words[-1] in p.field or words[-1] in p.message)
        for p in problems
    )


def rendered(plan: FleetPlan) -> dict[tuple[str, str, bool], ManagedFile]:
    return {
        (name, f.path, container): f
        for name, host in plan.hosts.items()
        for container in (False, True)
        for f in host_files(host, HostFacts(container=container))
    }


def directives(text: str) -> list[str]:
    """The directive lines of a line-based config (sshd_config, systemd units, ini, sysctl.d)."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]


def unit_grammar(f: ManagedFile) -> list[str]:
    """Lines of a systemd unit or drop-in that are not a section, a Key=value or a continuation."""
    wrong, continued = [], False
    for line in f.content.splitlines():
        stripped = line.strip()
        if continued:
            continued = line.endswith("\\")
            continue
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if not (stripped.startswith("[") and stripped.endswith("]")) and "=" not in stripped.split()[0]:
            wrong.append(line)
        continued = line.endswith("\\")
    return wrong


def is_unit(path: str) -> bool:
    return path.startswith("/etc/systemd/") and path.rsplit(".", 1)[-1] in ("service", "socket", "timer", "conf")


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("secrets") / "receiver"
    path.write_text("token\n")
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture(scope="module")
def accepted(secret) -> dict[str, list[tuple[tuple[Any, ...], bool]]]:
    """hostile value -> the places that take it (the rest are refused, naming the field)."""
    base = full_inventory(secret, "alloy", "mainnet")
    _, plan, problems = check(base)
    assert plan is not None, [str(p) for p in problems]
    taken: dict[str, list[tuple[tuple[Any, ...], bool]]] = {}
    unnamed = []
    for loc, is_key in leaves(base):
        for value in HOSTILE:
            _, plan, problems = check(replaced(base, loc, is_key, value))
            if plan is not None:
                taken.setdefault(value, []).append((loc, is_key))
            elif not names(problems, loc, is_key, value):
                unnamed.append(f"{'.'.join(map(str, loc))} = {value!r}: {[str(p) for p in problems]}")
    assert not unnamed, "refused without naming the field:\n" + "\n".join(unnamed)
    return taken


def test_every_hostile_value_is_refused_naming_the_field_or_taken_as_free_text(accepted):
    for value in CONTROL:
        assert value not in accepted, f"{value!r} accepted in {accepted.get(value)}"
    fields = {
        ".".join(str(x) for x in loc if not isinstance(x, int)) for where in accepted.values() for loc, _ in where
    }
    # Only free text passes: alert channels and user names (rendered quoted), the agent's own strings (its
    # models check them; yaml.safe_dump quotes them), and the SSH files on the control machine (read by
    # paramiko, never by a shell or a host).
    free = ("fleet.monitoring.receivers", "fleet.agent.", "defaults.ssh.key", "defaults.ssh.known_hosts")
    assert fields and all(f.startswith(free) for f in fields), fields


@pytest.mark.parametrize(("shipper", "nodes"), [("alloy", "mainnet"), ("journal-remote", "devnet")])
def test_every_file_of_every_host_keeps_its_shape_with_the_hostile_values_that_pass(
    accepted, secret, shipper, nodes, tmp_path
):
    base = full_inventory(secret, shipper, nodes)
    _, base_plan, problems = check(base)
    assert base_plan is not None, problems
    baseline = rendered(base_plan)
    scripts: set[str] = set()
    rulesets: set[str] = set()
    for value, where in accepted.items():
        doc = base
        for loc, is_key in where:
            doc = replaced(doc, loc, is_key, value)
        _, plan, problems = check(doc)
        assert plan is not None, [str(p) for p in problems]
        files = rendered(plan)
        assert set(files) == set(baseline), value
        changed = 0
        for key, f in files.items():
            before = baseline[key]
            changed += f.content != before.content
            where_ = f"{key[0]}:{f.path} with {value!r}"
            assert len(f.content.splitlines()) == len(before.content.splitlines()), where_
            if f.content.startswith("#!/bin/sh"):
                scripts.add(f.content)
            if f.path == "/etc/nftables.conf":
                rulesets.add(f.content)
            if f.path.startswith("/etc/ssh/"):
                assert len(directives(f.content)) == len(directives(before.content)), where_
            if is_unit(f.path):
                assert not unit_grammar(f), where_
                assert len(directives(f.content)) == len(directives(before.content)), where_
            if f.path.endswith((".yml", ".yaml")):
                assert _shape(yaml.safe_load(f.content)) == _shape(yaml.safe_load(before.content)), where_
            if f.path.endswith(".json"):
                json.loads(f.content)
        assert changed, f"{value!r} reached no file: the check above proved nothing"
    _bash_n(scripts, tmp_path)
    _nft_c(rulesets, tmp_path)


def _shape(value: Any) -> Any:
    """The structure of a parsed document: mapping keys and list lengths, not the scalars."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _bash_n(scripts: set[str], tmp_path: Path) -> None:
    assert scripts
    for script in scripts:
        path = tmp_path / (hashlib.sha256(script.encode()).hexdigest()[:12] + ".sh")
        path.write_text(script)
        run = subprocess.run([BASH or "bash", "-n", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def _nft_c(rulesets: set[str], tmp_path: Path) -> None:
    if os.geteuid() != 0 or not os.path.exists(NFT):
        return  # nft -c needs root; the netns test in test_render.py covers loading where it can
    for ruleset in rulesets:
        path = tmp_path / "nftables.conf"
        path.write_text(ruleset)
        run = subprocess.run(["unshare", "--net", NFT, "-c", "-f", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


# The renderer is a second line: values that bypass the inventory (a plan built by other code, a later
# field nobody gave a shape) still cannot leave their line or their quoting.

PRODUCTION: FleetPlan | None = None


def _plan(host: str = "eth1"):
    global PRODUCTION
    if PRODUCTION is None:
        from mevfleet import INVENTORY_DIR
        from mevfleet.inventory import load_inventory

        PRODUCTION = compile_plan(load_inventory(INVENTORY_DIR / "production.example.yml"))
    return PRODUCTION.hosts[host]


@pytest.mark.parametrize(
    ("host", "field"),
    [("eth1", "name"), ("eth1", "cpu_governor"), ("eth1", "thp"), ("mon1", "name"), ("mon1", "listen_address")],
)
def test_a_newline_that_bypasses_the_inventory_is_refused_by_the_renderer(host, field):
    plan = _plan(host).model_copy(update={field: "x\nPermitRootLogin yes"})
    with pytest.raises(RenderError, match="control character"):
        host_files(plan, HostFacts())


@pytest.mark.parametrize("value", ["performance; touch /tmp/pwned", "$(touch /tmp/pwned)", "`id`", "a'b", "a b"])
def test_script_values_are_one_shell_word_whatever_they_hold(value, tmp_path):
    plan = _plan().model_copy(update={"cpu_governor": value, "thp": value})
    (script,) = [f for f in host_files(plan, HostFacts()) if f.path == "/usr/local/sbin/mevfleet-kernel-tuning"]
    path = tmp_path / "tuning.sh"
    path.write_text(script.content)
    assert subprocess.run([BASH or "bash", "-n", str(path)]).returncode == 0
    for line in script.content.splitlines():
        if value in line or shlex.quote(value) in line:
            words = shlex.split(line.split("2>/dev/null")[0])
            assert value in words, line


def test_a_unit_command_line_escapes_specifiers_and_refuses_quotes():
    plan = _plan()
    node = plan.nodes[0]
    sneaky = node.model_copy(update={"args": (*node.args, "--x=100%n$HOME")})
    (unit,) = [
        f
        for f in host_files(plan.model_copy(update={"nodes": (sneaky,)}), HostFacts())
        if f.path.endswith(f"/{node.unit}.service")
    ]
    assert "--x=100%%n$$HOME" in unit.content
    quoted = node.model_copy(update={"args": (*node.args, '--y="a b"')})
    with pytest.raises(RenderError, match="command line"):
        host_files(plan.model_copy(update={"nodes": (quoted,)}), HostFacts())
