"""Kernel tuning and limits: every planned sysctl is in effect, or deferred with a reason and persisted."""

from __future__ import annotations

import json


def _live(host, key: str) -> str | None:
    path = "/proc/sys/" + key.replace(".", "/")
    result = host.run(f"cat {path}")
    return " ".join(result.stdout.split()) if result.rc == 0 else None


def test_sysctls_in_effect_or_deferred(host, plan):
    deferred = json.loads(host.file("/var/lib/mevfleet/deferred.json").content_string)["sysctls"]
    persisted = "".join(host.file(f.path).content_string for f in plan.sysctl_files)
    wrong = {}
    for key, value in plan.sysctls().items():
        assert f"{key} = {value}" in persisted, f"{key} not persisted in /etc/sysctl.d"
        if key in deferred:
            assert deferred[key], f"{key} deferred without a reason"
            continue
        if _live(host, key) != value:
            wrong[key] = (_live(host, key), value)
    assert not wrong, f"sysctls not in effect (live, planned): {wrong}"


def test_deferral_only_where_the_runtime_forbids(host, plan, facts):
    deferred = json.loads(host.file("/var/lib/mevfleet/deferred.json").content_string)["sysctls"]
    if not facts.container:
        absent = {k for k, why in deferred.items() if "not present" not in why and "locked" not in why}
        assert not absent, f"a machine that can take these deferred them: {sorted(absent)}"


def test_default_limits(host, plan):
    show = host.run("systemctl show --property DefaultLimitNOFILE --property DefaultLimitMEMLOCK")
    assert f"DefaultLimitNOFILE={plan.nofile}" in show.stdout
    assert f"DefaultLimitMEMLOCK={plan.memlock_bytes}" in show.stdout
    limits = host.file("/etc/security/limits.d/90-mevfleet.conf").content_string
    assert f"* - nofile {plan.nofile}" in limits


def test_kernel_tuning_unit(host, plan, facts):
    assert host.service("mevfleet-kernel-tuning").is_enabled
    thp = host.file("/sys/kernel/mm/transparent_hugepage/enabled")
    if not facts.container and thp.exists:
        assert f"[{plan.thp}]" in thp.content_string
