"""Alert rules in dashboards/rules: checked and unit-tested by the real promtool, every alert covered,
and every agent series they name defined once in mevagent.metrics_names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mevagent.metrics_names import series_names
from mevfleet.monitoring import RULES_DIR, rule_files

PROMTOOL = shutil.which("promtool")
TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
# Every alert the fleet must raise, by the name the rules give it.
REQUIRED = {
    "DailyLossAboveLimit",
    "ConsecutiveFailedExecutions",
    "GasCostsHigh",
    "NetworkLatencyHigh",
    "MemoryHigh",
    "HostDown",
    "NodeDown",
    "NodeNotSynced",
    "NodePeersLow",
    "DiskFilling",
    "ClockDrift",
    "ScrapeTargetDown",
    "AgentNotReady",
    "EmergencyStopEngaged",
}
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`; deploy/bootstrap.sh installs it)"
)


def _alerts(path: Path) -> list[dict]:
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, cwd=RULES_DIR)


@needs_promtool
def test_promtool_accepts_every_rule_file():
    result = _promtool("check", "rules", *rule_files())
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    assert TESTS
    result = _promtool("test", "rules", *TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_and_every_alert_has_a_firing_test():
    alerts = {r["alert"] for f in rule_files() for r in _alerts(f)}
    assert alerts >= REQUIRED, REQUIRED - alerts
    firing = {
        case["alertname"]
        for t in TESTS
        for test in yaml.safe_load(t.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts <= firing, f"alerts without a test that makes them fire: {sorted(alerts - firing)}"


def test_every_alert_has_a_severity_the_alertmanager_routes_know_and_a_summary():
    for f in rule_files():
        for rule in _alerts(f):
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_rules_name_only_agent_series_the_agent_defines():
    names = series_names()
    for f in [*rule_files(), *TESTS]:
        used = set(re.findall(r"\bmev_[a-z0-9_]+", f.read_text()))
        assert used <= names, f"{f.name}: undefined agent series {sorted(used - names)}"
