"""Every invalid inventory is refused before any host is touched, naming the file, the host and the field."""

from __future__ import annotations

import os

import pytest

from mevfleet import INVENTORY_DIR
from mevfleet.errors import InventoryError
from mevfleet.inventory import load_inventory, parse_inventory
from mevfleet.plan import compile_plan


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as exc:
        compile_plan(parse_inventory(text, "fleet.yml"))
    return [str(p) for p in exc.value.problems]


def test_smallest_inventory_gets_every_default():
    inventory = parse_inventory("hosts: {node1: {chains: [ethereum]}}", "min.yml")
    host = inventory.hosts["node1"]
    assert (host.address, host.ssh.user, host.ssh.port, host.tuning) == ("node1", "root", 22, "default")
    plan = compile_plan(inventory).hosts["node1"]
    assert {p.key: p.port for p in plan.ports()}["ethereum.erigon.rpc"] == 8545  # the catalog's port


def test_shipped_inventories_are_valid():
    for path in ("devnet.yml", "production.example.yml"):
        assert len(compile_plan(load_inventory(INVENTORY_DIR / path)).hosts) == 9


def test_unknown_chain():
    (p,) = problems("hosts: {n1: {chains: [ethereum, dogecoin]}}")
    assert p.startswith("fleet.yml: host 'n1': chains[1]: unknown chain 'dogecoin'")


def test_duplicate_host_is_not_silently_merged():
    (p,) = problems("hosts:\n  n1: {chains: [ethereum]}\n  n1: {chains: [bsc]}\n")
    assert "duplicate key 'n1'" in p and "line 2" in p and p.startswith("fleet.yml: yaml (line 3)")


def test_port_collision_from_override():
    text = "hosts: {n1: {chains: [ethereum], ports: {ethereum.erigon.rpc: 9100}}}"
    assert any(
        "host 'n1': ports.ethereum.erigon.rpc: tcp/9100 is already used by fleet.node_exporter.metrics" in p
        for p in problems(text)
    )


def test_unknown_port_override():
    (p,) = problems("hosts: {n1: {chains: [ethereum], ports: {ethereum.erigon.nope: 1}}}")
    assert "host 'n1': ports.ethereum.erigon.nope: unknown port" in p


def test_unknown_sysctl():
    (p,) = problems("hosts: {n1: {chains: [bsc], sysctls: {vm.swapiness: 1}}}")
    assert "host 'n1': sysctls.vm.swapiness: unknown sysctl" in p


@pytest.mark.parametrize("value", ["'1'", "yes", "'4096 x'"])
def test_ill_typed_sysctl(value):
    key = "net.ipv4.tcp_rmem" if "x" in value else "vm.swappiness"
    found = problems(f"hosts: {{n1: {{chains: [bsc], sysctls: {{{key}: {value}}}}}}}")
    assert found and all(f"host 'n1': sysctls.{key}" in p for p in found), found


def test_hugepages_beyond_memory():
    (p,) = problems("hosts: {n1: {chains: [bsc], hardware: {memory_gib: 8}, hugepages: 4096}}")
    assert "host 'n1': hugepages:" in p and "8 GiB" in p


def test_hugepages_unknown_memory_is_accepted():
    compile_plan(parse_inventory("hosts: {n1: {chains: [bsc], hugepages: 4096}}", "f.yml"))


def test_secret_missing(tmp_path):
    (p,) = problems(f"hosts: {{n1: {{chains: [bsc], secrets: {{jwt: {tmp_path}/nope}}}}}}")
    assert "host 'n1': secrets.jwt: secret file" in p and "does not exist" in p


def test_secret_loose_permissions(tmp_path):
    secret = tmp_path / "grafana"
    secret.write_text("s3cret")
    os.chmod(secret, 0o644)
    (p,) = problems(f"hosts: {{n1: {{roles: [monitoring], address: 10.0.0.1, secrets: {{grafana: {secret}}}}}}}")
    assert "host 'n1': secrets.grafana:" in p and "0644" in p
    os.chmod(secret, 0o600)
    compile_plan(
        parse_inventory(
            f"hosts: {{n1: {{roles: [monitoring], address: 10.0.0.1, secrets: {{grafana: {secret}}}}}}}",
            "f.yml",
        )
    )


def test_typo_in_field_names_the_field():
    (p,) = problems("hosts: {n1: {chain: [bsc]}}")
    assert p.startswith("fleet.yml: host 'n1': chain: Extra inputs are not permitted")


def test_unknown_group_and_duplicate_address():
    found = problems("hosts: {a: {chains: [bsc], groups: [evm]}, b: {chains: [bsc], address: a}}")
    assert any("host 'a': groups: unknown group 'evm'" in p for p in found)
    assert any("host 'b': address: a:22 is also 'a'" in p for p in found)


def test_all_problems_reported_at_once():
    found = problems("hosts: {a: {chains: [nope]}, b: {chains: [bsc], sysctls: {x.y: 1}}}")
    assert len(found) == 2


def test_bad_yaml_names_the_line():
    (p,) = problems("hosts:\n  a: {chains: [bsc]\n")
    assert p.startswith("fleet.yml: yaml (line")


def test_group_and_host_override_order():
    inventory = parse_inventory(
        "defaults: {hardware: {cpus: 4, memory_gib: 64}, sysctls: {vm.swappiness: 5}}\n"
        "groups: {big: {hardware: {cpus: 32}}}\n"
        "hosts: {n1: {chains: [bsc], groups: [big], sysctls: {vm.swappiness: 10}}}\n",
        "f.yml",
    )
    host = inventory.hosts["n1"]
    assert (host.hardware.cpus, host.hardware.memory_gib, host.sysctls["vm.swappiness"]) == (32, 64, 10)
