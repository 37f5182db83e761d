"""The operator API's query models: what a day is."""

import datetime as dt

import pytest
from mevcontrol.dashboard.views import PnlQuery
from mevcontrol.models import DailyQuery, StopBody
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
