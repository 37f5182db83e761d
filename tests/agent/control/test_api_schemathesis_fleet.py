"""Schemathesis on the operations that drive the whole fleet (fuzz.FLEET_WIDE: fleet limits, gas and
profit settings, the agents' own limits, strategy pause/resume, emergency stop and resume, approvals,
live trading), against the real control plane over TLS with two real agents (in-process `mevagent` on an
anvil node, on the bus and reachable by their own APIs), real Redis and PostgreSQL.

Every schema-invalid request (body, query or path) is refused with a 4xx, a 400 naming a field it got
wrong, and nothing changed: the control plane's limits, emergency stop, live chains and pending
approvals, its audit log, approvals and commands in PostgreSQL, and each agent's risk gate (limits,
emergency stop, paused strategies), gas, profit and strategy settings and its control.json are the same
after as before. No 5xx, no traceback, every status and content type documented; a viewer's mutation
is a 403 that changes nothing; a schema-valid emergency stop is acknowledged by both agents on both paths.
Bounded: a few examples per operation and mode (7-18 s with the agents' start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from testbed.control import Operator, bus_agent_config, control_config, secret_file, start_control, tls_pair
from testbed.e2e import load, running
from testbed.pools import IpcAnvil
from testbed.services import Postgres, RedisServer

from .fuzz import CHECKS, fleet_wide, healthy, mutated, names_the_field, no_traceback, tls_session

ALICE, VICTOR = Operator("alice", "operator"), Operator("victor", "viewer")
# Per operation and generation mode (FUZZ_EXAMPLES=40 for a longer hunt by hand: ~40 s).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 6))
T = TypeVar("T")
# Schema-valid requests the control plane refuses for a reason the document cannot express: the agents'
# RiskPatch takes null for each limit (the agent's own API), and changes of nothing but nulls change nothing.
VALID_BUT_REFUSED = {"/limits/set": ("changes: name at least one limit",)}


class Agents:
    """Real agents in an event loop of their own (a thread): schemathesis calls the control plane
    synchronously. The same loop keeps a PostgreSQL connection to read the control plane's tables."""

    def __init__(self, configs: list[dict[str, Any]], dsn: str) -> None:
        self.configs = configs
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.agents: list[Any] = []
        self.db: asyncpg.Connection | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agents", daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the test by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for config in self.configs:
                agent, _api = await stack.enter_async_context(running(load(config)))
                self.agents.append(agent)
            self.db = await asyncpg.connect(self.dsn)
            stack.push_async_callback(self.db.close)
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(120), "the agents did not start within 120 s"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self.loop.close()

    def run(self, coroutine: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine(), self.loop).result(30)

    def state(self) -> dict[str, Any]:
        """What a refused request must not change, on the agents and in PostgreSQL (read in the agents' loop:
        between two of their steps, so each agent's view is consistent)."""

        async def read() -> dict[str, Any]:
            assert self.db is not None
            agents = {}
            for agent, config in zip(self.agents, self.configs, strict=True):
                gate = agent.gate.snapshot()
                control = Path(config["state_dir"]) / "control.json"
                agents[config["bus"]["agent"]] = {
                    "limits": gate["limits"],
                    "chain_limits": gate["chain_limits"],
                    "emergency_stop": gate["emergency_stop"],
                    "paused": gate["paused_strategies"],
                    "gas": agent.settings.gas.model_dump(mode="json"),
                    "profit": agent.settings.profit.model_dump(mode="json"),
                    "strategies": {n: s.model_dump(mode="json") for n, s in agent.settings.strategies.items()},
                    "control.json": control.read_bytes() if control.exists() else None,
                }
            db = self.db
            return {
                "agents": agents,
                "audit_log": await db.fetchval("SELECT count(*) FROM audit_log"),
                "approvals": [tuple(r) for r in await db.fetch("SELECT id, state FROM approvals ORDER BY id")],
                # Leases are granted every few seconds and not recorded; any other command is, before it is sent.
                "commands": await db.fetchval("SELECT count(*) FROM commands WHERE kind <> 'lease_grant'"),
                "control_state": {r["key"]: r["value"] for r in await db.fetch("SELECT key, value FROM control_state")},
            }

        return self.run(read)


@pytest.fixture(scope="module")
def fleet(
    redis_server: RedisServer, postgres: Postgres, node: IpcAnvil, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path, Agents]]:
    """The control plane (TLS) with two real agents on the bus, each with its own API token."""
    directory = tmp_path_factory.mktemp("fleetfuzz")
    cert, key = tls_pair(directory)
    configs, entries = [], []
    for name in ("f1", "f2"):
        token = secrets.token_hex(20)
        data = bus_agent_config(directory / name, node, redis_server, name, token=token)
        configs.append(data)
        url = f"http://127.0.0.1:{data['api']['port']}"
        entries.append({"name": name, "api_url": url, "token_file": str(secret_file(directory / f"{name}.tok", token))})
    path = control_config(
        directory, redis_server, postgres, [ALICE, VICTOR], agents=entries, live_chains=["ethereum"],
        limits={"max_total_exposure_usd": 1000, "daily_limit_usd": 100, "consecutive_losses": 5},
        ceilings={"max_total_exposure_usd": 5000, "daily_limit_usd": 500, "consecutive_losses": 10},
        agent_timeout_s=3, rate_limit_per_s=10_000,
    )  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, directory / "control.log")
    agents = Agents(configs, postgres.dsn)
    try:
        agents.start()
        yield data["listen"], cert, agents
    finally:
        agents.stop()
        proc.terminate()
        proc.wait(20)


def _on_the_bus(session: requests.Session, risk: str, names: set[str]) -> None:
    import time

    deadline = time.monotonic() + 60
    while True:
        body = session.get(risk + "/exposure/current", headers=ALICE.auth, timeout=10).json()
        if names <= set(body["by_agent"]):
            return
        assert time.monotonic() < deadline, f"agents on the bus: {sorted(body['by_agent'])}, expected {names}"
        time.sleep(0.2)


def test_fleet_wide_operations_refuse_bad_requests_before_anything_changes(fleet: Any) -> None:
    from mevcontrol.openapi import document

    listen, cert, agents = fleet
    session = tls_session(cert)
    bases = {"risk": f"https://127.0.0.1:{listen['risk_port']}",
             "dashboard": f"https://127.0.0.1:{listen['dashboard_port']}"}  # fmt: skip
    healthy(session, bases["dashboard"])
    _on_the_bus(session, bases["risk"], {"f1", "f2"})
    seen: dict[str, int] = {}
    fuzzed: set[str] = set()
    for listener, base in bases.items():
        served = session.get(base + "/openapi.json", timeout=10).json()
        assert served == document(listener)
        for result in schemathesis.openapi.from_dict(served).get_all_operations():
            operation = result.ok()
            if not fleet_wide(operation):
                continue
            fuzzed.add(operation.path)
            for mode in GenerationMode:
                run(session, base, operation, mode, agents, seen)
    from .fuzz import FLEET_WIDE

    assert fuzzed == FLEET_WIDE  # every fleet-wide operation is in a served document, and was fuzzed
    assert seen.get("negative/400", 0) >= 20 and seen.get("viewer/403", 0) >= 10, seen
    assert seen.get("stop/acknowledged", 0) >= 1, seen  # a valid stop reached both agents on both paths


def run(
    session: requests.Session, base: str, operation: Any, mode: GenerationMode, agents: Agents, seen: dict[str, int]
) -> None:
    def count(key: str) -> None:
        seen[key] = seen.get(key, 0) + 1

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        negative = mode is GenerationMode.NEGATIVE
        wrong = mutated(case) if negative else None
        before = agents.state() if negative else None
        response = case.call_and_validate(base_url=base, session=session, headers=ALICE.auth, checks=CHECKS,
                                          timeout=30, verify=session.verify)  # fmt: skip
        no_traceback(response.text)
        status = response.status_code
        curl = case.as_curl_command()
        if wrong is not None:
            assert 400 <= status < 500, (curl, status, response.text[:300], case.meta.phase.data.description)
        if negative and 400 <= status < 500:  # also a negative case that got only its headers wrong, and a 401
            assert agents.state() == before, (curl, status, "a refused request changed the fleet")
        names_the_field(case, response, wrong)
        count(f"{'negative' if wrong is not None else 'headers' if negative else 'positive'}/{status}")
        if not negative and status == 400:  # the document says it is valid: refused only for what it cannot say
            assert any(why in response.text for why in VALID_BUT_REFUSED.get(operation.path, ())), (
                curl, response.text[:300])  # fmt: skip
        if mode is GenerationMode.POSITIVE and operation.path == "/emergency/stop" and status == 200:
            answer = response.json()
            assert answer["not_answered"] == [], answer
            assert all(a == {"api": "acknowledged", "bus": "acked"} for a in answer["agents"].values()), answer
            assert set(answer["agents"]) == {"f1", "f2"} and all(a.gate.emergency_stopped for a in agents.agents)
            count("stop/acknowledged")
        if mode is GenerationMode.POSITIVE:
            before = agents.state()
            as_viewer = case.call(base_url=base, session=session, headers=VICTOR.auth, timeout=30,
                                  verify=session.verify)  # fmt: skip
            assert as_viewer.status_code == 403, (curl, as_viewer.status_code, as_viewer.text[:300])
            assert "viewer" in json.loads(as_viewer.text)["error"]
            assert agents.state() == before, (curl, "a viewer's request changed the fleet")
            count(f"viewer/{as_viewer.status_code}")

    try:
        check()
    except Unsatisfiable:  # nothing to get wrong (no body, query or path parameter): only positive cases
        assert mode is GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters"), operation.label
