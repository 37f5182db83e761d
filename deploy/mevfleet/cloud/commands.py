"""Click commands for the cloud parts: `inventory aws`, `cloud plan|apply`, `backup`, `restore`.

Registered on the main CLI by cli.py; the logic lives in the modules beside this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import INVENTORY_DIR
from ..errors import InventoryError
from .errors import CloudError

FILE = click.Path(dir_okay=False, path_type=Path)
# The same -i as the main CLI's (defined here too: cli.py imports this module while it loads).
inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=FILE,
    default=INVENTORY_DIR / "devnet.yml",
    show_default=True,
    help="Inventory YAML file.",
)
endpoint_option = click.option(
    "--endpoint-url",
    default=None,
    help="AWS API endpoint (default: boto3's, or $AWS_ENDPOINT_URL), e.g. a local moto server.",
)


def fail(message: str, code: int = 1) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


@click.group("inventory")
def inventory_group() -> None:
    """Inventories from other sources (EC2)."""


@inventory_group.command("aws")
@click.option("--fleet", required=True, help="Value of the instances' mevfleet:fleet tag.")
@click.option("--region", "regions", multiple=True, required=True, help="Region to search (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Further tag filter KEY=VALUE (repeatable).")
@click.option("--public", is_flag=True, help="Use public addresses (default: private).")
@click.option("--ssh-user", default="admin", show_default=True, help="SSH user unless the mevfleet:ssh-user tag says.")
@click.option("--ssh-key", default=None, help="SSH private key file for every host.")
@click.option(
    "--base", type=click.Path(dir_okay=False, path_type=Path), help="Inventory whose fleet/defaults/groups to keep."
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Inventory to write."
)
@click.option(
    "--ansible", type=click.Path(dir_okay=False, path_type=Path), help="Also write the aws_ec2 plugin config."
)
@endpoint_option
def inventory_aws(fleet, regions, tags, public, ssh_user, ssh_key, base, output, ansible, endpoint_url) -> None:
    """Write an inventory of the fleet's running EC2 instances (found by tag), validated like `validate`."""
    from .ec2_inventory import (
        Ec2Settings,
        ansible_config,
        discover,
        inventory_document,
        load_base,
        parse_tag_filters,
        write_inventory,
    )

    try:
        address = "public" if public else "private"
        settings = Ec2Settings(
            fleet=fleet,
            regions=regions,
            tags=parse_tag_filters(tags),
            address=address,
            ssh_user=ssh_user,
            ssh_key=ssh_key,
        )
        from .aws import Aws

        aws = Aws(region=regions[0], endpoint_url=endpoint_url)
        hosts = discover(aws, settings)
        if not hosts:
            fail(f"no running instance tagged mevfleet:fleet={fleet} in {', '.join(regions)}")
        doc = inventory_document(hosts, settings, load_base(base))
        write_inventory(doc, hosts, output)
    except CloudError as exc:
        fail(str(exc))
    except InventoryError as exc:
        fail(f"the discovered inventory is invalid (nothing written):\n{exc}", 2)
    except ValueError as exc:  # pydantic: a bad option value
        fail(str(exc).splitlines()[0] + ": " + str(exc).splitlines()[-1].strip(), 2)
    for h in hosts:
        roles = ",".join(h.roles) or "node"
        click.echo(f"{h.name:16} {h.address:15} {h.instance_type:14} {h.cpus:>3} vCPU {h.memory_gib:>7g} GiB  "
                   f"{roles:10} {','.join(h.chains) or '-'}")  # fmt: skip
    click.echo(f"{output}: {len(hosts)} host(s) written and validated; use it with -i {output}")
    if ansible:
        ansible.write_text(ansible_config(settings, hosts))
        click.echo(f"{ansible}: amazon.aws.aws_ec2 inventory for the Ansible engine")


@click.group("cloud")
def cloud_group() -> None:
    """Security groups that mirror the host plan's firewall (one per host role)."""


def _sg_context(inventory_path: Path, region: str | None, endpoint_url: str | None, vpc_id: str | None):
    from ..cli import _load
    from .aws import Aws
    from .security_groups import default_vpc

    inventory, plan = _load(inventory_path)
    aws = Aws(region=region, endpoint_url=endpoint_url)
    try:
        vpc = vpc_id or default_vpc(aws)
    except CloudError as exc:
        fail(str(exc))
    except Exception as exc:
        from .aws import describe_error

        fail(describe_error(exc))
    return inventory, plan, aws, vpc


def _sg_options(f):
    f = click.option("--vpc-id", default=None, help="VPC of the groups (default: the region's default VPC).")(f)
    f = click.option("--region", default=None, help="AWS region (default: boto3's).")(f)
    f = endpoint_option(f)
    return inventory_option(f)


@cloud_group.command("plan")
@_sg_options
def cloud_plan(inventory_path: Path, region, endpoint_url, vpc_id) -> None:
    """Print what `cloud apply` would change in the fleet's security groups and their instances."""
    from .security_groups import attachments, diff, format_attachments, format_diff

    inventory, plan, aws, vpc = _sg_context(inventory_path, region, endpoint_url, vpc_id)
    try:
        diffs = diff(aws, plan, inventory.fleet.name, vpc)
        att = attachments(aws, plan, inventory.fleet.name, vpc, diffs)
    except CloudError as exc:
        fail(str(exc))
    for line in [*format_diff(diffs), *format_attachments(att)]:
        click.echo(line)
    click.echo(f"{sum(d.changes for d in diffs) + att.changes} change(s) to make in {vpc}")


@cloud_group.command("apply")
@_sg_options
def cloud_apply(inventory_path: Path, region, endpoint_url, vpc_id) -> None:
    """Make the fleet's security groups match the plan and put each on its role's instances; change only
    what differs; never close SSH."""
    from .security_groups import apply, attach, attachments, diff, format_attachments, format_diff

    inventory, plan, aws, vpc = _sg_context(inventory_path, region, endpoint_url, vpc_id)
    try:
        diffs = diff(aws, plan, inventory.fleet.name, vpc)
        att = attachments(aws, plan, inventory.fleet.name, vpc, diffs)
        for line in [*format_diff(diffs), *format_attachments(att)]:
            click.echo(line)
        made, ids = apply(aws, diffs, inventory.fleet.name, vpc)
        made += attach(aws, att, ids)  # after the groups' rules are in place
    except CloudError as exc:
        fail(str(exc))
    click.echo(f"{made} change(s) made in {vpc}")


def _backup_options(f):
    f = click.option("--region", default=None, help="AWS region (default: boto3's).")(f)
    f = endpoint_option(f)
    f = click.option("--limit", multiple=True, help="Only this host (repeatable).")(f)
    f = click.option("--bucket", required=True, envvar="MEVFLEET_BACKUP_BUCKET", help="S3 bucket.")(f)
    return inventory_option(f)


def _hosts(inventory, plan, limit: tuple[str, ...]) -> list[str]:
    from ..cli import _check_limit

    return _check_limit(plan, limit) or list(plan.hosts)


def _mib(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@click.command("backup")
@_backup_options
@click.option("--kms-key", envvar="MEVFLEET_BACKUP_KMS_KEY", help="KMS key (id, ARN or alias) for data keys.")
@click.option("--public-key", type=FILE, envvar="MEVFLEET_BACKUP_PUBLIC_KEY", help="Operator RSA public key (PEM).")
@click.option("--retention-days", default=30, show_default=True, help="Keep manifests this long (S3 lifecycle).")
@click.option("--pg-database", default="mevfleet", show_default=True, help="Control plane database to pg_dump.")
@click.option("--prometheus-url", default=None, help="Prometheus as the monitoring host reaches it (default: planned).")
def backup_command(inventory_path, bucket, limit, endpoint_url, region, kms_key, public_key, retention_days,
                   pg_database, prometheus_url) -> None:  # fmt: skip
    """Back up hosts to S3: rendered files, secrets (encrypted on the host), the agent's state, and on the
    control host the PostgreSQL dump and a Prometheus snapshot when they exist. A host's backup is complete
    when its manifest is written; unchanged files are not uploaded again."""
    from ..cli import _load
    from .aws import Aws
    from .backup import BackupSettings, KmsWrap, RsaWrap, Store, backup_host
    from .transport import SshTransport

    if bool(kms_key) == bool(public_key):
        fail("pass exactly one of --kms-key and --public-key (how data keys are wrapped)", 2)
    inventory, plan = _load(inventory_path)
    names = _hosts(inventory, plan, limit)
    aws = Aws(region=region, endpoint_url=endpoint_url)
    failed = []
    try:
        settings = BackupSettings(bucket=bucket, fleet=inventory.fleet.name, retention_days=retention_days,
                                  pg_database=pg_database, prometheus_url=prometheus_url)  # fmt: skip
        store = Store(aws, settings)
        store.ensure_bucket()
        wrap = KmsWrap(aws, kms_key, settings.fleet) if kms_key else RsaWrap(public_key)
    except (CloudError, ValueError) as exc:
        fail(str(exc).splitlines()[0], 2 if isinstance(exc, ValueError) else 1)
    for name in names:
        try:
            r = backup_host(store, wrap, plan.hosts[name], SshTransport(plan.hosts[name]))
        except CloudError as exc:
            click.secho(f"{name}: FAILED: {exc} (no manifest written: this backup is not complete)", fg="red")
            failed.append(name)
            continue
        click.echo(f"{name}: {r.files} files, uploaded {r.uploaded_objects} objects ({_mib(r.uploaded_bytes)}), "
                   f"{r.reused_objects} unchanged, in {r.seconds:.1f} s; s3://{bucket}/{r.manifest}")  # fmt: skip
        for s in r.skipped:
            click.echo(f"  skipped {s['source']}: {s['reason']}")
    if failed:
        fail(f"backup failed on: {', '.join(failed)}")


@click.command("restore")
@_backup_options
@click.option("--manifest", default=None, help="A manifest key (default: each host's latest complete backup).")
@click.option("--private-key", type=FILE, help="Operator RSA private key (PEM) for RSA-wrapped data keys.")
@click.option("--passphrase-file", type=FILE, help="File holding the private key's passphrase.")
def restore_command(inventory_path, bucket, limit, endpoint_url, region, manifest, private_key,
                    passphrase_file) -> None:  # fmt: skip
    """Restore hosts from their latest complete backup (deploy the host first: users and packages).

    Every object is checked against its checksum and every secret decrypted before the first file is
    written; the agent is stopped while its state is replaced and started after."""
    from ..cli import _load
    from .aws import Aws
    from .backup import BackupSettings, Store, Unwrap, restore_host
    from .transport import SshTransport

    inventory, plan = _load(inventory_path)
    names = _hosts(inventory, plan, limit)
    if manifest and len(names) != 1:
        fail("--manifest restores one host: pass --limit HOST", 2)
    aws = Aws(region=region, endpoint_url=endpoint_url)
    store = Store(aws, BackupSettings(bucket=bucket, fleet=inventory.fleet.name))
    unwrap = Unwrap(aws, private_key=private_key, passphrase_file=passphrase_file)
    failed = []
    for name in names:
        try:
            r = restore_host(store, unwrap, plan.hosts[name], SshTransport(plan.hosts[name]), manifest)
        except CloudError as exc:
            click.secho(f"{name}: FAILED: {exc}", fg="red")
            failed.append(name)
            continue
        click.echo(f"{name}: restored {r.written} entries from s3://{bucket}/{r.manifest} in {r.seconds:.1f} s"
                   + (f"; restarted {', '.join(r.restarted)}" if r.restarted else ""))  # fmt: skip
    if failed:
        fail(f"restore failed on: {', '.join(failed)}")


@click.command("backup-timer")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--inventory", "inventory_path", type=FILE, required=True, help="Inventory the timer backs up.")
@click.option("--environment-file", default="/etc/mevfleet/backup.env", show_default=True,
              help="MEVFLEET_BACKUP_BUCKET, MEVFLEET_BACKUP_KMS_KEY or _PUBLIC_KEY, AWS_* (0600).")  # fmt: skip
@click.option("--on-calendar", default="*-*-* 03:00:00", show_default=True, help="systemd OnCalendar=.")
@click.option("--user", default="root", show_default=True, help="User the backup runs as (its SSH key, AWS config).")
def backup_timer(output: Path, inventory_path: Path, environment_file: str, on_calendar: str, user: str) -> None:
    """Write mevfleet-backup.service and .timer for the control machine (install into /etc/systemd/system)."""
    from .timer import write_units

    for path in write_units(output, inventory_path, environment_file, on_calendar, user):
        click.echo(str(path))


def register(main: click.Group) -> None:
    main.add_command(inventory_group)
    main.add_command(cloud_group)
    main.add_command(backup_command)
    main.add_command(restore_command)
    main.add_command(backup_timer)
