"""Run the official quote libraries under node (pinned in package-lock.json) as oracles for the Solana math."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / "node_modules"
HERE = Path(__file__).parent


def need(package: str) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: deploy/bootstrap.sh installs it")
    if not (NODE_MODULES / package).is_dir():
        pytest.skip(f"node_modules/{package} is missing: run `npm ci` at the repo root (deploy/bootstrap.sh does)")


def run(script: str, request: dict) -> dict:
    done = subprocess.run(
        ["node", str(HERE / script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)
