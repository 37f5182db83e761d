"""verify's file check lists every file that differs from the plan, not only the first (run here with
testinfra's local backend on real files)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import testinfra

from mevfleet.render import ManagedFile

_spec = importlib.util.spec_from_file_location("verify_base", Path(__file__).parents[1] / "verify" / "test_base.py")
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
file_differences = _base.file_differences


@pytest.mark.skipif(os.geteuid() != 0, reason="the planned owner is root")
def test_every_differing_file_is_reported(tmp_path):
    files = [
        ManagedFile(path=str(tmp_path / name), content=f"{name}\n", mode="0644", concern="t")
        for name in ("a.conf", "b.conf", "c.conf", "d.conf")
    ]
    (tmp_path / "a.conf").write_text("a.conf\n")
    (tmp_path / "b.conf").write_text("edited by hand\n")
    (tmp_path / "c.conf").write_text("c.conf\n")
    for path in ("a.conf", "b.conf", "c.conf"):
        os.chmod(tmp_path / path, 0o644)
    os.chmod(tmp_path / "c.conf", 0o666)
    wrong = file_differences(testinfra.get_host("local://"), files)
    assert wrong == [
        f"{tmp_path}/b.conf: content differs from plan",
        f"{tmp_path}/c.conf: root:root 0666, planned root:root 0644",
        f"{tmp_path}/d.conf: missing",
    ]
