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
    # Without hardware.memory_gib there is nothing to check the reservation against: it is planned as asked.
    host = compile_plan(parse_inventory("hosts: {n1: {chains: [bsc], hugepages: 4096}}", "f.yml")).hosts["n1"]
    assert host.hugepages == 4096
    assert host.sysctls()["vm.nr_hugepages"] == "4096"
    assert any(f.path == "/etc/sysctl.d/45-mevfleet-hugepages.conf" for f in host.sysctl_files)
    # The same reservation is refused once the host's memory is known to be too small for it.
    assert problems("hosts: {n1: {chains: [bsc], hugepages: 4096, hardware: {memory_gib: 4}}}")


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


# Values that reach a rendered file or a shell have a shape (docs/inventory.md); each refusal names the field.


@pytest.mark.parametrize(
    ("host", "field"),
    [
        ('"n1\\nPermitRootLogin yes": {chains: [bsc]}', "(name)"),
        ("n1: {chains: [bsc], cpu_governor: 'performance; reboot'}", "cpu_governor"),
        ("n1: {chains: [bsc], address: 'node 1'}", "address"),
        ("n1: {chains: [bsc], address: 0.0.0.0}", "address"),
        ("n1: {chains: [bsc], ports: {bsc.bsc-geth.rpc: 0}}", "ports.bsc.bsc-geth.rpc"),
        ("n1: {chains: [bsc], ports: {bsc.bsc-geth.rpc: -1}}", "ports.bsc.bsc-geth.rpc"),
        ("n1: {chains: [bsc], ports: {bsc.bsc-geth.rpc: 65536}}", "ports.bsc.bsc-geth.rpc"),
        ("n1: {chains: [bsc], ssh: {user: 'root; id'}}", "ssh.user"),
        ("n1: {chains: [bsc], versions: {bsc.bsc-geth: '1.6.7 $(id)'}}", "versions.bsc.bsc-geth"),
        ("n1: {chains: [bsc], sysctls: {net.ipv4.tcp_congestion_control: 'bbr; id'}}", "sysctls"),
        ("n1: {chains: [bsc], hugepages: 1000000}", "hugepages"),
    ],
)
def test_a_value_that_could_escape_is_refused_naming_the_field(host, field):
    found = problems(f"hosts:\n  {host}\n")
    assert any(f": {field}" in p for p in found), found


@pytest.mark.parametrize(
    ("fleet", "field"),
    [
        ("time_sources: ['pool.ntp.org; reboot']", "fleet.time_sources.0"),
        ("l1_rpc: 'http://l1:8545/$(id)'", "fleet.l1_rpc"),
        ("flashblocks_ws: {base: 'wss://x/%n'}", "fleet.flashblocks_ws.base"),
        (
            'monitoring: {receivers: [{type: slack, api_url_file: SECRET, channel: "a\\nb"}]}',
            "fleet.monitoring.receivers.0.channel",
        ),
    ],
)
def test_a_fleet_value_that_could_escape_is_refused_naming_the_field(fleet, field, tmp_path):
    secret = tmp_path / "slack"
    secret.write_text("https://hooks.example/x")
    os.chmod(secret, 0o600)
    found = problems(f"fleet: {{{fleet.replace('SECRET', str(secret))}}}\nhosts: {{n1: {{chains: [bsc]}}}}\n")
    assert len(found) == 1, found
    assert any(f"fleet.yml: {field}" in p for p in found), found


def test_an_artifact_whose_name_would_reach_the_install_script_is_refused(tmp_path):
    text = (
        "artifacts: {bsc-geth: {1.6.7: {path: '/srv/$(id)', sha256: '" + "0" * 64 + "'}}}\nhosts: {n1: {chains: [bsc]}}"
    )
    (p,) = problems(text)
    assert "artifacts.bsc-geth.1.6.7.path" in p and "file name" in p


def test_port_minus_one_is_a_named_problem_not_a_traceback():
    # The old schema let -1 through to the plan, which crashed building the port's range.
    with pytest.raises(InventoryError):
        compile_plan(parse_inventory("hosts: {n1: {chains: [bsc], ports: {bsc.bsc-geth.rpc: -1}}}", "f.yml"))


def test_hugepages_are_bounded_when_memory_is_unknown():
    (p,) = problems("hosts: {n1: {chains: [bsc], hugepages: 200000}}")
    assert "host 'n1': hugepages: Input should be less than or equal to 131072" in p


def test_a_dns_named_host_never_listens_on_every_interface():
    alone = compile_plan(parse_inventory("hosts: {n1: {chains: [bsc]}}", "f.yml")).hosts["n1"]
    (node,) = alone.nodes
    assert "0.0.0.0" not in " ".join(node.args) and "--http.addr 127.0.0.1" in " ".join(node.args)
    # In a fleet something reaches it on: an IP is needed, named by the field that gives it.
    (p,) = problems("fleet: {private_networks: [10.0.0.0/24]}\nhosts: {n1: {chains: [bsc]}}")
    assert "host 'n1': listen_address:" in p
    fleet = "fleet: {private_networks: [10.0.0.0/24]}\n"
    plan = compile_plan(
        parse_inventory(fleet + "hosts: {n1: {chains: [bsc], address: n1.example, listen_address: 10.0.0.7}}", "f")
    )
    assert "--http.addr 10.0.0.7" in " ".join(plan.hosts["n1"].nodes[0].args)


def test_validate_reports_schema_and_plan_problems_at_once(tmp_path):
    from mevfleet.validate import check_fleet

    path = tmp_path / "fleet.yml"
    path.write_text(
        "fleet: {private_networks: [10.0.0.0/24], time_sources: ['a b']}\n"
        "hosts:\n"
        "  n1: {chains: [bsc], address: 10.0.0.1, cpu_governor: fast}\n"  # schema
        "  n2: {chains: [dogecoin], address: 10.0.0.2}\n"  # host check
        "  n3: {chains: [bsc], address: 10.0.0.3, ports: {bsc.bsc-geth.rpc: 30311}}\n"  # plan: collision
        "  n4: {chains: [bsc], address: n4.example}\n"  # plan: needs listen_address (fleet networks kept)
    )
    with pytest.raises(InventoryError) as exc:
        check_fleet(path)
    found = [str(p) for p in exc.value.problems]
    expected = [
        f"{path}: fleet.time_sources.0:",
        f"{path}: host 'n1': cpu_governor:",
        f"{path}: host 'n2': chains[0]: unknown chain 'dogecoin'",
        f"{path}: host 'n3': ports.bsc.bsc-geth.rpc: tcp/30311 is already used",
        f"{path}: host 'n4': listen_address:",
    ]
    assert all(any(p.startswith(e) for p in found) for e in expected), found
    assert len(found) == len(expected), found
