"""The backup's systemd units (rendered for the control machine) pass `systemd-analyze verify`; values that
could break a unit line are refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mevfleet.cli import main

DEVNET = Path(__file__).resolve().parents[2] / "inventory" / "devnet.yml"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_backup_units_pass_systemd_analyze_verify(tmp_path):
    env = tmp_path / "backup.env"
    env.write_text("MEVFLEET_BACKUP_BUCKET=mevfleet-backup-prod\n")
    env.chmod(0o600)
    out = tmp_path / "units"
    result = CliRunner().invoke(
        main, ["backup-timer", "-o", str(out), "--inventory", str(DEVNET), "--environment-file", str(env)]
    )
    assert result.exit_code == 0, result.output
    service, timer = out / "mevfleet-backup.service", out / "mevfleet-backup.timer"
    assert "EnvironmentFile=" + str(env) in service.read_text()
    assert "Persistent=true" in timer.read_text()
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(service), str(timer)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "mevfleet-backup" not in verify.stderr  # no warning about our units either


def test_a_value_that_could_break_a_unit_line_is_refused(tmp_path):
    result = CliRunner().invoke(
        main,
        ["backup-timer", "-o", str(tmp_path), "--inventory", str(DEVNET), "--environment-file", "/etc/x\nUser=root"],
    )
    assert result.exit_code != 0
    assert not (tmp_path / "mevfleet-backup.service").exists()
