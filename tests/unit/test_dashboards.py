"""Dashboards as code: the committed JSON is what dashboards/build.py generates, loads into the SDK's
Grafana model, and every query names only series that exist (agent series from mevagent.metrics_names).
That every query parses and runs is checked against a real Prometheus in
tests/integration/test_monitoring.py."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from types import ModuleType

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from mevagent.metrics_names import series_names
from mevfleet.monitoring import DASHBOARDS_DIR

SEED = {"MEV Overview", "Chain Performance", "Strategy Analysis", "Risk Monitoring", "Infrastructure Health"}


def _build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS_DIR.parent / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BUILD = _build()


@pytest.mark.parametrize("uid", list(BUILD.DASHBOARDS))
def test_committed_json_is_what_the_generator_makes(uid: str):
    committed = (DASHBOARDS_DIR / f"{uid}.json").read_text()
    assert committed == BUILD.render(uid), f"stale: run `.venv/bin/python dashboards/build.py` ({uid})"


def test_the_seeds_five_dashboards_and_nothing_stale():
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS_DIR.glob("*.json")}
    assert titles == SEED
    assert {p.stem for p in DASHBOARDS_DIR.glob("*.json")} == set(BUILD.DASHBOARDS)


@pytest.mark.parametrize("uid", list(BUILD.DASHBOARDS))
def test_json_loads_into_the_sdk_model_with_unique_uid_and_prometheus_queries(uid: str):
    doc = json.loads((DASHBOARDS_DIR / f"{uid}.json").read_text())
    model = Dashboard.from_json(doc)
    assert model.uid == f"mevfleet-{uid}" and model.panels
    for panel in doc["panels"]:
        if panel["type"] == "row":  # a row's title over the panels after it: no query of its own
            assert panel["title"] and "targets" not in panel, panel
            continue
        assert panel["datasource"]["uid"] == "mevfleet-prometheus", panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_queries_name_only_defined_agent_series():
    names = series_names()
    for uid in BUILD.DASHBOARDS:
        for expr in BUILD.queries(BUILD.build(uid)):
            used = set(re.findall(r"\bmev_[a-z0-9_]+", expr))
            assert used <= names, f"{uid}: {expr}"


def test_queries_name_only_defined_control_plane_series():
    """The control plane's series (agent/mevcontrol/metrics.py) the panels query exist, a counter by its _total."""
    from mevcontrol.metrics import ControlMetrics

    names = set()
    for family in ControlMetrics().registry.collect():
        names |= {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
    exprs = [e for uid in BUILD.DASHBOARDS for e in BUILD.queries(BUILD.build(uid))]
    used = {s for e in exprs for s in re.findall(r"\bmevcontrol_\w+", e)}
    assert used and used <= names, used - names
