"""Schemathesis (property-based, from the served OpenAPI) against a real control plane over TLS, with real
Redis and PostgreSQL: every operation of :8908, :8080 and :8900 with schema-valid and schema-invalid
requests. No 5xx and no traceback; every status and content type is one the document declares; every
schema-invalid request is refused with a 4xx, a 400 naming the field it got wrong; the same request
without a token is a 401 (schemathesis' `ignored_auth`), and any mutation by a viewer a 403. Bounded:
a few examples per operation and mode (well under 30 s)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation as Location

from .fleet import Operator, control_config, start_control, tls_pair
from .services import Postgres, RedisServer

ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")
EXAMPLES = 4  # per operation and generation mode
# These reach every agent (stop, resume, approve, enable live): fuzzing them would drive the fleet. Their
# bad bodies and roles are covered in test_api.py.
FLEET_WIDE = {"/emergency/stop", "/emergency/resume", "/approvals/{id}/approve", "/api/strategies/enable"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, ignored_auth]


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


def _healthy(session: requests.Session, base: str) -> None:
    import time

    deadline = time.monotonic() + 60
    error: Exception | None = None
    while True:
        try:
            if session.get(base + "/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError as exc:
            error = exc
        assert time.monotonic() < deadline, f"the control plane's /health: {error}"
        time.sleep(0.2)


def _mutated(case: Any) -> set[str] | None:
    """The fields a negative case got wrong in its body, query or path (what a 400 must name), or None
    when it got nothing wrong there (only headers: the test sends its own token in any case)."""
    locations = [loc for loc in (Location.BODY, Location.QUERY, Location.PATH) if case.meta.is_negative_at(loc)]
    if isinstance(case.body, bytes | str) and not case.body.strip() and Location.BODY in locations:
        locations.remove(Location.BODY)  # "random bytes" that are blank: an absent body, which is allowed
    data = case.meta.phase.data
    if Location.QUERY in locations and _extra_query_never_sent(case, data):
        locations.remove(Location.QUERY)
    if not locations:
        return None
    names: set[str] = set()
    for m in getattr(data, "mutations", ()) or ():
        if m.parameter_location not in locations:
            continue
        if m.path:  # inside the body or a parameter: its top-level name
            names.add(str(m.path[0]))
            continue
        names.add(m.parameter or "body")
        # At the top: a required field left out (named by the keyword's list), an extra or retyped one.
        if "required" in m.keywords and isinstance(m.original_value, list):
            names |= {str(n) for n in m.original_value}
        if m.parameter_location is Location.BODY:  # a field it sent, or one the body's schema has
            names |= {str(k) for k in case.body} if isinstance(case.body, dict) else set()
            names |= _body_fields(case)
        if m.parameter_location is Location.QUERY:  # a parameter it sent, or one the operation has
            names |= {str(k) for k in case.query or {}}
            names |= {p["name"] for p in case.operation.definition.raw.get("parameters", [])}
    if getattr(data, "parameter", None) and getattr(data, "parameter_location", None) in locations:
        names.add(str(data.parameter))
    return names or {"body"}


def _extra_query_never_sent(case: Any, data: Any) -> bool:
    """Whether the query's only fault is undeclared parameters whose value is an empty list: requests sends
    nothing for those, so the request that reaches the server is a valid one (and its 200 is right)."""
    declared = {p["name"] for p in case.operation.definition.raw.get("parameters", []) if p.get("in") == "query"}
    extra = [value for name, value in (case.query or {}).items() if name not in declared]
    mutations = [m for m in getattr(data, "mutations", ()) or () if m.parameter_location is Location.QUERY]
    return (
        bool(extra)
        and all(isinstance(value, list | tuple) and not value for value in extra)
        and all("additionalProperties" in m.keywords for m in mutations)
    )


def _body_fields(case: Any) -> set[str]:
    ref = case.operation.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {})
    name = ref.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
    return set(case.operation.schema.raw_schema["components"]["schemas"].get(name, {}).get("properties", {}))


def test_schemathesis_finds_no_5xx_and_every_bad_request_is_a_4xx_naming_the_field(plane: Any) -> None:
    from mevcontrol.openapi import document

    listen, cert = plane
    session = requests.Session()
    session.trust_env = False  # the certificate below, not a CA bundle from the environment
    session.verify = str(cert)
    ports = {"risk": listen["risk_port"], "dashboard": listen["dashboard_port"], "relays": listen["relays_port"]}
    _healthy(session, f"https://127.0.0.1:{ports['dashboard']}")
    seen: dict[str, int] = {}
    for listener, port in ports.items():
        base = f"https://127.0.0.1:{port}"
        served = session.get(base + "/openapi.json", timeout=10).json()
        assert served == document(listener)  # the document fuzzed is the one served
        schema = schemathesis.openapi.from_dict(served)
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in FLEET_WIDE and operation.method.upper() == "POST":
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
        wrong = _mutated(case) if mode is GenerationMode.NEGATIVE else None
        response = case.call_and_validate(base_url=base, session=session, headers=ALICE.auth, checks=CHECKS,
                                          timeout=30, verify=session.verify)  # fmt: skip
        text = response.text
        assert "Traceback" not in text and not re.search(r'File ".*\.py", line \d+', text), text[:500]
        status = response.status_code
        if wrong is not None:
            assert 400 <= status < 500, (case.as_curl_command(), status, text[:300], case.meta.phase.data.description)
        if status == 400:
            fields = response.json()["fields"]
            assert fields, text  # a 400 always names what it refused
            if wrong is not None and "body" not in fields:
                named = {*fields} | {f.split(".", 1)[0] for f in fields}
                assert named & wrong, (case.as_curl_command(), fields, wrong)
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
