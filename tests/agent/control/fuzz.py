"""What both schemathesis tests share: the checks, reading which fields a negative case got wrong (what a
400 must name), and the operations that drive the whole fleet (fuzzed with real agents in
test_api_schemathesis_fleet.py, left out of test_api_schemathesis.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import requests
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation as Location

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, ignored_auth]
# Every POST that changes the fleet's state or reaches every agent (bus, direct API, or both).
FLEET_WIDE = {
    "/config/risk",
    "/config/gas",
    "/config/profit",
    "/limits/set",
    "/strategies/{name}/pause",
    "/strategies/{name}/resume",
    "/emergency/stop",
    "/emergency/resume",
    "/approvals/{id}/approve",
    "/api/strategies/enable",
}


def fleet_wide(operation: Any) -> bool:
    return operation.method.upper() == "POST" and operation.path in FLEET_WIDE


def tls_session(cert: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the certificate below, not a CA bundle from the environment
    session.verify = str(cert)
    return session


def healthy(session: requests.Session, base: str) -> None:
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


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and not re.search(r'File ".*\.py", line \d+', text), text[:500]


def names_the_field(case: Any, response: Any, wrong: set[str] | None) -> None:
    """A 400 names what it refused; for a negative case, one of the fields it got wrong (or the body)."""
    if response.status_code != 400:
        return
    fields = response.json()["fields"]
    assert fields, response.text  # a 400 always names what it refused
    if wrong is not None and "body" not in fields:
        named = {*fields} | {f.split(".", 1)[0] for f in fields}
        assert named & wrong, (case.as_curl_command(), fields, wrong)


def mutated(case: Any) -> set[str] | None:
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
