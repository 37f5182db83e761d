"""The verify suite's reading of `chronyc -c tracking` (tests/verify/test_services.py), on canned output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from verify.test_services import _owed  # tests/ is on sys.path: tests/unit is the package "unit"

# chronyc -c tracking: reference id, address, stratum, ref time, System time (field 5), ...
TRACKING = "A9FEA97B,169.254.169.123,4,1765000000.123,-0.031250000,-0.000001,0.2,-0.01,0.0,0.0,0.0,0.0,64.1,Normal\n"


@dataclass
class _Result:
    stdout: str
    rc: int = 0
    stderr: str = ""


@dataclass
class _Host:
    result: _Result

    def run(self, command: str) -> _Result:
        assert command == "chronyc -n -c tracking"
        return self.result


def test_the_owed_correction_is_the_absolute_system_time() -> None:
    assert _owed(_Host(_Result(TRACKING))) == pytest.approx(0.03125)


def test_a_chronyd_that_does_not_answer_fails_by_name_instead_of_reading_zero() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"no reading \(exit 1\): 506 Cannot talk to daemon"):
        _owed(_Host(_Result("", rc=1, stderr="506 Cannot talk to daemon\n")))
