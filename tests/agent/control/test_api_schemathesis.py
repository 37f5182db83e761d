"""Schemathesis (property-based, from the served OpenAPI) against a real control plane over TLS, with real
Redis and PostgreSQL: every operation of :8908, :8080 and :8900 with schema-valid and schema-invalid
requests, except those that drive the whole fleet (fuzz.FLEET_WIDE: test_api_schemathesis_fleet.py, with
real agents). No 5xx and no traceback; every status and content type is one the document declares; every
schema-invalid request is refused with a 4xx, a 400 naming the field it got wrong; the same request
without a token is a 401 (schemathesis' `ignored_auth`), and any mutation by a viewer a 403. Bounded:
a few examples per operation and mode (well under 30 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from testbed.control import Operator, control_config, start_control, tls_pair
from testbed.services import Postgres, RedisServer

from .fuzz import CHECKS, fleet_wide, healthy, mutated, names_the_field, no_traceback, tls_session

ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")
EXAMPLES = 4  # per operation and generation mode
# The operations that drive the whole fleet are fuzzed with real agents in test_api_schemathesis_fleet.py.


@pytest.fixture(scope="module")
def plane(redis_server: RedisServer, postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The control plane with one configured agent that never runs (its direct calls are refused at once)."""
    directory = tmp_path_factory.mktemp("schemathesis")
    cert, key = tls_pair(directory)
    path = control_config(directory, redis_server, postgres, [ALICE, VICTOR], live_chains=["ethereum"],
                          agent_timeout_s=0.5, rate_limit_per_s=10_000)  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, directory / "control.log")
    try:
        yield data["listen"], cert
    finally:
        proc.terminate()
        proc.wait(20)


def test_schemathesis_finds_no_5xx_and_every_bad_request_is_a_4xx_naming_the_field(plane: Any) -> None:
    from mevcontrol.openapi import document

    listen, cert = plane
    session = tls_session(cert)
    ports = {"risk": listen["risk_port"], "dashboard": listen["dashboard_port"], "relays": listen["relays_port"]}
    healthy(session, f"https://127.0.0.1:{ports['dashboard']}")
    seen: dict[str, int] = {}
    for listener, port in ports.items():
        base = f"https://127.0.0.1:{port}"
        served = session.get(base + "/openapi.json", timeout=10).json()
        assert served == document(listener)  # the document fuzzed is the one served
        schema = schemathesis.openapi.from_dict(served)
        for result in schema.get_all_operations():
            operation = result.ok()
            if fleet_wide(operation):
                continue
            for mode in GenerationMode:
                run(session, base, operation, mode, seen)
    # Every listener, reads and mutations, valid and invalid requests were tried.
    assert seen.get("negative/400", 0) >= 10 and seen.get("positive/200", 0) >= 10, seen
    assert seen.get("viewer/403", 0) >= 5, seen


def run(session: requests.Session, base: str, operation: Any, mode: GenerationMode, seen: dict[str, int]) -> None:
    mutating = operation.method.upper() == "POST"

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        wrong = mutated(case) if mode is GenerationMode.NEGATIVE else None
        response = case.call_and_validate(base_url=base, session=session, headers=ALICE.auth, checks=CHECKS,
                                          timeout=30, verify=session.verify)  # fmt: skip
        text = response.text
        no_traceback(text)
        status = response.status_code
        if wrong is not None:
            assert 400 <= status < 500, (case.as_curl_command(), status, text[:300], case.meta.phase.data.description)
        names_the_field(case, response, wrong)
        kind = "negative" if wrong is not None else "positive"
        seen[f"{kind}/{status}"] = seen.get(f"{kind}/{status}", 0) + 1
        if mutating and mode is GenerationMode.POSITIVE:
            as_viewer = case.call(
                base_url=base, session=session, headers=VICTOR.auth, timeout=30, verify=session.verify
            )
            assert as_viewer.status_code in (400, 403), as_viewer.text  # a bad body may be judged first
            seen[f"viewer/{as_viewer.status_code}"] = seen.get(f"viewer/{as_viewer.status_code}", 0) + 1

    try:
        check()
    except Unsatisfiable:  # nothing to get wrong (no body, query or path parameter): only positive cases
        assert mode is GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters"), operation.label
