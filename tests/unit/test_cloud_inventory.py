"""`mevfleet inventory aws` against a real EC2 API (moto server on loopback): tagged instances become an
inventory that `mevfleet validate` accepts, with addresses, hardware and SSH user from EC2; the Ansible
engine's amazon.aws.aws_ec2 configuration selects the same instances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mevfleet.cli import main
from mevfleet.cloud.ec2_inventory import AWS_EC2_KEYS
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

from .conftest import DUMMY_SECRET, boto

DEBIAN_USER = {"mevfleet:ssh-user": "debian"}


def _launch(ec2, instance_type: str, tags: dict[str, str], count: int = 1) -> list[dict]:
    image = ec2.describe_images()["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    answer = ec2.run_instances(
        ImageId=image, InstanceType=instance_type, MinCount=count, MaxCount=count, TagSpecifications=spec
    )
    return answer["Instances"]


def _fleet(url: str) -> dict[str, dict]:
    east, west = boto("ec2", url), boto("ec2", url, "eu-west-1")
    made = {
        "mon1": _launch(east, "m5.xlarge", {"Name": "mon1", "mevfleet:fleet": "prod", "mevfleet:roles": "monitoring"}),
        "eth1": _launch(east, "c5.4xlarge", {"Name": "eth1", "mevfleet:fleet": "prod", "mevfleet:chains": "ethereum"}),
        "l2": _launch(
            west,
            "r5.2xlarge",
            {"Name": "l2", "mevfleet:fleet": "prod", "mevfleet:chains": "base, optimism", **DEBIAN_USER},
        ),
    }
    _launch(east, "t3.micro", {"Name": "other", "mevfleet:fleet": "staging", "mevfleet:chains": "bsc"})
    stopped = _launch(east, "t3.micro", {"Name": "old", "mevfleet:fleet": "prod", "mevfleet:chains": "bsc"})
    east.stop_instances(InstanceIds=[stopped[0]["InstanceId"]])
    return {name: instances[0] for name, instances in made.items()}


def test_tagged_instances_become_a_valid_inventory(aws, tmp_path):
    instances = _fleet(aws.url)
    out, ansible = tmp_path / "prod.yml", tmp_path / "prod.aws_ec2.yml"
    result = CliRunner().invoke(
        main,
        ["inventory", "aws", "--fleet", "prod", "--region", "us-east-1", "--region", "eu-west-1",
         "-o", str(out), "--ansible", str(ansible)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert DUMMY_SECRET not in result.output

    inventory = load_inventory(out)
    assert sorted(inventory.hosts) == ["eth1", "l2", "mon1"]  # not the other fleet, not the stopped one
    for name, instance in instances.items():
        assert inventory.hosts[name].address == instance["PrivateIpAddress"]
    types = {
        t["InstanceType"]: t
        for t in boto("ec2", aws.url).describe_instance_types(InstanceTypes=["m5.xlarge", "c5.4xlarge"])[
            "InstanceTypes"
        ]
    }
    eth1 = inventory.hosts["eth1"]
    assert eth1.hardware.cpus == types["c5.4xlarge"]["VCpuInfo"]["DefaultVCpus"] == 16
    assert eth1.hardware.memory_gib == types["c5.4xlarge"]["MemoryInfo"]["SizeInMiB"] / 1024
    assert eth1.chains == ("ethereum",) and eth1.ssh.user == "admin"
    assert inventory.hosts["l2"].chains == ("optimism", "base") or inventory.hosts["l2"].chains == ("base", "optimism")
    assert inventory.hosts["l2"].ssh.user == "debian"
    assert inventory.hosts["mon1"].roles == ("monitoring",)

    # The same file passes the normal validate, and the CPU plan uses the instance type's vCPUs.
    validate = CliRunner().invoke(main, ["validate", "-i", str(out)])
    assert validate.exit_code == 0, validate.output
    plan = compile_plan(inventory)
    assert plan.hosts["eth1"].cpu.cpus == 16 and plan.hosts["eth1"].cpu.agent_cores == "14-15"

    config = yaml.safe_load(ansible.read_text())
    assert set(config) <= AWS_EC2_KEYS
    assert config["plugin"] == "amazon.aws.aws_ec2"
    assert config["regions"] == ["us-east-1", "eu-west-1"]
    assert config["filters"] == {"tag:mevfleet:fleet": "prod", "instance-state-name": "running"}
    assert config["compose"]["ansible_host"] == "private_ip_address"
    assert "c5.4xlarge" in config["compose"]["mevfleet_memory_gib"]


def test_base_inventory_keeps_its_fleet_settings_and_a_bad_tag_writes_nothing(aws, tmp_path):
    east = boto("ec2", aws.url)
    _launch(east, "m5.large", {"Name": "eth1", "mevfleet:fleet": "prod", "mevfleet:chains": "ethereum"})
    base = tmp_path / "base.yml"
    base.write_text("fleet: {name: prod, private_networks: [10.0.0.0/8], operator_allowlist: [198.51.100.7/32]}\n")
    out = tmp_path / "prod.yml"
    args = ["inventory", "aws", "--fleet", "prod", "--region", "us-east-1", "--base", str(base), "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--ssh-key", "~/.ssh/fleet"])
    assert result.exit_code == 0, result.output
    inventory = load_inventory(out)
    assert inventory.fleet.private_networks == ["10.0.0.0/8"]
    assert inventory.hosts["eth1"].ssh.key == "~/.ssh/fleet"

    _launch(east, "m5.large", {"Name": "bad1", "mevfleet:fleet": "prod", "mevfleet:chains": "dogecoin"})
    out.unlink()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "bad1" in result.output and "chains[0]" in result.output and "dogecoin" in result.output
    assert not out.exists()

    # A Name tag that is not a host name: Ansible would name the host by it as it is, so it is refused.
    ec2_bad = east.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["bad1"]}])
    east.terminate_instances(InstanceIds=[i["InstanceId"] for r in ec2_bad["Reservations"] for i in r["Instances"]])
    upper = _launch(east, "m5.large", {"Name": "ETH2", "mevfleet:fleet": "prod", "mevfleet:chains": "ethereum"})
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert upper[0]["InstanceId"] in result.output and "'ETH2' is not a host name" in result.output
    assert not out.exists()


def test_no_instance_is_a_clear_error(aws, tmp_path):
    out = tmp_path / "none.yml"
    result = CliRunner().invoke(main, ["inventory", "aws", "--fleet", "ghost", "--region", "us-east-1", "-o", str(out)])
    assert result.exit_code == 1
    assert "no running instance tagged mevfleet:fleet=ghost" in result.output
    assert not out.exists()


# Debian's `ansible` package (deploy/bootstrap.sh) ships ansible-core and the amazon.aws collection;
# it runs here under this venv's Python, whose boto3 honours AWS_ENDPOINT_URL (the moto server).
DEBIAN_ANSIBLE = Path("/usr/lib/python3/dist-packages")


@pytest.mark.skipif(
    not (DEBIAN_ANSIBLE / "ansible_collections/amazon/aws").is_dir() or not Path("/usr/bin/ansible-inventory").exists(),
    reason="Debian package ansible (ansible-core + the amazon.aws collection) not installed: deploy/bootstrap.sh",
)
def test_ansible_inventory_reads_the_rendered_aws_ec2_config_and_finds_the_same_hosts(aws, tmp_path):
    _fleet(aws.url)
    out, ansible = tmp_path / "prod.yml", tmp_path / "prod.aws_ec2.yml"
    result = CliRunner().invoke(
        main,
        ["inventory", "aws", "--fleet", "prod", "--region", "us-east-1", "--region", "eu-west-1",
         "-o", str(out), "--ansible", str(ansible), "--ssh-key", "~/.ssh/fleet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = tmp_path / "pythonpath"  # only ansible and its collections from Debian, nothing else of dist-packages
    path.mkdir()
    for name in ("ansible", "ansible_collections"):
        (path / name).symlink_to(DEBIAN_ANSIBLE / name)
    env = {
        **os.environ,
        "PYTHONPATH": str(path),
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_INVENTORY_ENABLED": "amazon.aws.aws_ec2",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",  # a config the plugin refuses fails the run
    }
    listed = subprocess.run(
        [sys.executable, "/usr/bin/ansible-inventory", "-i", str(ansible), "--list"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert DUMMY_SECRET not in listed.stdout + listed.stderr
    found = json.loads(listed.stdout)
    hostvars = found["_meta"]["hostvars"]
    inventory = load_inventory(out)
    # The same hosts as mevfleet's inventory (not the other fleet, not the stopped instance), same addresses.
    assert sorted(hostvars) == sorted(inventory.hosts) == ["eth1", "l2", "mon1"]
    for name, host in inventory.hosts.items():
        assert hostvars[name]["ansible_host"] == host.address
        assert hostvars[name]["ansible_user"] == host.ssh.user
        assert hostvars[name]["ansible_ssh_private_key_file"] == "~/.ssh/fleet"
        assert sorted(hostvars[name]["mevfleet_chains"]) == sorted(host.chains)
        # Ansible's (non-native) templating turns a float into its text: compared as numbers.
        assert float(hostvars[name]["mevfleet_memory_gib"]) == host.hardware.memory_gib
        assert int(hostvars[name]["mevfleet_cpus"]) == host.hardware.cpus
    assert found["mevfleet_role_monitoring"]["hosts"] == ["mon1"]
    assert sorted(found["mevfleet_role_node"]["hosts"]) == ["eth1", "l2"]
    assert found["mevfleet_chain_ethereum"]["hosts"] == ["eth1"]
