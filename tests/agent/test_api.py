"""The control API over real HTTP (aiohttp's test server on 127.0.0.1): auth on every mutating call, 400s
that name the field and change nothing, persistence of stop and pause, readiness against a real anvil."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mevagent.api import ROUTES, ControlPlane, ReadinessCheck, StateFreshness, make_app, node_synced
from mevagent.api.app import start_servers
from mevagent.api.openapi import document
from mevagent.config import AgentConfig, validate
from mevagent.core import Hop, Opportunity, Outcome, Status
from mevagent.engine import Engine
from mevagent.executor.bundles import EndpointResult, RelayStatus
from testbed.agent_plane import control_plane
from testbed.evm import Chain
from testbed.services import free_port

TOKEN = "k3y-" + "x" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_config(tmp_path: Path) -> AgentConfig:
    token = tmp_path / "api-token"
    token.write_text(TOKEN + "\n")
    os.chmod(token, 0o600)
    return validate(
        {
            "state_dir": str(tmp_path / "state"),
            "api": {"token_file": str(token)},
            "chains": [
                {"name": "ethereum", "chain_id": 1, "ws_url": "ws://127.0.0.1:8546", "max_gas_price_gwei": 100},
                {"name": "arbitrum", "chain_id": 42161, "ws_url": "ws://127.0.0.1:8548", "max_gas_price_gwei": 2},
            ],
            "strategies": {"dex_arb": {"min_profit_bps": 10}},
        }
    )


def make_plane(tmp_path: Path, **kwargs: Any) -> ControlPlane:
    return control_plane(make_config(tmp_path), **kwargs)


@asynccontextmanager
async def serving(plane: ControlPlane) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(make_app(plane), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def run(tmp_path: Path, body: Callable[[TestClient, ControlPlane], Awaitable[None]], **kwargs: Any) -> None:
    async def go() -> None:
        plane = make_plane(tmp_path, **kwargs)
        async with serving(plane) as client:
            await body(client, plane)

    asyncio.run(go())


def state(plane: ControlPlane, tmp_path: Path) -> tuple:
    """Everything a call could change, including what is on disk."""
    files = (
        {p.name: p.read_bytes() for p in sorted((tmp_path / "state").glob("*"))}
        if (tmp_path / "state").exists()
        else {}
    )
    settings = plane.settings
    return (
        plane.gate.snapshot(),
        settings.gas.model_dump(),
        settings.profit.model_dump(),
        {n: s.model_dump() for n, s in settings.strategies.items()},
        files,
    )


MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    ("/config/risk", {"max_position_size_usd": 500}),
    ("/config/gas", {"priority_fee_gwei": 2}),
    ("/config/profit", {"daily_profit_target_usd": 100}),
    ("/limits/set", {"chain": "ethereum", "max_gas_price_gwei": 50}),
    ("/strategies/dex_arb/pause", {}),
    ("/strategies/dex_arb/resume", {}),
    ("/emergency/stop", {"reason": "test"}),
    ("/emergency/resume", {}),
]


def test_every_route_in_the_table_is_served_and_every_post_is_a_mutation() -> None:
    assert {r.method for r in ROUTES} == {"GET", "POST"}
    assert {r.path for r in ROUTES if r.mutating} == {p.replace("dex_arb", "{name}") for p, _ in MUTATIONS}


def test_reads_need_no_token(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        for path in ("/health", "/stats", "/exposure/current", "/relays/status", "/opportunities", "/openapi.json"):
            response = await client.get(path)
            assert response.status == 200, path
        health = await (await client.get("/health")).json()
        assert health["status"] == "ok"
        exposure = await (await client.get("/exposure/current")).json()
        assert exposure["limits"]["max_consecutive_failures"] == 5
        assert exposure["chain_limits"]["arbitrum"]["max_gas_price_gwei"] == 2

    run(tmp_path, body)


@pytest.mark.parametrize(("path", "payload"), MUTATIONS)
def test_every_mutation_needs_the_token_and_changes_nothing_without_it(
    tmp_path: Path, path: str, payload: dict
) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        before = state(plane, tmp_path)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": "Basic " + TOKEN},
            {"Authorization": "Bearer " + TOKEN[:-1]},
            {"Authorization": "Bearer " + TOKEN + "x"},
        ):
            response = await client.post(path, json=payload, headers=headers)
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["fields"] == ["Authorization"]
        assert state(plane, tmp_path) == before
        response = await client.post(path, json=payload, headers={"Authorization": f"bearer {TOKEN}"})
        assert response.status == 200, await response.text()

    run(tmp_path, body)


BAD: list[tuple[str, Any, str]] = [
    ("/config/risk", {"max_position_size_usd": -1}, "max_position_size_usd"),
    ("/config/risk", {"max_position_size_usd": "big"}, "max_position_size_usd"),
    ("/config/risk", {"max_position_size_usd": None}, "max_position_size_usd"),
    ("/config/risk", {"max_slippage_bps": 10, "max_consecutive_failurez": 3}, "max_consecutive_failurez"),
    ("/config/risk", {"max_position_size_usd": 60_000}, "max_position_size_usd"),  # > total exposure
    ("/config/risk", {"max_daily_loss_usd": 100}, "max_daily_loss_usd"),  # below the per-chain limit
    ("/config/gas", {"builder_payment_share": 1.5}, "builder_payment_share"),
    ("/config/gas", {"priority_fee_gwei": 1, "gas_limit_per_hop": 0}, "gas_limit_per_hop"),
    ("/config/profit", {"strategies": {"dex_arb": {"min_profit_bps": -3}}}, "strategies.dex_arb.min_profit_bps"),
    ("/config/profit", {"daily_profit_target_usd": 5, "strategies": {"sandwich": {}}}, "strategies.sandwich"),
    ("/config/profit", {"daily_profit_target_usd": "a lot"}, "daily_profit_target_usd"),
    ("/limits/set", {"chain": "solana", "max_gas_price_gwei": 1}, "chain"),
    ("/limits/set", {"max_gas_price_gwei": 1}, "chain"),
    ("/limits/set", {"chain": "ethereum", "max_gas_price_gwei": None}, "max_gas_price_gwei"),
    ("/limits/set", {"chain": "ethereum", "max_chain_exposure_usd": 0}, "max_chain_exposure_usd"),
    ("/strategies/dex_arb/pause", {"now": True}, "now"),
    ("/emergency/stop", {"reason": ""}, "reason"),
    ("/emergency/stop", {"reason": "x", "force": 1}, "force"),
    ("/emergency/resume", {"all": True}, "all"),
    ("/config/risk", [1, 2], "body"),
    ("/config/risk", b"{not json", "body"),
    ("/config/gas", b"x" * 70_000, "body"),
]


@pytest.mark.parametrize(("path", "payload", "field"), BAD)
def test_bad_payloads_get_400_naming_the_field_and_change_nothing(
    tmp_path: Path, path: str, payload: Any, field: str
) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        plane.gate.pause("liquidations")  # some state on disk, to see it is not rewritten
        before = state(plane, tmp_path)
        if isinstance(payload, bytes):
            response = await client.post(path, data=payload, headers={**AUTH, "Content-Type": "application/json"})
        else:
            response = await client.post(path, json=payload, headers=AUTH)
        answer = await response.json()
        assert response.status in (400, 413), answer
        assert field in answer["fields"], answer
        assert field in answer["error"]
        assert state(plane, tmp_path) == before

    run(tmp_path, body)


def test_unknown_strategy_is_404_naming_it(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        response = await client.post("/strategies/sandwich/pause", headers=AUTH)
        assert response.status == 404
        assert (await response.json())["error"] == "name: 'sandwich' is not a configured strategy"
        assert plane.gate.paused == frozenset()

    run(tmp_path, body)


def test_changes_take_effect(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        seen: list[float] = []
        plane.settings.subscribe(lambda s: seen.append(s.gas.priority_fee_gwei))
        r = await client.post("/config/risk", json={"max_position_size_usd": 500, "max_slippage_bps": 20}, headers=AUTH)
        assert (await r.json())["state"]["limits"]["max_position_size_usd"] == 500
        assert plane.gate.limits.max_position_size_usd == 500 and plane.gate.limits.max_slippage_bps == 20
        assert plane.gate.limits.max_daily_loss_usd == 1_000  # untouched fields keep their value
        await client.post("/config/gas", json={"priority_fee_gwei": 3.5}, headers=AUTH)
        assert plane.settings.gas.priority_fee_gwei == 3.5 and seen == [3.5]
        r = await client.post(
            "/config/profit",
            json={"daily_profit_target_usd": 250, "strategies": {"dex_arb": {"min_profit_threshold": 9}}},
            headers=AUTH,
        )
        assert r.status == 200
        assert plane.settings.profit.daily_profit_target_usd == 250
        assert plane.settings.strategies["dex_arb"].min_profit_threshold == 9
        assert plane.settings.strategies["dex_arb"].min_profit_bps == 10
        assert plane.metrics.render().count(b"mev_daily_profit_target_usd 250.0") == 1
        r = await client.post(
            "/limits/set",
            json={"chain": "arbitrum", "max_gas_price_gwei": 0.5, "max_chain_exposure_usd": 700},
            headers=AUTH,
        )
        assert (await r.json())["state"]["chain_limits"] == {
            "max_gas_price_gwei": 0.5,
            "max_chain_exposure_usd": 700,
            "max_daily_loss_usd": 500,
        }
        r = await client.post("/limits/set", json={"chain": "arbitrum", "max_chain_exposure_usd": None}, headers=AUTH)
        assert (await r.json())["state"]["chain_limits"]["max_chain_exposure_usd"] == 25_000  # back to the global
        assert plane.gate.chain_limits("arbitrum").max_gas_price_wei == 500_000_000

    run(tmp_path, body)


def test_an_integer_written_with_a_zero_fraction_is_an_integer(tmp_path: Path) -> None:
    """JSON Schema's integer is any number without a fraction (6.0 is one, as the OpenAPI document reads):
    the fleet fuzz found `"target_blocks": 6.0` refused by strict parsing. A fraction is still refused, and
    false is still not a number."""

    async def body(client: TestClient, plane: ControlPlane) -> None:
        r = await client.post("/config/gas", data=b'{"target_blocks": 6.0, "gas_limit_base": 1.5e5}', headers=AUTH)
        assert r.status == 200, await r.text()
        assert plane.settings.gas.target_blocks == 6 and plane.settings.gas.gas_limit_base == 150_000
        before = state(plane, tmp_path)
        for bad, field in ((b'{"target_blocks": 6.5}', "target_blocks"), (b'{"target_blocks": false}', "target_blocks"),
                           (b'{"gas_limit_base": 1e300}', "gas_limit_base")):  # fmt: skip
            r = await client.post("/config/gas", data=bad, headers=AUTH)
            assert r.status == 400 and (await r.json())["fields"] == [field]
        assert state(plane, tmp_path) == before

    run(tmp_path, body)


def opportunity(n: int, strategy: str = "dex_arb") -> Opportunity:
    token, usdc = "0x" + "aa" * 20, "0x" + "bb" * 20
    return Opportunity(
        "ethereum",
        strategy,
        7,
        (Hop("0x" + "01" * 20, "v2", token, usdc), Hop("0x" + "02" * 20, "v3", usdc, token)),
        10**18,
        10**18 + 5 * 10**15,
        250_000,
        20 * 10**9,
        0,
        3_000.0,
        40.0,
        2.0,
        0,
        f"op-{n}",
    )


def test_pause_and_emergency_stop_reach_the_gate_and_survive_a_restart(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        assert (await client.post("/strategies/dex_arb/pause", headers=AUTH)).status == 200
        assert plane.gate.check(opportunity(1)).reason == "strategy_paused: dex_arb is paused"
        assert plane.gate.check(opportunity(2, "liquidations")).allowed
        r = await client.post("/emergency/stop", json={"reason": "operator saw reverts"}, headers=AUTH)
        assert (await r.json())["state"]["emergency_stop"]["engaged"] is True
        assert (
            plane.gate.check(opportunity(3, "liquidations")).reason == "emergency_stop: engaged (operator saw reverts)"
        )
        restarted = make_plane(tmp_path)
        assert restarted.gate.emergency_stopped and restarted.gate.paused == {"dex_arb"}
        await client.post("/emergency/resume", headers=AUTH)
        await client.post("/strategies/dex_arb/resume", json={}, headers=AUTH)
        restarted = make_plane(tmp_path)
        assert not restarted.gate.emergency_stopped and restarted.gate.paused == frozenset()
        stats = await (await client.get("/stats")).json()
        assert stats["risk"]["in_flight"] == 1 and stats["risk"]["emergency_stop"]["engaged"] is False

    run(tmp_path, body)


def test_a_change_the_state_dir_cannot_take_is_503_and_the_stop_holds(tmp_path: Path) -> None:
    """A full disk (tests/agent/test_full_disk.py, and for real in tests/integration/test_host_live.py)
    stands in here as the control file's temporary path taken by a directory: the write fails the same way."""

    async def body(client: TestClient, plane: ControlPlane) -> None:
        assert (await client.post("/emergency/stop", json={"reason": "drill"}, headers=AUTH)).status == 200
        before = state(plane, tmp_path)
        taken = tmp_path / "state" / f".control.json.{os.getpid()}.tmp"
        taken.mkdir()
        r = await client.post("/emergency/resume", headers=AUTH)
        taken.rmdir()
        assert r.status == 503
        answer = await r.json()
        assert answer["fields"] == ["state_dir"] and answer["error"].startswith("state_dir: not written ("), answer
        assert state(plane, tmp_path) == before and plane.gate.emergency_stopped
        assert make_plane(tmp_path).gate.emergency_stopped

    run(tmp_path, body)


def test_emergency_stop_through_a_running_engine(tmp_path: Path) -> None:
    """In the agent the API sends commands through the engine's never-dropping control queue."""

    class Idle:
        async def execute(self, opportunity: Opportunity) -> Outcome:
            raise AssertionError("nothing to execute")

    async def go() -> None:
        plane = make_plane(tmp_path)
        engine = Engine([], [], Idle(), plane.gate, metrics=plane.metrics, recent=plane.recent)
        plane.apply, plane.engine_stats = engine.command, engine.stats
        task = asyncio.create_task(engine.run())
        async with serving(plane) as client:
            assert (await client.post("/emergency/stop", headers=AUTH)).status == 200
            assert plane.gate.emergency_stopped
            stats = await (await client.get("/stats")).json()
            assert stats["engine"]["counts"]["commands"] == 1
            assert stats["engine"]["queues"]["control"]["depth"] == 0
        engine.stop()
        await task

    asyncio.run(go())


def test_opportunities_are_recent_and_bounded(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        opps = [opportunity(n) for n in range(8)]
        for o in opps:
            plane.recent.found(o)
        plane.recent.settled(Outcome(opps[7], Status.DRY_RUN, realized_profit_usd=15.0))
        answer = (await (await client.get("/opportunities")).json())["opportunities"]
        assert [e["id"] for e in answer] == [f"op-{n}" for n in range(3, 8)]  # kept: the last 5
        assert answer[-1]["status"] == "dry_run" and answer[-1]["amount_in"] == str(10**18)
        answer = (await (await client.get("/opportunities?since=6&limit=1")).json())["opportunities"]
        assert [e["seq"] for e in answer] == [8]
        for query in ("limit=0", "since=-1", "limit=abc", "color=red"):
            response = await client.get(f"/opportunities?{query}")
            assert response.status == 400, query
            assert query.split("=")[0] in (await response.json())["fields"]

    run(tmp_path, body)


def test_relays_status_shows_the_executors_endpoint_figures(tmp_path: Path) -> None:
    relay = RelayStatus("ethereum")
    status = relay.endpoint("flashbots", "http://127.0.0.1:1/")
    relay.record(status, EndpointResult("flashbots", 8, "timeout", 0.5))
    relay.record(relay.endpoint("titan", "http://127.0.0.1:2/"), EndpointResult("titan", 8, "ok", 0.012))

    async def body(client: TestClient, plane: ControlPlane) -> None:
        answer = (await (await client.get("/relays/status")).json())["endpoints"]
        assert [(e["name"], e["last_status"], e["requests"]) for e in answer] == [
            ("flashbots", "timeout", 1),
            ("titan", "ok", 1),
        ]
        assert answer[1]["last_latency_s"] == 0.012 and answer[0]["timeouts"] == 1

    run(tmp_path, body, relays=[relay])


def test_metrics_are_served_in_prometheus_format(tmp_path: Path) -> None:
    async def body(client: TestClient, plane: ControlPlane) -> None:
        plane.gate.check(opportunity(1))
        plane.metrics.stage("ethereum", "strategy", 42_000)
        response = await client.get("/metrics")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
        assert 'mev_risk_exposure_usd{chain="ethereum"} 3000.0' in text
        assert 'mev_latency_bucket{chain="ethereum",le="5e-05",stage="strategy"} 1.0' in text
        assert "mev_emergency_stop 0.0" in text

    run(tmp_path, body)


def test_openapi_document_describes_every_route_from_the_models(tmp_path: Path) -> None:
    doc = document()
    assert doc["openapi"].startswith("3.")
    served = set()

    async def body(client: TestClient, plane: ControlPlane) -> None:
        for resource in client.app.router.resources():
            for route in resource:
                if route.method != "HEAD":
                    served.add((route.method.lower(), resource.canonical))
        assert await (await client.get("/openapi.json")).json() == doc

    run(tmp_path, body)
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served and len(served) == 17
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and "200" in op["responses"], path
            if method == "post":
                assert op["security"] == [{"bearer": []}] and {"400", "401"} <= set(op["responses"]), path
            else:
                assert "security" not in op, path
    assert set(schemas["RiskPatch"]["properties"]) >= {
        "max_position_size_usd",
        "max_daily_loss_usd",
        "max_slippage_bps",
    }
    assert schemas["RiskPatch"]["additionalProperties"] is False
    assert doc["paths"]["/strategies/{name}/pause"]["post"]["parameters"][0]["name"] == "name"
    assert {p["name"] for p in doc["paths"]["/opportunities"]["get"]["parameters"]} == {"since", "limit"}


def test_ready_is_503_until_the_node_is_synced_and_state_fresh(tmp_path: Path, chain: Chain) -> None:
    url = chain.w3.provider.endpoint_uri

    async def go() -> None:
        async with aiohttp.ClientSession() as session:

            async def call(method: str, params: Any) -> Any:
                async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as r:
                    return (await r.json())["result"]

            async def unreachable(method: str, params: Any) -> Any:
                async with session.post(f"http://127.0.0.1:{free_port()}", json={}) as r:
                    return await r.json()

            freshness = StateFreshness(max_age_s=3_600)
            plane = make_plane(
                tmp_path,
                readiness=[
                    ReadinessCheck("node_synced", node_synced(call, max_head_age_s=10**9), chain="ethereum"),
                    ReadinessCheck("state_fresh", freshness.check, chain="ethereum"),
                ],
            )
            async with serving(plane) as client:
                r = await client.get("/ready")
                answer = await r.json()
                assert r.status == 503 and answer["ready"] is False
                assert [c["ok"] for c in answer["checks"]] == [True, False]
                assert answer["checks"][1]["detail"] == "pool state not loaded yet"
                assert b'mev_agent_ready{chain="ethereum"} 0.0' in plane.metrics.render()
                freshness.mark(chain.w3.eth.block_number)
                r = await client.get("/ready")
                assert r.status == 200, await r.text()
                assert b'mev_agent_ready{chain="ethereum"} 1.0' in plane.metrics.render()
            down = make_plane(tmp_path, readiness=[ReadinessCheck("node_synced", node_synced(unreachable, 60))])
            async with serving(down) as client:
                r = await client.get("/ready")
                assert r.status == 503
                assert "ClientConnectorError" in (await r.json())["checks"][0]["detail"]
            nothing = make_plane(tmp_path)
            async with serving(nothing) as client:
                assert (await client.get("/ready")).status == 503

    asyncio.run(go())


def test_real_servers_bind_loopback_and_never_log_the_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path)
    api = config.api.updated({"port": free_port(), "metrics_port": free_port()})
    assert api.bind == "127.0.0.1" and api.metrics_bind == "127.0.0.1"

    async def go() -> None:
        plane = make_plane(tmp_path)
        servers = await start_servers(api, plane)
        try:
            sockets = [s.getsockname() for r in servers.runners for site in r.sites for s in site._server.sockets]
            assert {host for host, _ in sockets} == {"127.0.0.1"}
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{api.port}"
                async with session.post(f"{base}/emergency/stop", json={"reason": "drill"}, headers=AUTH) as r:
                    assert r.status == 200
                async with session.post(
                    f"{base}/emergency/resume", headers={"Authorization": "Bearer " + TOKEN[:-1]}
                ) as r:
                    assert r.status == 401
                async with session.get(f"http://127.0.0.1:{api.metrics_port}/metrics") as r:
                    assert r.status == 200 and "mev_emergency_stop 1.0" in await r.text()
                async with session.post(f"http://127.0.0.1:{api.metrics_port}/emergency/resume", headers=AUTH) as r:
                    assert r.status in (404, 405)  # the metrics listener has no control routes
        finally:
            await servers.close()
        assert plane.gate.emergency_stopped

    with caplog.at_level(logging.DEBUG):
        asyncio.run(go())
    assert "drill" in caplog.text  # the log is captured...
    assert TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text  # ...and the token is not in it
    assert TOKEN not in repr(make_plane(tmp_path))
