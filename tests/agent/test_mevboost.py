"""The agent's mev-boost status checks (mevagent.executor.mevboost), against a stand-in for mev-boost.

mev-boost's binary cannot be obtained here (it is on none of the registries this machine reaches), so
testbed.mevboost.StandIn, a small aiohttp server on 127.0.0.1, answers the builder API's status route as the
spec says and mev-boost started with `-relay-check` does: `GET /eth/v1/builder/status` is 200 when at least
one relay answered, 503 with mev-boost's error body when none did. It can also answer too late for the
agent's timeout, answer something unexpected, or be gone (connection refused). What the agent makes of each
is asserted on its `/relays/status` and `/metrics`; tests/agent/control/test_api.py follows it through the
control plane's :8900."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from mevagent import metrics_names as names
from mevagent.api import ControlPlane, make_app
from mevagent.api.openapi import document
from mevagent.config import MevBoostConfig, validate
from mevagent.executor.mevboost import MevBoostProbe
from mevagent.metrics import AgentMetrics
from testbed.agent_plane import control_plane
from testbed.mevboost import stand_in

pytestmark = pytest.mark.timeout(60)


def plane(tmp_path: Path, metrics: AgentMetrics, **kwargs: Any) -> ControlPlane:
    token = tmp_path / "api-token"
    token.write_text("t0ken-" + "y" * 40)
    os.chmod(token, 0o600)
    config = validate(
        {
            "state_dir": str(tmp_path / "state"),
            "api": {"token_file": str(token)},
            "chains": [{"name": "ethereum", "chain_id": 1, "ws_url": "ws://127.0.0.1:8546", "max_gas_price_gwei": 9}],
        }
    )
    return control_plane(config, metrics, **kwargs)


async def relays_and_metrics(control: ControlPlane) -> tuple[dict[str, Any], str]:
    client = TestClient(TestServer(make_app(control), host="127.0.0.1"))
    await client.start_server()
    try:
        relays = await (await client.get("/relays/status")).json()
        text = await (await client.get("/metrics")).text()
        return relays, text
    finally:
        await client.close()


def test_each_answer_of_the_status_route_is_recorded_and_exported(tmp_path: Path) -> None:
    """200, 503, an answer past the timeout, an unexpected code and a refused connection, one check each."""
    metrics = AgentMetrics()

    async def scenario() -> None:
        async with stand_in() as boost:
            probe = MevBoostProbe("ethereum", MevBoostConfig(url=boost.url, timeout_ms=300), metrics)
            async with aiohttp.ClientSession() as session:
                status = await probe.check(session)
                assert (status.status, status.http_status, status.checks, status.failures) == ("ok", 200, 1, 0)
                assert status.url == boost.url + "/eth/v1/builder/status" and status.last_ok_at == status.last_at
                assert 0 < status.latency_s < 0.3
                first_ok = status.last_ok_at

                boost.mode = "no_relays"
                await probe.check(session)
                assert (status.status, status.http_status, status.consecutive_failures) == ("no_relays", 503, 1)
                assert "all relays are unavailable" in status.last_error and status.last_ok_at == first_ok

                boost.mode = "slow"
                started = time.perf_counter()
                await probe.check(session)
                assert time.perf_counter() - started < 1.5  # bounded by the probe's timeout, not the server
                assert (status.status, status.http_status, status.consecutive_failures) == ("timeout", None, 2)
                assert status.latency_s >= 0.3 and status.last_error == "no answer in 0.3 s"

                boost.mode = "teapot"
                await probe.check(session)
                assert (status.status, status.http_status, status.last_error) == ("error", 418, "not a status")

                relays, text = await relays_and_metrics(plane(tmp_path, metrics, mev_boost=[status]))
                assert relays["mev_boost"] == [status.snapshot()]
                assert relays["mev_boost"][0]["status"] == "error" and relays["mev_boost"][0]["failures"] == 3
                assert 'mev_mevboost_checks_total{chain="ethereum",status="timeout"} 1.0' in text

                boost.mode = "ok"
                await probe.check(session)
                assert (status.status, status.consecutive_failures, status.failures, status.checks) == ("ok", 0, 3, 5)

            # Nothing listens there any more: the connection is refused.
            await boost.stop()
            async with aiohttp.ClientSession() as session:
                await probe.check(session)
            assert (status.status, status.http_status, status.consecutive_failures) == ("error", None, 1)
            assert "ClientConnectorError" in status.last_error

        value = metrics.value
        for result, count in (("ok", 2), ("no_relays", 1), ("timeout", 1), ("error", 2)):
            assert value(names.MEVBOOST_CHECKS, "ethereum", result, suffix="_total") == count, result
        assert value(names.MEVBOOST_UP, "ethereum") == 0
        assert value(names.MEVBOOST_CONSECUTIVE_FAILURES, "ethereum") == 1
        assert value(names.MEVBOOST_CHECK_SECONDS, "ethereum", suffix="_count") == 6

    asyncio.run(scenario())


def test_the_probe_task_follows_mev_boost_and_relays_status_shows_it(tmp_path: Path) -> None:
    """The probe's own task, once a second: it sees mev-boost lose its relays and get one back, and the agent's
    /relays/status and /metrics say so; without mev-boost configured, `mev_boost` is null."""
    metrics = AgentMetrics()

    async def until(probe: MevBoostProbe, status: str, checks: int) -> None:
        deadline = time.monotonic() + 10
        while not (probe.status.status == status and probe.status.checks >= checks):
            assert time.monotonic() < deadline, f"no {status} after {checks} checks: {probe.status}"
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        async with stand_in() as boost:
            probe = MevBoostProbe("ethereum", MevBoostConfig(url=boost.url + "/", poll_s=1, timeout_ms=500), metrics)
            task = asyncio.create_task(probe.run())
            try:
                await until(probe, "ok", 1)
                control = plane(tmp_path, metrics, mev_boost=[probe.status])
                relays, text = await relays_and_metrics(control)
                [entry] = relays["mev_boost"]
                assert (entry["chain"], entry["status"], entry["http_status"], entry["checks"]) == (
                    "ethereum", "ok", 200, 1
                )  # fmt: skip
                assert relays["endpoints"] == []
                assert 'mev_mevboost_up{chain="ethereum"} 1.0' in text

                boost.mode = "no_relays"
                await until(probe, "no_relays", 2)
                relays, text = await relays_and_metrics(control)
                assert relays["mev_boost"][0]["consecutive_failures"] == 1
                assert 'mev_mevboost_up{chain="ethereum"} 0.0' in text
                assert 'mev_mevboost_checks_total{chain="ethereum",status="no_relays"} 1.0' in text

                boost.mode = "ok"
                await until(probe, "ok", 3)
                # One request per check, each a period after the last one started: not a busy loop.
                assert probe.status.checks == boost.asked >= 3
                assert min(b - a for a, b in zip(boost.times, boost.times[1:], strict=False)) > 0.9
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
        relays, _ = await relays_and_metrics(plane(tmp_path, AgentMetrics()))
        assert relays == {"endpoints": [], "mev_boost": None}

    asyncio.run(scenario())


def test_the_openapi_document_types_the_mev_boost_field() -> None:
    schemas = document()["components"]["schemas"]
    field = schemas["RelaysResponse"]["properties"]["mev_boost"]
    assert {"type": "null"} in field["anyOf"]
    entry = schemas["MevBoostStatusEntry"]
    assert set(entry["properties"]["status"]["enum"]) == {"unchecked", "ok", "no_relays", "error", "timeout"}
    assert {"checks", "failures", "consecutive_failures", "latency_s", "http_status"} <= set(entry["properties"])


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:18550", "http://localhost:18550/", "http://10.0.0.11:18550", "http://[::1]:18550"],
)
def test_a_mev_boost_url_on_this_host_or_the_private_network_is_accepted(url: str) -> None:
    assert MevBoostConfig(url=url).url == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://8.8.8.8:18550", "loopback or a private address"),
        ("https://127.0.0.1:18550", "plain HTTP"),
        ("http://relay.example.net:18550", "an IP address"),
        ("http://127.0.0.1:18550/eth/v1/builder/status", "no path"),
        ("http://user:pw@127.0.0.1:18550", "no credentials"),
        ("http://0.0.0.0:18550", "loopback or a private address"),
        ("http://127.0.0.1:99999", "Port out of range"),
    ],
)
def test_a_mev_boost_url_elsewhere_is_refused_naming_why(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        MevBoostConfig(url=url)


def test_mev_boost_is_a_chain_setting_of_evm_chains_only(tmp_path: Path) -> None:
    token = tmp_path / "tok"
    token.write_text("x" * 40)
    os.chmod(token, 0o600)
    base = {"state_dir": str(tmp_path), "api": {"token_file": str(token)}}
    evm = {"name": "ethereum", "chain_id": 1, "ws_url": "ws://127.0.0.1:8546", "max_gas_price_gwei": 9,
           "mev_boost": {"url": "http://127.0.0.1:18550", "poll_s": 12, "timeout_ms": 1950}}  # fmt: skip
    config = validate({**base, "chains": [evm]})
    boost = config.chain("ethereum").mev_boost
    assert boost is not None and (boost.poll_s, boost.timeout_ms) == (12, 1950)
    solana = {"name": "solana", "chain_id": 101, "http_url": "http://127.0.0.1:8899", "ws_url": "ws://127.0.0.1:8900",
              "max_gas_price_gwei": 1, "mev_boost": {"url": "http://127.0.0.1:18550"},
              "solana": {"pools": [{"kind": "orca_whirlpool", "address": "1" * 32}], "sol_usd": 150}}  # fmt: skip
    with pytest.raises(ValueError, match="solana: mev_boost are EVM settings"):
        validate({**base, "chains": [solana]})
    solana.pop("mev_boost")
    assert validate({**base, "chains": [solana]}).chain("solana").mev_boost is None
    with pytest.raises(ValueError, match="poll_s"):
        validate({**base, "chains": [{**evm, "mev_boost": {"url": "http://127.0.0.1:18550", "poll_s": 0.1}}]})
