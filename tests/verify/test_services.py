"""Time sync, logs, SSH hardening and exporters."""

from __future__ import annotations


def test_chrony_running_with_planned_sources(host, plan):
    chrony = host.service("chrony")
    assert chrony.is_running and chrony.is_enabled
    sources = host.run("chronyc -n sources").stdout
    for server in plan.time.servers:
        assert server in sources, f"chrony does not use {server}"


def test_journal_keeps_seven_days(host):
    conf = host.file("/etc/systemd/journald.conf.d/90-mevfleet.conf").content_string
    assert "MaxRetentionSec=7day" in conf and "Storage=persistent" in conf
    assert host.service("systemd-journald").is_running


def test_sshd_key_only(host):
    effective = host.run("sshd -T").stdout.lower()
    assert "passwordauthentication no" in effective
    assert "permitemptypasswords no" in effective


def test_exporters_running(host, plan):
    for service in plan.services:
        if service.package:
            unit = host.service(service.package)
            assert unit.is_running and unit.is_enabled, service.package
