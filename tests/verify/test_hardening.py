"""Host hardening (templates/hardening, engine/hardening.py): each measure checked by its effect.

test_base already checks every hardening file byte for byte and every package as installed; these
tests check that what reads them (PAM, sshd, systemd, bash, apt, the shadow tools) does what they say.
"""

from __future__ import annotations

from mevfleet.engine.hardening import PRIVATE_TO_ROOT, TOOLCHAIN, TOOLCHAIN_MODE
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
