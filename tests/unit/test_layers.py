"""The deploy side's layers: what a host wants (the plan, the concerns, mevfleet.desired, the probe) is
engine-neutral data, read by both engines and by verify; neither verify nor the Ansible engine may reach
into the pyinfra engine (a back edge that made a concern's desired state live in one engine only)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from mevfleet import REPO_ROOT

NEUTRAL = (
    "mevfleet.desired",
    "mevfleet.probe",
    "mevfleet.hardening",
    "mevfleet.kernel",
    "mevfleet.timesync",
    "mevfleet.logs",
    "mevfleet.ssh",
    "mevfleet.firewall",
    "mevfleet.plan",
    "mevfleet.registry",
    "mevfleet.render",
    "mevfleet.agent",
    "mevfleet.control",
    "mevfleet.monitoring",
    "mevfleet.nodes",
    "mevfleet.ansible_engine.handoff",
    "mevfleet.base",
    "mevfleet.steps",
    "mevfleet.concerns",
)


def test_the_desired_state_and_the_ansible_hand_off_load_no_pyinfra():
    # A fresh interpreter: this test process has the engine loaded already.
    code = (
        "import importlib, json, sys\n"
        f"for name in {NEUTRAL!r}: importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'pyinfra' or m.startswith('mevfleet.engine')]\n"
        "print(json.dumps(sorted(loaded)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == [], "loaded by the engine-neutral modules"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_verify_imports_the_model_and_the_concerns_never_an_engine():
    offending = {
        path.name: sorted(n for n in _imports(path) if n.startswith("mevfleet.engine") or n.startswith("pyinfra"))
        for path in sorted((REPO_ROOT / "tests" / "verify").glob("*.py"))
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_benches_and_the_local_worlds_reach_into_no_test_module():
    """bench/ builds its worlds from testbed/, as the tests do: never by importing a test module or driving a
    pytest fixture by hand (`__wrapped__`); testbed/ itself needs no pytest."""
    offending = {}
    for path in sorted([*(REPO_ROOT / "bench").glob("*.py"), *(REPO_ROOT / "testbed").rglob("*.py")]):
        names = _imports(path)
        found = sorted(n for n in names if n.split(".")[0] in ("tests", "pytest", "_pytest"))
        found += ["__wrapped__"] if "__wrapped__" in path.read_text() else []
        if found:
            offending[str(path.relative_to(REPO_ROOT))] = found
    assert offending == {}
