"""The operator URLs over TLS against the real control plane process, real Redis and PostgreSQL and real
agents (in-process `mevagent` wired as `mevagent run` wires it, on an anvil node): roles, four-eyes, the
emergency stop fanned out through the bus and directly, per-agent tokens. The property-based fuzz from
the served OpenAPI is schemathesis', in test_api_schemathesis.py."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from mevcontrol.api import TIMING_RELATIVE_ERROR
from redis import Redis

from mevagent.bus.events import DURABLE_STREAM, FIELD, ExecutionSent, encode
from testbed.control import Operator, bus_agent_config, control_config, outcome, secret_file, start_control, tls_pair
from testbed.e2e import load, running
from testbed.mevboost import stand_in
from testbed.pools import IpcAnvil
from testbed.services import Postgres, RedisServer, free_port

ALICE, BOB, VICTOR = Operator("alice", "operator"), Operator("bob", "operator"), Operator("victor", "viewer")


class Plane:
    def __init__(self, config: dict[str, Any], cert: Path) -> None:
        self.config = config
        self.ssl = ssl.create_default_context(cafile=str(cert))
        listen = config["listen"]
        self.risk = f"https://127.0.0.1:{listen['risk_port']}"
        self.dash = f"https://127.0.0.1:{listen['dashboard_port']}"
        self.relays = f"https://127.0.0.1:{listen['relays_port']}"
        self.metrics = f"http://127.0.0.1:{listen['metrics_port']}/metrics"

    async def call(
        self, method: str, url: str, who: Operator | None = None, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = who.auth if who is not None else {}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body if raw is None else None, data=raw, headers=headers,
                            ssl=self.ssl) as response,
        ):  # fmt: skip
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


@pytest.fixture(scope="module")
def fleet(
    redis_server: RedisServer, postgres: Postgres, node: IpcAnvil, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Plane, list[dict[str, Any]], Any]]:
    """The control plane (TLS) with three configured agents: a1 and a2 real, a3 configured but never running."""
    directory = tmp_path_factory.mktemp("control")
    cert, key = tls_pair(directory)
    agents = []
    entries = []
    for name in ("a1", "a2"):
        token = secrets.token_hex(20)
        data = bus_agent_config(directory / name, node, redis_server, name, token=token)
        agents.append(data)
        url = f"http://127.0.0.1:{data['api']['port']}"
        entries.append({"name": name, "api_url": url, "token_file": str(secret_file(directory / f"{name}.tok", token))})
    dead = secret_file(directory / "a3.tok", secrets.token_hex(20))
    entries.append({"name": "a3", "api_url": f"http://127.0.0.1:{free_port()}", "token_file": str(dead)})
    path = control_config(
        directory, redis_server, postgres, [ALICE, BOB, VICTOR], agents=entries, live_chains=["ethereum"],
        limits={"max_total_exposure_usd": 1000, "daily_limit_usd": 100, "consecutive_losses": 5},
        ceilings={"max_total_exposure_usd": 5000, "daily_limit_usd": 500, "consecutive_losses": 10},
        agent_timeout_s=3, rate_limit_per_s=1000,
    )  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["listen"].update({"tls_cert_file": str(cert), "tls_key_file": str(key)})
    path.write_text(yaml.safe_dump(data))
    proc = start_control(path, directory / "control.log")
    try:
        yield Plane(data, cert), agents, directory
    finally:
        proc.terminate()
        proc.wait(20)


@contextlib.asynccontextmanager
async def agents_running(configs: list[dict[str, Any]]) -> AsyncIterator[list[Any]]:
    async with contextlib.AsyncExitStack() as stack:
        out = [await stack.enter_async_context(running(load(c))) for c in configs]
        yield [agent for agent, _api in out]


async def until(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def healthy(plane: Plane) -> None:
    async def probe() -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            status, _ = await plane.call("GET", plane.dash + "/health")
            return status == 200
        return False

    await until(probe, 60, "the control plane's /health")


async def audit_rows(dsn: str, action: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)
    finally:
        await conn.close()


def test_roles_tokens_and_bad_bodies_change_nothing(fleet: Any) -> None:
    plane, _agents, _ = fleet

    async def scenario() -> None:
        await healthy(plane)
        assert (await plane.call("GET", plane.risk + "/exposure/current"))[0] == 401
        assert (await plane.call("POST", plane.risk + "/emergency/stop", body={"reason": "x"}))[0] == 401
        status, body = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
        assert status == 200 and body["limits"]["max_total_exposure_usd"] == 1000
        status, body = await plane.call("POST", plane.risk + "/config/risk", VICTOR, {"daily_limit_usd": 50})
        assert status == 403 and "viewer" in body["error"]
        # A bad body names the field and changes nothing.
        status, body = await plane.call("POST", plane.risk + "/config/risk", ALICE, {"daily_limit_usd": -5})
        assert status == 400 and body["fields"] == ["daily_limit_usd"]
        status, body = await plane.call("POST", plane.risk + "/config/risk", ALICE, {"daily_limt_usd": 5})
        assert status == 400 and body["fields"] == ["daily_limt_usd"] and "unknown field" in body["error"]
        status, body = await plane.call("POST", plane.risk + "/config/risk", ALICE, raw=b"{not json")
        assert status == 400 and body["fields"] == ["body"]
        _, body = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
        assert body["limits"] == {"max_total_exposure_usd": 1000.0, "daily_limit_usd": 100.0, "consecutive_losses": 5}
        # Within the ceiling: one operator is enough, and it is audited.
        status, body = await plane.call("POST", plane.risk + "/config/risk", ALICE, {"daily_limit_usd": 200})
        assert status == 200 and body["limits"]["daily_limit_usd"] == 200
        # OpenAPI is served on every listener, and metrics on their own.
        for base in (plane.risk, plane.dash, plane.relays):
            status, doc = await plane.call("GET", base + "/openapi.json")
            assert status == 200 and doc["openapi"] == "3.1.0"
        _, doc = await plane.call("GET", plane.dash + "/openapi.json")
        competition = doc["paths"]["/api/analytics/competition"]["get"]
        assert competition["security"] == [{"bearer": []}]
        assert {p["name"] for p in competition["parameters"]} == {"hours", "blocks", "chain", "limit"}
        # A query parameter given twice is refused naming it (not one copy silently used; found by the fuzz).
        status, body = await plane.call("GET", plane.dash + "/api/analytics/sandwiches?chain=a&chain=b", VICTOR)
        assert status == 400 and body["fields"] == ["chain"] and "more than once" in body["error"]
        async with aiohttp.ClientSession() as session, session.get(plane.metrics) as response:
            assert "mevcontrol_lease_granting" in await response.text()

    asyncio.run(scenario())
    rows = asyncio.run(audit_rows(_dsn(fleet), "set_fleet_limits"))
    assert rows[-1]["operator"] == "alice" and rows[-1]["approved_by"] is None


def _dsn(fleet: Any) -> str:
    _plane, _agents, directory = fleet
    return (directory / "pg.dsn").read_text().strip()


def test_emergency_stop_reaches_every_agent_by_bus_and_api_and_names_the_silent_one_and_resume_needs_two(
    fleet: Any,
) -> None:
    plane, configs, _ = fleet

    async def scenario() -> None:
        await healthy(plane)
        async with agents_running(configs) as agents:
            # Both agents heartbeat, so both are on the bus.
            async def known() -> bool:
                _, body = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
                return {"a1", "a2"} <= set(body["by_agent"])

            await until(known, 30, "both agents' exposure reports")
            status, body = await plane.call("POST", plane.risk + "/emergency/stop", ALICE, {"reason": "drill"})
            assert status == 200, body
            assert body["agents"]["a1"] == {"api": "acknowledged", "bus": "acked"}
            assert body["agents"]["a2"] == {"api": "acknowledged", "bus": "acked"}
            assert body["not_answered"] == ["a3"]
            assert all(a.gate.emergency_stopped for a in agents)
            # No leases while stopped.
            _, exposure = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
            assert exposure["leases_granted"] is False and exposure["emergency_stop"]["engaged"]

            # Resuming: alice asks, alice cannot approve, bob can.
            status, request = await plane.call("POST", plane.risk + "/emergency/resume", ALICE)
            assert status == 202
            approve = f"{plane.risk}/approvals/{request['approval_id']}/approve"
            status, body = await plane.call("POST", approve, ALICE)
            assert status == 403 and "four-eyes" in body["error"]
            assert all(a.gate.emergency_stopped for a in agents)
            status, body = await plane.call("POST", approve, VICTOR)
            assert status == 403
            status, body = await plane.call("POST", approve, BOB)
            assert status == 200 and body["approved_by"] == "bob" and body["requested_by"] == "alice"
            assert not any(a.gate.emergency_stopped for a in agents)
            assert (await plane.call("POST", approve, BOB))[0] == 409  # once only

    asyncio.run(scenario())
    rows = asyncio.run(audit_rows(_dsn(fleet), "emergency_resume"))
    assert [r["result"] for r in rows] == ["awaiting approval", "refused: four-eyes", "released"]
    assert rows[-1]["operator"] == "alice" and rows[-1]["approved_by"] == "bob"


def test_enabling_live_and_raising_a_limit_above_the_ceiling_take_a_second_operator(fleet: Any) -> None:
    plane, _configs, _ = fleet

    async def scenario() -> None:
        await healthy(plane)
        status, request = await plane.call("POST", plane.dash + "/api/strategies/enable", BOB,
                                           {"chain": "base", "live": True})  # fmt: skip
        assert status == 202
        _, exposure = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
        assert exposure["live_chains"] == ["ethereum"]
        approve = f"{plane.risk}/approvals/{request['approval_id']}/approve"
        assert (await plane.call("POST", approve, BOB))[0] == 403
        status, body = await plane.call("POST", approve, ALICE)
        assert status == 200 and body["live_chains"] == ["base", "ethereum"]
        # Disabling is safer: one operator, at once.
        status, body = await plane.call("POST", plane.dash + "/api/strategies/enable", BOB,
                                        {"chain": "base", "live": False})  # fmt: skip
        assert status == 200 and body["live_chains"] == ["ethereum"]

        status, request = await plane.call("POST", plane.risk + "/config/risk", ALICE, {"max_total_exposure_usd": 9000})
        assert status == 202
        _, exposure = await plane.call("GET", plane.risk + "/exposure/current", VICTOR)
        assert exposure["limits"]["max_total_exposure_usd"] == 1000
        approve = f"{plane.risk}/approvals/{request['approval_id']}/approve"
        status, body = await plane.call("POST", approve, BOB)
        assert status == 200 and body["limits"]["max_total_exposure_usd"] == 9000

    asyncio.run(scenario())


def test_the_token_of_one_agent_cannot_drive_another(fleet: Any) -> None:
    _plane, configs, _ = fleet

    async def scenario() -> None:
        async with agents_running(configs) as agents:
            a1_token = Path(configs[0]["api"]["token_file"]).read_text().strip()
            a2_url = f"http://127.0.0.1:{configs[1]['api']['port']}"
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {a1_token}"}
                async with session.post(a2_url + "/emergency/stop", json={"reason": "x"}, headers=headers) as r:
                    assert r.status == 401
            assert not agents[1].gate.emergency_stopped

    asyncio.run(scenario())


def test_relays_status_on_8900_shows_mev_boost_as_the_agent_beside_it_saw_it(fleet: Any) -> None:
    """a1 runs beside a mev-boost (testbed.mevboost's stand-in for the binary, which cannot be obtained here,
    answering the builder API's status route): :8900 shows its status as a1's checks saw it, 503 and then 200;
    a2 has none configured (null); a3 does not answer at all."""
    plane, configs, _ = fleet
    a1 = copy.deepcopy(configs[0])

    async def scenario() -> None:
        await healthy(plane)
        async with stand_in() as boost:
            boost.mode = "no_relays"
            a1["chains"][0]["mev_boost"] = {"url": boost.url, "poll_s": 1, "timeout_ms": 500}
            async with agents_running([a1, configs[1]]):

                def seen(status: str) -> Any:
                    async def probe() -> Any:
                        code, body = await plane.call("GET", plane.relays + "/relays/status", VICTOR)
                        assert code == 200, body
                        boosts = body["agents"]["a1"]["answer"]["mev_boost"]
                        return body if boosts and boosts[0]["status"] == status else None

                    return probe

                body = await until(seen("no_relays"), 20, "a1's mev-boost check (503) on :8900")
                [entry] = body["agents"]["a1"]["answer"]["mev_boost"]
                assert (entry["chain"], entry["http_status"], entry["url"]) == (
                    "ethereum", 503, boost.url + "/eth/v1/builder/status"
                )  # fmt: skip
                assert entry["consecutive_failures"] >= 1 and "all relays are unavailable" in entry["last_error"]
                assert body["agents"]["a1"]["answer"]["endpoints"] == []
                assert body["agents"]["a2"] == {"ok": True, "answer": {"endpoints": [], "mev_boost": None}}
                assert body["agents"]["a3"]["ok"] is False
                boost.mode = "ok"
                body = await until(seen("ok"), 20, "a1's mev-boost check (200) on :8900")
                entry = body["agents"]["a1"]["answer"]["mev_boost"][0]
                assert entry["consecutive_failures"] == 0 and entry["failures"] >= 1 and entry["last_ok_at"]

    asyncio.run(scenario())


def test_mevfleet_ctl_reads_the_token_from_a_file_and_drives_the_urls(fleet: Any, tmp_path: Path) -> None:
    plane, _configs, _ = fleet
    asyncio.run(healthy(plane))
    listen = plane.config["listen"]
    mevfleet = Path(sys.executable).parent / "mevfleet"

    def ctl(who: Operator, *args: str, mode: int = 0o600) -> subprocess.CompletedProcess[str]:
        token = tmp_path / f"{who.name}.token"
        token.write_text(who.token + "\n")
        os.chmod(token, mode)
        common = ["--risk-port", str(listen["risk_port"]), "--dashboard-port", str(listen["dashboard_port"]),
                  "--token-file", str(token), "--ca-file", listen["tls_cert_file"]]  # fmt: skip
        return subprocess.run([str(mevfleet), "ctl", *common, *args], capture_output=True, text=True, timeout=60)

    shown = ctl(VICTOR, "exposure")
    assert shown.returncode == 0, shown.stderr
    assert "max_total_exposure_usd" in json.loads(shown.stdout)["limits"]
    refused = ctl(VICTOR, "limits", "--daily-limit-usd", "300")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    loose = ctl(ALICE, "exposure", mode=0o644)
    assert loose.returncode == 1 and "chmod 600" in loose.stderr
    report = ctl(ALICE, "report", "--csv")
    assert report.returncode == 0 and report.stdout.startswith("chain,strategy,token,executions")
    asked = ctl(ALICE, "limits", "--consecutive-losses", "50")  # above the ceiling of 10
    assert asked.returncode == 0 and "approval_id" in asked.stdout, asked.stderr
    approval = json.loads(asked.stdout)["approval_id"]
    assert ctl(ALICE, "approve", approval).returncode == 1
    approved = ctl(BOB, "approve", approval)
    assert approved.returncode == 0 and json.loads(approved.stdout)["limits"]["consecutive_losses"] == 50


def test_execution_timing_reports_detection_to_send_from_execution_sent(fleet: Any, redis_server: RedisServer) -> None:
    """Three executions on a chain of their own, published with their real clock readings: two settled
    (detection -> send 1 s and 3 s, send -> settled 4 s and 6 s, 2 and 4 blocks), one still waiting."""
    plane, _configs, _ = fleet
    now = time.time()
    events: list[Any] = []
    for n, (to_send, to_settle, blocks) in enumerate(((1.0, 4.0, 2), (3.0, 6.0, 4), (2.0, None, None))):
        found_at, sent_at = now - 30 + n, now - 30 + n + to_send
        tx_hash = "0x" + f"{n + 77:064x}"
        sent = ExecutionSent(agent="a1", chain="timing", strategy="dex_arb", opportunity_id=f"timing-{n}",
                             block=100, tx_hashes=(tx_hash,), found_at=found_at, at=sent_at)  # fmt: skip
        events.append(sent)
        if to_settle is not None:
            events.append(outcome("a1", n).model_copy(update={
                "chain": "timing", "opportunity_id": f"timing-{n}", "block": 100, "included_block": 100 + blocks,
                "found_at": found_at, "settled_at": sent_at + to_settle, "at": sent_at + to_settle,
            }))  # fmt: skip
    client = Redis.from_url(redis_server.url, password=redis_server.password)
    try:
        for event in events:
            client.xadd(DURABLE_STREAM, {FIELD: encode(event)})
    finally:
        client.close()

    async def timing() -> dict[str, Any] | None:
        status, body = await plane.call("GET", plane.dash + "/api/execution/timing?hours=1", VICTOR)
        assert status == 200, body
        row = next((r for r in body["chains"] if r["chain"] == "timing"), None)
        return row if row and row["executions"] == 3 and row["settled"] == 2 else None

    async def scenario() -> dict[str, Any]:
        await healthy(plane)
        return await until(timing, 30, "the three executions in the timing report")

    row = asyncio.run(scenario())
    # Seconds from the hourly histograms (revision 0016): within their bucket error of the exact percentile.
    error = {"rel": TIMING_RELATIVE_ERROR, "abs": 1e-5}
    assert row["found_to_sent_p50_s"] == pytest.approx(2.0, **error)  # the unsettled one counts: sent
    assert row["found_to_sent_p99_s"] == pytest.approx(2.98, **error)
    assert row["sent_to_settled_p50_s"] == pytest.approx(5.0, **error)
    assert row["found_to_settled_p50_s"] == pytest.approx(7.0, **error)
    assert row["blocks_to_inclusion_p50"] == 3 and row["blocks_to_inclusion_p99"] == pytest.approx(3.98)
