"""Our units' sandboxes scored by the real `systemd-analyze security --offline` (systemd 252 reads the unit
files from a private root: nothing is installed or started here): every service unit the deploy renders
must score 2.0 or less. Debian's units, with their drop-ins, are scored on real hosts by
tests/verify/test_hardening.py (tests/integration/test_host_live.py runs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mevfleet import INVENTORY_DIR, sandbox
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

ANALYZE = shutil.which("systemd-analyze")
FLEETS = {name: compile_plan(load_inventory(INVENTORY_DIR / name)) for name in ("devnet.yml", "production.example.yml")}


def _our_units() -> dict[str, str]:
    units = {}
    for fleet in FLEETS.values():
        for plan in fleet.hosts.values():
            for container in (False, True):
                for f in host_files(plan, HostFacts(container=container)):
                    if f.path.startswith("/etc/systemd/system/") and f.path.endswith(".service"):
                        units.setdefault(f.path, f.content)
    return units


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_every_unit_we_render_scores_two_or_less(tmp_path: Path):
    units = _our_units()
    assert len(units) >= 15, sorted(units)  # nodes of every chain, the agent, kernel tuning, the log vacuum
    for path, content in units.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    scores = {}
    for path in units:
        unit = path.rsplit("/", 1)[1].replace("@.service", "@instance.service")  # a template: score an instance
        out = subprocess.run(
            [ANALYZE, "security", "--offline=yes", f"--root={tmp_path}", unit], capture_output=True, text=True
        )
        found = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", out.stdout)
        assert found, out.stdout + out.stderr
        scores[unit] = float(found.group(1))
    over = {u: s for u, s in scores.items() if s > sandbox.OURS_TARGET}
    assert not over, over


def test_debian_units_get_a_sandbox_drop_in_each_with_its_own_user_where_shared():
    mon = FLEETS["devnet.yml"].hosts["mon1"]
    files = {f.path: f.content for f in host_files(mon, HostFacts(container=True))}
    for unit in sandbox.CONCERNS:
        assert sandbox.path(unit) in files, unit
    exporter = files[sandbox.path("prometheus-node-exporter.service")]
    alertmanager = files[sandbox.path("prometheus-alertmanager.service")]
    assert "DynamicUser=yes" in exporter and "User=node-exporter" in exporter
    assert "DynamicUser=yes" in alertmanager and "User=alertmanager" in alertmanager
    assert "--web.listen-address=172.30.87.10:9100" in files["/etc/default/prometheus-node-exporter"]
