"""Host hardening (templates/hardening, engine/hardening.py): each measure checked by its effect.

test_base already checks every hardening file byte for byte and every package as installed; these
tests check that what reads them (PAM, sshd, systemd, bash, apt, the shadow tools) does what they say.
"""

from __future__ import annotations

import re

import pytest

from mevfleet import sandbox
from mevfleet.desired import units as units_of
from mevfleet.hardening import PRIVATE_TO_ROOT, TOOLCHAIN, TOOLCHAIN_MODE
from mevfleet.render import host_files


def _rendered(plan, facts, path: str) -> str:
    (f,) = [f for f in host_files(plan, facts) if f.path == path]
    return f.content


def test_ssh_shows_the_legal_banner_before_login(host, plan, facts):
    assert "banner /etc/issue.net" in host.run("sshd -T").stdout.lower()
    # What this very connection received before it authenticated: the banner, and a protocol
    # version string without the Debian package revision (DebianBanner no).
    transport = host.backend.client.get_transport()
    received = transport.get_banner()
    assert received is not None and received.decode() == _rendered(plan, facts, "/etc/issue.net")
    assert "Debian" not in transport.remote_version, transport.remote_version


def test_no_core_dumps_from_logins_or_services(host):
    assert host.run("ulimit -Hc").stdout.strip() == "0", "pam_limits did not cap core dumps at login"
    assert host.run("systemctl show --property DefaultLimitCORE --value").stdout.strip() == "0"


def test_idle_interactive_shells_time_out(host):
    # A login shell reads /etc/profile.d; TMOUT must be set there and impossible to unset.
    assert host.run("bash -lc 'echo $TMOUT'").stdout.strip() == "900"
    assert host.run("bash -lc 'TMOUT=0'").rc != 0, "TMOUT is not read-only"


def test_pam_private_tmp_and_password_quality(host):
    assert host.run("grep -Eq '^session.*pam_tmpdir\\.so' /etc/pam.d/common-session").rc == 0
    assert host.run("grep -Eq '^password.*pam_pwquality\\.so' /etc/pam.d/common-password").rc == 0


def test_new_accounts_get_private_homes(host):
    defs = dict(
        line.split(None, 1)
        for line in host.file("/etc/login.defs").content_string.splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert defs["UMASK"].strip() == "027"
    # Never a password expiry: it would refuse key-only SSH logins of accounts created later.
    assert defs["PASS_MAX_DAYS"].strip() == "99999"


def test_unattended_upgrades_take_security_updates_only(host):
    dump = host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    origins = [line for line in dump.splitlines() if line.startswith("Unattended-Upgrade::Origins-Pattern::")]
    assert origins and all("Debian-Security" in line for line in origins), origins
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump


def test_cron_and_sshd_config_private_to_root(host):
    for path, allowed in PRIVATE_TO_ROOT.items():
        f = host.file(path)
        if f.exists:
            assert f.user == "root" and not f.mode & ~int(allowed, 8), f"{path} is {f.mode:04o}"


def test_toolchain_root_only(host):
    triplet = host.run("uname -m").stdout.strip() + "-linux-gnu"
    overrides = host.run("dpkg-statoverride --list").stdout
    for tool in TOOLCHAIN:
        path = f"/usr/bin/{triplet}-{tool}"
        assert f"root root {int(TOOLCHAIN_MODE, 8):o} {path}" in overrides, f"no statoverride for {path}"
        f = host.file(path)
        if f.exists:
            assert not f.mode & 0o001, f"{path} is executable by everyone"


def test_storage_and_rare_protocol_modules_refused(host):
    config = host.run("modprobe --showconfig").stdout
    for module in ("usb_storage", "firewire_core", "dccp", "sctp", "rds", "tipc"):
        assert f"install {module} /bin/false" in config, module


EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")


def _sandboxed_units(plan, facts) -> tuple[list[str], set[str]]:
    """Every service the deploy runs on the host, and which of them are ours (their unit file is rendered)."""
    files = {f.path for f in host_files(plan, facts)}
    # Nodes the plan renders but does not start are not run by the deploy.
    not_started = {f"{n.unit}.service" for n in plan.nodes if not n.start}
    units = [u for u in units_of(plan) if u.endswith(".service")]
    units += [u for u in sandbox.CONCERNS if sandbox.path(u) in files and u not in units]
    units += [p.rsplit("/", 1)[1] for p in files if p.startswith("/etc/systemd/system/") and p.endswith(".service")]
    # A template of ours is scored through its instances (one drop-in each: a journal receiver per host).
    templates = {u for u in units if u.endswith("@.service")}
    instances = {
        p.split("/")[4].removesuffix(".d"): p.split("/")[4].split("@")[0] + "@.service"
        for p in files
        if p.startswith("/etc/systemd/system/") and p.count("/") == 5 and p.split("/")[4].endswith("service.d")
    }
    units += [u for u, template in sorted(instances.items()) if template in templates]
    units = list(dict.fromkeys(u for u in units if u not in not_started and u not in templates))
    ours = {u for u in units if f"/etc/systemd/system/{instances.get(u, u)}" in files}
    return units, ours


def test_every_unit_the_deploy_runs_is_sandboxed(host, plan, facts):
    """`systemd-analyze security`: 2.0 or less for our units, 3.0 or less for Debian's (catalog/sandbox.yml)."""
    units, ours = _sandboxed_units(plan, facts)
    scores = {}
    for unit in units:
        found = EXPOSURE.search(host.run(f"systemd-analyze security {unit}").stdout)
        assert found, f"{unit}: systemd-analyze security gave no score"
        scores[unit] = float(found.group(2))
    over = {u: s for u, s in scores.items() if s > (sandbox.OURS_TARGET if u in ours else sandbox.DEBIAN_TARGET)}
    assert not over, f"units above their exposure target (ours {sandbox.OURS_TARGET}, Debian's 3.0): {over}"


def test_monitoring_services_do_not_share_a_user(host, plan):
    """node_exporter (network-facing) and Alertmanager (holds the receivers' secrets) each run as their own
    user, not Prometheus's."""
    users = {}
    for unit in ("prometheus-node-exporter", "prometheus", "prometheus-alertmanager"):
        pid = host.run(f"systemctl show --property MainPID --value {unit}").stdout.strip()
        if pid and pid != "0":
            users[unit] = host.run(f"ps -o user= -p {pid}").stdout.strip()
    if "prometheus-node-exporter" not in users:
        pytest.skip("node_exporter is not running here")
    assert len(set(users.values())) == len(users), f"services share a user: {users}"
