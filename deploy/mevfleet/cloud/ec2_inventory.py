"""`mevfleet inventory aws`: the fleet's EC2 instances, found by tag, as a mevfleet inventory.

Tags on each instance (values are comma-separated lists):
  mevfleet:fleet     the fleet's name (required; the filter)
  mevfleet:chains    chains the host runs, e.g. "ethereum,base"
  mevfleet:roles     "monitoring" for the monitoring/control host
  mevfleet:ssh-user  optional; the SSH user otherwise comes from --ssh-user (Debian AMIs: admin)
  Name               the host's name in the inventory (the instance id when absent; refused when it is
                     not a host name, since Ansible's aws_ec2 inventory would name the host by it as it is)

Hardware comes from the instance type (DescribeInstanceTypes: default vCPUs and memory), so the plan's CPU
split and the hugepages check see the real machine. The same settings render the Ansible engine's
`amazon.aws.aws_ec2` inventory configuration (`ansible_config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InventoryError
from ..inventory import parse_inventory
from ..plan import compile_plan
from .aws import Aws, CloudError, describe_error

TAG_FLEET = "mevfleet:fleet"
TAG_CHAINS = "mevfleet:chains"
TAG_ROLES = "mevfleet:roles"
TAG_SSH_USER = "mevfleet:ssh-user"
HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
TAG_FILTER = re.compile(r"^(?P<key>[^=]+)=(?P<value>.+)$")


class Ec2Settings(BaseModel):
    """What to look for and how to reach it; the same settings make both inventories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fleet: str = Field(min_length=1)
    regions: tuple[str, ...] = Field(min_length=1)
    tags: dict[str, str] = {}  # further tag filters, key -> value
    address: Literal["private", "public"] = "private"
    ssh_user: str = Field(default="admin", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_key: str | None = None

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"Name": f"tag:{TAG_FLEET}", "Values": [self.fleet]},
            {"Name": "instance-state-name", "Values": ["running"]},
            *({"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(self.tags.items())),
        ]


def parse_tag_filters(values: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for value in values:
        match = TAG_FILTER.match(value)
        if not match:
            raise CloudError(f"--tag {value!r}: expected KEY=VALUE")
        tags[match["key"]] = match["value"]
    return tags


class Ec2Host(BaseModel):
    name: str
    instance_id: str
    region: str
    instance_type: str
    address: str
    chains: list[str]
    roles: list[str]
    ssh_user: str
    cpus: int
    memory_gib: float


def _split(value: str | None) -> list[str]:
    return [v for v in re.split(r"[,\s]+", value or "") if v]


def discover(aws: Aws, settings: Ec2Settings) -> list[Ec2Host]:
    """Every running instance of the fleet in the given regions, with its instance type's hardware."""
    hosts: list[Ec2Host] = []
    for region in settings.regions:
        ec2 = aws.client("ec2", region)
        try:
            instances = [
                i
                for page in ec2.get_paginator("describe_instances").paginate(Filters=settings.filters())
                for r in page["Reservations"]
                for i in r["Instances"]
            ]
            types = _instance_types(ec2, sorted({i["InstanceType"] for i in instances}))
        except Exception as exc:
            raise CloudError(f"{region}: {describe_error(exc)}") from None
        for instance in instances:
            hosts.append(_host(instance, region, types, settings))
    names: dict[str, str] = {}
    for host in hosts:
        if host.name in names:
            raise CloudError(f"two instances are named {host.name!r}: {names[host.name]} and {host.instance_id}")
        names[host.name] = host.instance_id
    return sorted(hosts, key=lambda h: h.name)


def _instance_types(ec2, names: list[str]) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for start in range(0, len(names), 100):  # the API's limit per request
        answer = ec2.describe_instance_types(InstanceTypes=names[start : start + 100])
        for t in answer["InstanceTypes"]:
            found[t["InstanceType"]] = (t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"] / 1024)
    return found


def _host(instance: dict[str, Any], region: str, types: dict[str, tuple[int, float]], s: Ec2Settings) -> Ec2Host:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    iid = instance["InstanceId"]
    name = tags.get("Name", "")
    if name and not HOST_NAME.match(name):
        # Ansible's aws_ec2 inventory names it by the tag as it is: refusing keeps both inventories equal.
        raise CloudError(
            f"{iid} ({region}): its Name tag {name!r} is not a host name (lowercase letters, digits, '-'): "
            "fix the tag, or remove it to name the host by its instance id"
        )
    key = "PrivateIpAddress" if s.address == "private" else "PublicIpAddress"
    address = instance.get(key)
    if not address:
        raise CloudError(f"{iid} ({region}) has no {s.address} address")
    if instance["InstanceType"] not in types:
        raise CloudError(f"{iid}: instance type {instance['InstanceType']} unknown to DescribeInstanceTypes")
    cpus, memory = types[instance["InstanceType"]]
    return Ec2Host(
        name=name or iid,
        instance_id=iid,
        region=region,
        instance_type=instance["InstanceType"],
        address=address,
        chains=_split(tags.get(TAG_CHAINS)),
        roles=_split(tags.get(TAG_ROLES)),
        ssh_user=tags.get(TAG_SSH_USER, s.ssh_user),
        cpus=cpus,
        memory_gib=round(memory, 2),
    )


def inventory_document(hosts: list[Ec2Host], settings: Ec2Settings, base: dict[str, Any] | None = None) -> dict:
    """A mevfleet inventory: the base's fleet/defaults/groups, with the discovered hosts added."""
    doc: dict[str, Any] = {k: v for k, v in (base or {}).items() if k != "hosts"}
    doc.setdefault("fleet", {}).setdefault("name", settings.fleet)
    entries: dict[str, Any] = dict((base or {}).get("hosts") or {})
    for h in hosts:
        ssh: dict[str, Any] = {"user": h.ssh_user}
        if settings.ssh_key:
            ssh["key"] = settings.ssh_key
        entry: dict[str, Any] = {"address": h.address, "ssh": ssh, "chains": h.chains}
        if h.roles:
            entry["roles"] = h.roles
        entry["hardware"] = {"cpus": h.cpus, "memory_gib": h.memory_gib}
        entries[h.name] = entry
    doc["hosts"] = entries
    return doc


def write_inventory(doc: dict[str, Any], hosts: list[Ec2Host], out: Path) -> str:
    """Validate the inventory exactly as `mevfleet validate` does, then write it; nothing is written if refused."""
    header = "# Written by `mevfleet inventory aws` from EC2 (edit the instances' tags, not this file):\n" + "".join(
        f"#   {h.name}: {h.instance_id} {h.region} {h.instance_type}\n" for h in hosts
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    inventory = parse_inventory(text, str(out))  # raises InventoryError naming host and field
    compile_plan(inventory)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return text


# The amazon.aws.aws_ec2 plugin's documented options (amazon.aws 10.x); a rendered key outside this set
# is a bug in the renderer (tests/unit/test_cloud_inventory.py).
AWS_EC2_KEYS = frozenset(
    {
        "plugin", "regions", "filters", "include_filters", "exclude_filters", "hostnames", "compose", "groups",
        "keyed_groups", "strict", "strict_permissions", "leading_separator", "hostvars_prefix", "hostvars_suffix",
        "allow_duplicated_hosts", "use_contrib_script_compatible_sanitization",
        "use_contrib_script_compatible_ec2_tag_keys", "use_ssm_inventory", "include_extra_api_calls",
        "iam_role_arn", "endpoint_url", "profile", "access_key", "secret_key", "session_token", "region",
        "cache", "cache_plugin", "cache_timeout", "cache_connection", "cache_prefix", "route53_enabled",
        "route53_hostnames", "route53_excluded_zones",
    }
)  # fmt: skip


def _tag_list(tag: str, default: str) -> str:
    # The same reading as `_split`: items separated by commas and/or blanks.
    return f"tags.get('{tag}', '{default}') | regex_findall('[^,\\s]+')"


def ansible_config(settings: Ec2Settings, hosts: list[Ec2Host]) -> str:
    """The amazon.aws.aws_ec2 inventory (save as <name>.aws_ec2.yml) selecting the same instances."""
    memory = {h.instance_type: h.memory_gib for h in hosts}
    cpus = {h.instance_type: h.cpus for h in hosts}
    address = "private_ip_address" if settings.address == "private" else "public_ip_address"
    config: dict[str, Any] = {
        "plugin": "amazon.aws.aws_ec2",
        "regions": list(settings.regions),
        "filters": {f["Name"]: f["Values"][0] for f in settings.filters()},
        "hostnames": ["tag:Name", "instance-id"],
        "compose": {
            "ansible_host": address,
            "ansible_user": f"tags.get('{TAG_SSH_USER}', '{settings.ssh_user}')",
            "mevfleet_chains": _tag_list(TAG_CHAINS, ""),
            # The figures DescribeInstanceTypes gave this run (default vCPUs, memory), as in mevfleet's
            # inventory; an instance type first seen later: its CPU options, and no memory figure.
            "mevfleet_cpus": f"{cpus!r}.get(instance_type, cpu_options.core_count * cpu_options.threads_per_core "
            "if cpu_options is defined else None)",
            "mevfleet_memory_gib": f"{memory!r}.get(instance_type)",
        },
        "keyed_groups": [
            {"key": _tag_list(TAG_ROLES, "node"), "prefix": "mevfleet_role"},
            {"key": _tag_list(TAG_CHAINS, ""), "prefix": "mevfleet_chain"},
        ],
        "strict": True,
    }
    if settings.ssh_key:
        config["compose"]["ansible_ssh_private_key_file"] = repr(settings.ssh_key)
    return "# Rendered by `mevfleet inventory aws`; the file name must end in aws_ec2.yml\n" + yaml.safe_dump(
        config, sort_keys=False
    )


def load_base(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CloudError(f"--base {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise CloudError(f"--base {path}: expected a mapping (an inventory)")
    return doc


__all__ = ["Ec2Settings", "InventoryError", "ansible_config", "discover", "inventory_document", "write_inventory"]
