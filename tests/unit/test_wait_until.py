"""The one bounded poll the fleet tests wait with: it returns what the check found, or fails naming the wait."""

from __future__ import annotations

import itertools

import pytest

from mevfleet.devnet.fleet import wait_until


def test_returns_the_first_truthy_answer() -> None:
    answers = itertools.chain([None, [], 0], itertools.repeat({"up": 3}))
    assert wait_until("hosts up", 5, lambda: next(answers), every_s=0.01) == {"up": 3}


def test_fails_naming_what_it_waited_for() -> None:
    calls = []
    with pytest.raises(AssertionError, match=r"^HostDown firing: not within 0.05 s$"):
        wait_until("HostDown firing", 0.05, lambda: calls.append(1), every_s=0.01)
    assert len(calls) >= 2  # it polled again before giving up
