"""`mevfleet cloud plan|apply`: one EC2 security group per host role, mirroring the host plan's firewall.

The nftables ruleset on each host stays the first line; the security group is the second, built from the
same per-host firewall plan (ports by exposure: public P2P, fleet, monitoring, operator, and SSH from
`fleet.ssh_sources`). A role's group admits the union of what its hosts' plans open.

Safety: a group is touched only when it carries our ownership tags (`mevfleet:managed-by` and the fleet's
name); any other group of that name stops the run before anything changes. A rule on a host's SSH port is
never revoked, so an apply can not lock the operator out.

Attachment: each inventory host that is an EC2 instance of the fleet (tag `mevfleet:fleet`, in the VPC;
matched by its Name tag or instance id, else by its address) gets its role's group. Groups the operator
put on the instance are kept; only our group of another role (a host whose role changed) is taken off, in
the same call that adds the new one, after that group's rules are in place.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..model import FleetPlan, HostPlan
from .aws import Aws, CloudError, describe_error

TAG_MANAGED = "mevfleet:managed-by"
TAG_FLEET = "mevfleet:fleet"
TAG_ROLE = "mevfleet:role"
ANYWHERE = ("0.0.0.0/0", "::/0")
DESCRIPTION_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789. _-:/()#,@[]+=&;{}!$*")


class Rule(BaseModel):
    """One ingress opening: the identity is (protocol, ports, cidr); the description is a label."""

    model_config = ConfigDict(frozen=True)

    protocol: Literal["tcp", "udp"]
    from_port: int
    to_port: int
    cidr: str
    description: str = ""

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.protocol, self.from_port, self.to_port, self.cidr)

    def covers(self, port: int) -> bool:
        return self.protocol == "tcp" and self.from_port <= port <= self.to_port

    def text(self) -> str:
        ports = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol}/{ports} from {self.cidr}" + (f" ({self.description})" if self.description else "")


class GroupPlan(BaseModel):
    role: str
    name: str
    hosts: tuple[str, ...]
    ssh_ports: tuple[int, ...]
    rules: tuple[Rule, ...]


class GroupDiff(BaseModel):
    group: GroupPlan
    group_id: str | None  # None: the group does not exist yet
    add: tuple[Rule, ...]
    remove: tuple[Rule, ...]
    kept_ssh: tuple[Rule, ...]  # present, not planned, kept because they open SSH

    @property
    def changes(self) -> int:
        return len(self.add) + len(self.remove) + (self.group_id is None)


def host_role(host: HostPlan) -> str:
    return "monitoring" if "monitoring" in host.roles else "node"


def _description(text: str) -> str:
    return "".join(c if c in DESCRIPTION_CHARS else " " for c in text)[:255]


def _ports(spec: str) -> tuple[int, int]:
    first, _, last = spec.partition("-")
    return int(first), int(last or first)


def host_rules(host: HostPlan) -> list[Rule]:
    """The openings of one host's firewall plan, as security-group rules."""
    rules = []
    ssh_sources = host.firewall.ssh_sources or ANYWHERE
    for cidr in ssh_sources:
        port = host.firewall.ssh_port
        rules.append(Rule(protocol="tcp", from_port=port, to_port=port, cidr=cidr, description="ssh: operators"))
    for fw in host.firewall.rules:
        for spec in fw.ports:
            first, last = _ports(spec)
            for cidr in fw.sources or ANYWHERE:
                network = str(ipaddress.ip_network(cidr, strict=False))
                rules.append(Rule(protocol=fw.protocol, from_port=first, to_port=last, cidr=network,
                                  description=_description(fw.comment)))  # fmt: skip
    return rules


def desired_groups(fleet: FleetPlan, fleet_name: str) -> list[GroupPlan]:
    by_role: dict[str, list[HostPlan]] = {}
    for host in fleet.hosts.values():
        by_role.setdefault(host_role(host), []).append(host)
    groups = []
    for role, hosts in sorted(by_role.items()):
        merged: dict[tuple[str, int, int, str], Rule] = {}
        for host in hosts:
            for rule in host_rules(host):
                if rule.key in merged and merged[rule.key].description != rule.description:
                    # Two hosts open the same port for different services: keep both names in the label.
                    joined = _description(f"{merged[rule.key].description}; {rule.description}")
                    merged[rule.key] = rule.model_copy(update={"description": joined})
                else:
                    merged.setdefault(rule.key, rule)
        groups.append(
            GroupPlan(
                role=role,
                name=f"mevfleet-{fleet_name}-{role}",
                hosts=tuple(h.name for h in hosts),
                ssh_ports=tuple(sorted({h.firewall.ssh_port for h in hosts})),
                rules=tuple(sorted(merged.values(), key=lambda r: r.key)),
            )
        )
    return groups


def _current_rules(group: dict[str, Any]) -> list[Rule]:
    rules = []
    for perm in group.get("IpPermissions", []):
        if perm.get("IpProtocol") not in ("tcp", "udp"):
            continue  # not a kind of rule the plan makes; left alone
        for r in perm.get("IpRanges", []):
            rules.append(Rule(protocol=perm["IpProtocol"], from_port=perm["FromPort"], to_port=perm["ToPort"],
                              cidr=r["CidrIp"], description=r.get("Description", "")))  # fmt: skip
        for r in perm.get("Ipv6Ranges", []):
            rules.append(Rule(protocol=perm["IpProtocol"], from_port=perm["FromPort"], to_port=perm["ToPort"],
                              cidr=r["CidrIpv6"], description=r.get("Description", "")))  # fmt: skip
    return rules


def default_vpc(aws: Aws) -> str:
    vpcs = aws.client("ec2").describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise CloudError("no default VPC in this region: pass --vpc-id")
    return vpcs[0]["VpcId"]


def diff(aws: Aws, fleet: FleetPlan, fleet_name: str, vpc_id: str) -> list[GroupDiff]:
    """What apply would change, per group. Refuses (CloudError) a group of our name that we do not own."""
    ec2 = aws.client("ec2")
    plans = desired_groups(fleet, fleet_name)
    try:
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": [g.name for g in plans]},
            ]
        )["SecurityGroups"]
    except Exception as exc:
        raise CloudError(describe_error(exc)) from None
    existing = {g["GroupName"]: g for g in found}
    diffs = []
    for plan in plans:
        group = existing.get(plan.name)
        if group is None:
            diffs.append(GroupDiff(group=plan, group_id=None, add=plan.rules, remove=(), kept_ssh=()))
            continue
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        if tags.get(TAG_MANAGED) != "mevfleet" or tags.get(TAG_FLEET) != fleet_name:
            raise CloudError(
                f"security group {plan.name} ({group['GroupId']}) is not owned by mevfleet fleet {fleet_name!r} "
                f"(tags {TAG_MANAGED}=mevfleet and {TAG_FLEET}={fleet_name} missing); refusing to change it. "
                "Nothing was changed."
            )
        current = {r.key: r for r in _current_rules(group)}
        wanted = {r.key: r for r in plan.rules}
        extra = [current[k] for k in sorted(set(current) - set(wanted))]
        kept = tuple(r for r in extra if any(r.covers(p) for p in plan.ssh_ports))
        diffs.append(
            GroupDiff(
                group=plan,
                group_id=group["GroupId"],
                add=tuple(wanted[k] for k in sorted(set(wanted) - set(current))),
                remove=tuple(r for r in extra if r not in kept),
                kept_ssh=kept,
            )
        )
    return diffs


class Attachment(BaseModel):
    """One instance's groups: its role's group is added if missing, our other roles' groups removed."""

    host: str
    instance_id: str
    group: str  # the role's group name
    current: tuple[str, ...]  # group ids on the instance now
    attach: bool  # the role's group is not on it yet
    detach: tuple[str, ...]  # ids of our groups of other roles on it

    @property
    def changes(self) -> int:
        return int(self.attach) + len(self.detach)


class Attachments(BaseModel):
    found: tuple[Attachment, ...]
    not_instances: tuple[str, ...]  # inventory hosts that are no running/stopped instance of the fleet here

    @property
    def changes(self) -> int:
        return sum(a.changes for a in self.found)


def _fleet_instances(aws: Aws, fleet_name: str, vpc_id: str) -> list[dict[str, Any]]:
    ec2 = aws.client("ec2")
    filters = [
        {"Name": f"tag:{TAG_FLEET}", "Values": [fleet_name]},
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    try:
        pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    except Exception as exc:
        raise CloudError(describe_error(exc)) from None


def _match(host: HostPlan, instances: list[dict[str, Any]]) -> dict[str, Any] | None:
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        if host.name in (tags.get("Name"), instance["InstanceId"]):
            return instance
    for instance in instances:
        if host.address in (instance.get("PrivateIpAddress"), instance.get("PublicIpAddress")):
            return instance
    return None


def attachments(aws: Aws, fleet: FleetPlan, fleet_name: str, vpc_id: str, diffs: list[GroupDiff]) -> Attachments:
    """Which instance gets which group; `diffs` (from `diff`) has already refused groups we do not own."""
    instances = _fleet_instances(aws, fleet_name, vpc_id)
    ids = {d.group.name: d.group_id for d in diffs}
    found, missing = [], []
    for host in fleet.hosts.values():
        instance = _match(host, instances)
        if instance is None:
            missing.append(host.name)
            continue
        mine = f"mevfleet-{fleet_name}-{host_role(host)}"
        current = tuple(g["GroupId"] for g in instance.get("SecurityGroups", []))
        others = {ids[name] for name in ids if name != mine and ids[name]}
        found.append(
            Attachment(
                host=host.name,
                instance_id=instance["InstanceId"],
                group=mine,
                current=current,
                attach=ids.get(mine) is None or ids[mine] not in current,
                detach=tuple(g for g in current if g in others),
            )
        )
    return Attachments(found=tuple(found), not_instances=tuple(missing))


def format_attachments(att: Attachments) -> list[str]:
    lines = ["instances"]
    for a in att.found:
        changes = [f"+ {a.group}"] if a.attach else []
        changes += [f"- {g}" for g in a.detach]
        lines.append(f"  {a.host} ({a.instance_id}): {', '.join(changes) if changes else 'no change'}")
    lines += [f"  {h}: no EC2 instance of this fleet in the VPC: no group attached" for h in att.not_instances]
    return lines


def attach(aws: Aws, att: Attachments, group_ids: dict[str, str]) -> int:
    """Put each host's role group on its instance (ModifyInstanceAttribute replaces the set: the operator's
    own groups are passed back unchanged). Returns the changes made."""
    ec2 = aws.client("ec2")
    made = 0
    for a in att.found:
        if not a.changes:
            continue
        wanted = [g for g in a.current if g not in a.detach]
        if group_ids[a.group] not in wanted:
            wanted.append(group_ids[a.group])
        try:
            ec2.modify_instance_attribute(InstanceId=a.instance_id, Groups=wanted)
        except Exception as exc:
            problem = f"{a.host} ({a.instance_id}): {describe_error(exc)}"
            raise CloudError(f"{problem} ({made} change(s) made before)") from None
        made += a.changes
    return made


def format_diff(diffs: list[GroupDiff]) -> list[str]:
    lines = []
    for d in diffs:
        state = "new" if d.group_id is None else d.group_id
        lines.append(f"{d.group.name} ({state}; role {d.group.role}: {', '.join(d.group.hosts)})")
        lines += [f"  + {r.text()}" for r in d.add]
        lines += [f"  - {r.text()}" for r in d.remove]
        lines += [f"  = {r.text()}: kept, it opens SSH" for r in d.kept_ssh]
        if not d.changes:
            lines.append("  no change")
    return lines


def _permissions(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    perms: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in rules:
        perm = perms.setdefault(
            (r.protocol, r.from_port, r.to_port),
            {"IpProtocol": r.protocol, "FromPort": r.from_port, "ToPort": r.to_port, "IpRanges": [], "Ipv6Ranges": []},
        )
        if ipaddress.ip_network(r.cidr).version == 4:
            perms_entry = {"CidrIp": r.cidr}
            if r.description:
                perms_entry["Description"] = r.description
            perm["IpRanges"].append(perms_entry)
        else:
            entry = {"CidrIpv6": r.cidr}
            if r.description:
                entry["Description"] = r.description
            perm["Ipv6Ranges"].append(entry)
    return [{k: v for k, v in p.items() if v != []} for p in perms.values()]


def apply(aws: Aws, diffs: list[GroupDiff], fleet_name: str, vpc_id: str) -> tuple[int, dict[str, str]]:
    """Create missing groups, authorize missing rules, revoke extra ones (never SSH). Returns the changes
    made and every group's id by name."""
    ec2 = aws.client("ec2")
    made = 0
    ids: dict[str, str] = {}
    for d in diffs:
        try:
            group_id = d.group_id
            if group_id is None:
                group_id = ec2.create_security_group(
                    GroupName=d.group.name,
                    Description=f"mevfleet {fleet_name} {d.group.role} hosts (managed by mevfleet cloud apply)",
                    VpcId=vpc_id,
                    TagSpecifications=[
                        {
                            "ResourceType": "security-group",
                            "Tags": [
                                {"Key": TAG_MANAGED, "Value": "mevfleet"},
                                {"Key": TAG_FLEET, "Value": fleet_name},
                                {"Key": TAG_ROLE, "Value": d.group.role},
                                {"Key": "Name", "Value": d.group.name},
                            ],
                        }
                    ],
                )["GroupId"]
                made += 1
            # Open before closing: a port moving between rules is never closed in between.
            if d.add:
                ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(d.add))
            if d.remove:
                ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=_permissions(d.remove))
            made += len(d.add) + len(d.remove)
            ids[d.group.name] = group_id
        except CloudError:
            raise
        except Exception as exc:
            raise CloudError(f"{d.group.name}: {describe_error(exc)} ({made} change(s) made before)") from None
    return made, ids
