"""`mevfleet cloud plan|apply` against a real EC2 API (moto server on loopback): one group per host role,
with the host plan's ports by exposure; a second apply changes nothing; drift is repaired except a rule
that opens SSH; a group of our name that we do not own stops the run before anything changes."""

from __future__ import annotations

from click.testing import CliRunner

from mevfleet.cli import main
from mevfleet.cloud.security_groups import host_rules
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

from .conftest import DUMMY_SECRET, boto

INVENTORY = """
fleet:
  name: sgtest
  private_networks: [10.20.0.0/16]
  operator_allowlist: [198.51.100.7/32]
  ssh_sources: [203.0.113.0/24]
hosts:
  mon1: {address: 10.20.0.10, roles: [monitoring]}
  eth1: {address: 10.20.0.11, chains: [ethereum]}
  l2a: {address: 10.20.0.12, chains: [base, optimism]}
"""


ANYWHERE = {"CidrIp": "0.0.0.0/0"}


def _groups(url: str) -> dict[str, set[tuple[str, int, int, str]]]:
    found = boto("ec2", url).describe_security_groups(Filters=[{"Name": "tag:mevfleet:fleet", "Values": ["sgtest"]}])
    rules = {}
    for group in found["SecurityGroups"]:
        rules[group["GroupName"]] = {
            (p["IpProtocol"], p["FromPort"], p["ToPort"], r.get("CidrIp") or r.get("CidrIpv6"))
            for p in group["IpPermissions"]
            for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])
        }
    return rules


def _run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert DUMMY_SECRET not in result.output
    return result


def test_groups_converge_and_a_second_apply_changes_nothing(aws, tmp_path):
    inv = tmp_path / "sg.yml"
    inv.write_text(INVENTORY)
    plan = _run("cloud", "plan", "-i", str(inv))
    assert plan.exit_code == 0, plan.output
    assert "mevfleet-sgtest-node (new" in plan.output and "mevfleet-sgtest-monitoring (new" in plan.output
    first = _run("cloud", "apply", "-i", str(inv))
    assert first.exit_code == 0, first.output

    fleet = compile_plan(load_inventory(inv))
    groups = _groups(aws.url)
    for role, hosts in {"node": ["eth1", "l2a"], "monitoring": ["mon1"]}.items():
        wanted = {r.key for h in hosts for r in host_rules(fleet.hosts[h])}
        assert groups[f"mevfleet-sgtest-{role}"] == wanted
    node = groups["mevfleet-sgtest-node"]
    # Exposure by exposure, from the host plan: P2P from anywhere, SSH from ssh_sources only, the agent's
    # metrics from the monitoring host only, the agent's API from the control host (mon1) only.
    assert ("tcp", 30303, 30303, "0.0.0.0/0") in node and ("udp", 30303, 30303, "::/0") in node
    assert ("tcp", 22, 22, "203.0.113.0/24") in node and not any(r[1] == 22 and r[3] == "0.0.0.0/0" for r in node)
    assert ("tcp", 9787, 9787, "10.20.0.10/32") in node
    assert {r[3] for r in node if r[1] <= 8780 <= r[2]} == {"10.20.0.10/32"}
    assert ("tcp", 9090, 9090, "198.51.100.7/32") in groups["mevfleet-sgtest-monitoring"]

    again = _run("cloud", "apply", "-i", str(inv))
    assert again.exit_code == 0 and "0 change(s) made" in again.output, again.output
    assert _run("cloud", "plan", "-i", str(inv)).output.strip().endswith("0 change(s) to make in " + _vpc(aws.url))


def _vpc(url: str) -> str:
    return boto("ec2", url).describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def test_drift_is_repaired_but_an_ssh_rule_is_never_removed(aws, tmp_path):
    inv = tmp_path / "sg.yml"
    inv.write_text(INVENTORY)
    assert _run("cloud", "apply", "-i", str(inv)).exit_code == 0
    ec2 = boto("ec2", aws.url)
    gid = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["mevfleet-sgtest-node"]}])[
        "SecurityGroups"
    ][0]["GroupId"]
    # By hand: PostgreSQL opened to the world, the P2P port closed, and an operator's own SSH opening.
    ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "192.0.2.55/32"}]},
        ],
    )
    ec2.revoke_security_group_ingress(
        GroupId=gid,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 30303, "ToPort": 30303, "IpRanges": [ANYWHERE]}],
    )
    plan = _run("cloud", "plan", "-i", str(inv))
    assert "+ tcp/30303 from 0.0.0.0/0" in plan.output
    assert "- tcp/5432 from 0.0.0.0/0" in plan.output
    assert "= tcp/22 from 192.0.2.55/32: kept, it opens SSH" in plan.output
    assert "2 change(s) to make" in plan.output

    assert _run("cloud", "apply", "-i", str(inv)).exit_code == 0
    node = _groups(aws.url)["mevfleet-sgtest-node"]
    assert ("tcp", 30303, 30303, "0.0.0.0/0") in node
    assert not any(r[1] == 5432 for r in node)
    assert ("tcp", 22, 22, "192.0.2.55/32") in node
    assert "0 change(s) made" in _run("cloud", "apply", "-i", str(inv)).output


def test_a_group_it_does_not_own_is_refused_and_nothing_changes(aws, tmp_path):
    inv = tmp_path / "sg.yml"
    inv.write_text(INVENTORY)
    ec2 = boto("ec2", aws.url)
    ec2.create_security_group(GroupName="mevfleet-sgtest-node", Description="someone else's", VpcId=_vpc(aws.url))
    result = _run("cloud", "apply", "-i", str(inv))
    assert result.exit_code == 1
    assert "mevfleet-sgtest-node" in result.output and "not owned by mevfleet" in result.output
    assert "Nothing was changed" in result.output
    names = {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert "mevfleet-sgtest-monitoring" not in names  # the other role's group was not created either
    foreign = ec2.describe_security_groups(GroupNames=["mevfleet-sgtest-node"])["SecurityGroups"][0]
    assert foreign["IpPermissions"] == []


def _instance_groups(url: str, instance_id: str) -> set[str]:
    reservations = boto("ec2", url).describe_instances(InstanceIds=[instance_id])["Reservations"]
    return {g["GroupName"] for g in reservations[0]["Instances"][0]["SecurityGroups"]}


def test_each_instance_gets_its_roles_group_and_keeps_the_operators_own(aws, tmp_path):
    ec2 = boto("ec2", aws.url)
    vpc = _vpc(aws.url)
    own = ec2.create_security_group(GroupName="operator-bastion", Description="the operator's", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def launch(tags: dict[str, str]) -> dict:
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        return ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                 SecurityGroupIds=[own], TagSpecifications=spec)["Instances"][0]  # fmt: skip

    mon1 = launch({"Name": "mon1", "mevfleet:fleet": "sgtest"})
    eth1 = launch({"Name": "eth1", "mevfleet:fleet": "sgtest"})
    l2a = launch({"mevfleet:fleet": "sgtest"})  # no Name tag: found by its address
    stranger = launch({"Name": "eth1", "mevfleet:fleet": "another"})  # same name, another fleet: left alone
    inventory = f"""
fleet: {{name: sgtest, private_networks: [172.31.0.0/16], ssh_sources: [203.0.113.0/24]}}
hosts:
  mon1: {{address: {mon1["PrivateIpAddress"]}, roles: [monitoring]}}
  eth1: {{address: {eth1["PrivateIpAddress"]}, chains: [ethereum]}}
  l2a: {{address: {l2a["PrivateIpAddress"]}, chains: [base]}}
  bm1: {{address: 192.0.2.10, chains: [bsc]}}
"""
    inv = tmp_path / "sg.yml"
    inv.write_text(inventory)
    plan = _run("cloud", "plan", "-i", str(inv))
    assert f"eth1 ({eth1['InstanceId']}): + mevfleet-sgtest-node" in plan.output, plan.output
    assert f"l2a ({l2a['InstanceId']}): + mevfleet-sgtest-node" in plan.output
    assert f"mon1 ({mon1['InstanceId']}): + mevfleet-sgtest-monitoring" in plan.output
    assert "bm1: no EC2 instance of this fleet in the VPC" in plan.output

    assert _run("cloud", "apply", "-i", str(inv)).exit_code == 0
    assert _instance_groups(aws.url, eth1["InstanceId"]) == {"operator-bastion", "mevfleet-sgtest-node"}
    assert _instance_groups(aws.url, l2a["InstanceId"]) == {"operator-bastion", "mevfleet-sgtest-node"}
    assert _instance_groups(aws.url, mon1["InstanceId"]) == {"operator-bastion", "mevfleet-sgtest-monitoring"}
    assert _instance_groups(aws.url, stranger["InstanceId"]) == {"operator-bastion"}
    again = _run("cloud", "apply", "-i", str(inv))
    assert "0 change(s) made" in again.output and f"l2a ({l2a['InstanceId']}): no change" in again.output

    # l2a becomes a monitoring host: its node group is swapped for the monitoring one in one call, the
    # operator's group stays.
    inv.write_text(inventory.replace("chains: [base]", "roles: [monitoring]"))
    moved = _run("cloud", "apply", "-i", str(inv))
    assert f"l2a ({l2a['InstanceId']}): + mevfleet-sgtest-monitoring, - sg-" in moved.output, moved.output
    assert _instance_groups(aws.url, l2a["InstanceId"]) == {"operator-bastion", "mevfleet-sgtest-monitoring"}
    assert _instance_groups(aws.url, eth1["InstanceId"]) == {"operator-bastion", "mevfleet-sgtest-node"}
    assert "0 change(s) made" in _run("cloud", "apply", "-i", str(inv)).output
