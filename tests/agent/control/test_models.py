"""The operator API's models: what a day is, a stop reason, a fleet limits patch; the documents' path parameters."""

import datetime as dt

import pytest
from mevcontrol.dashboard.views import PnlQuery
from mevcontrol.models import AgentLimits, DailyQuery, FleetLimitsPatch, StopBody
from pydantic import ValidationError

from mevagent.api.models import EmergencyStopRequest as AgentStop


def test_a_day_is_only_yyyy_mm_dd() -> None:
    assert DailyQuery.model_validate({"day": "2026-12-06"}).day == dt.date(2026, 12, 6)
    assert DailyQuery.model_validate({}).day is None
    # pydantic alone reads these as Unix times (the fuzz found 2.2e-309 answered as 1970-01-01).
    for bad in ("2.225073858507203e-309", "1700000000", "0", "2026-12-6", "2026-13-01", 0, 1.5):
        with pytest.raises(ValidationError) as refused:
            DailyQuery.model_validate({"day": bad})
        assert refused.value.errors()[0]["loc"] == ("day",)
    with pytest.raises(ValidationError):
        PnlQuery.model_validate({"start": "1700000000"})
    assert PnlQuery.model_validate({"start": "2026-12-01", "end": "2026-12-06"}).end == dt.date(2026, 12, 6)


def test_a_stop_reason_has_no_control_characters() -> None:
    for model in (StopBody, AgentStop):
        assert model.model_validate({"reason": "pool drained: stop"}).reason == "pool drained: stop"
        for bad in ("a\x00b", "line\nforged", "\x7f"):
            with pytest.raises(ValidationError) as refused:
                model.model_validate({"reason": bad})
            assert refused.value.errors()[0]["loc"] == ("reason",)


def test_a_fleet_limits_patch_names_a_limit_and_none_is_null() -> None:
    """The document says what the server reads (the fleet fuzz found `{}` and `{"daily_limit_usd": null}`,
    valid by the former document, refused with 400): at least one limit, none null; the agents' changes too."""
    from mevcontrol.openapi import document

    assert FleetLimitsPatch.model_validate({"daily_limit_usd": 5}).model_dump(exclude_unset=True) == {
        "daily_limit_usd": 5
    }
    with pytest.raises(ValidationError) as refused:
        FleetLimitsPatch.model_validate({"daily_limit_usd": None})
    assert refused.value.errors()[0]["loc"] == ("daily_limit_usd",)
    schemas = document("risk")["components"]["schemas"]
    assert schemas["FleetLimitsPatch"]["minProperties"] == 1
    assert "null" not in str(schemas["FleetLimitsPatch"]["properties"])
    assert AgentLimits.model_json_schema()["properties"]["changes"]["minProperties"] == 1
    assert document("risk")["paths"]["/config/risk"]["post"]["requestBody"]["required"] is True
    assert document("risk")["paths"]["/emergency/stop"]["post"]["requestBody"]["required"] is False
    assert schemas["ProfitPatch"]["properties"]["strategies"]["additionalProperties"] is False


def test_path_parameters_are_documented_as_the_handlers_read_them() -> None:
    from mevcontrol.api import PATH_PATTERNS
    from mevcontrol.openapi import document

    declared = {}
    for listener in ("risk", "dashboard"):
        for path in document(listener)["paths"].values():
            for op in path.values():
                for p in op.get("parameters", []):
                    if p["in"] == "path":
                        declared[p["name"]] = p["schema"]["pattern"]
    assert declared == PATH_PATTERNS
