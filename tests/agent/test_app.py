"""`mevagent run` with the config the fleet deploy renders for a devnet host (no pools, no contract, no
prices, dry-run): it connects to its node, serves /health, /ready and /metrics, reports readiness
honestly, and stops cleanly on SIGTERM. A config that cannot run exits 2 naming the field."""

import asyncio
import signal
import subprocess
from pathlib import Path

import aiohttp

from mevagent.executor.keys import write_new_key_file
from testbed.e2e import TOKEN, Api, agent_config, devnet_chain, eventually, load, running, start_process, write_config
from testbed.pools import IpcAnvil
from testbed.services import free_port


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"mevagent did not stop on SIGTERM: {stderr.decode()[-2000:]}") from None
    return proc.returncode, stderr.decode()


def test_devnet_config_serves_health_ready_metrics_and_stops_on_sigterm(node: IpcAnvil, tmp_path: Path) -> None:
    data = agent_config(tmp_path, [devnet_chain(node)])
    config = load(data)
    proc = start_process(write_config(tmp_path, data))

    async def probe() -> None:
        async with aiohttp.ClientSession() as session:
            api = Api(config, session)

            async def health() -> dict | None:
                try:
                    status, body = await api.get("/health")
                except aiohttp.ClientConnectionError:
                    assert proc.poll() is None, "mevagent exited"
                    return None
                return body if status == 200 else None

            assert (await eventually(health, 30, "/health"))["status"] == "ok"
            await eventually(api.ready, 20, "/ready 200")
            _, ready = await api.get("/ready")
            checks = {c["name"]: c for c in ready["checks"]}
            assert checks["ethereum:node_synced"]["ok"] and "head" in checks["ethereum:node_synced"]["detail"]
            assert checks["ethereum:state_fresh"]["detail"] == "no factories configured: no pool state to keep"
            assert checks["ethereum:chain_id"] == {"name": "ethereum:chain_id", "ok": True, "detail": "chain id 31337"}

            async def node_up() -> str | None:
                async with session.get(api.metrics_url) as response:
                    text = await response.text()
                return text if 'mev_node_up{chain="ethereum"} 1.0' in text else None

            text = await eventually(node_up, 10, "mev_node_up 1 on the metrics listener")
            assert "# TYPE mev_opportunities_found" in text
            assert 'mev_agent_ready{chain="ethereum"} 1.0' in text
            status, _ = await api.post("/emergency/stop", {"reason": "no token"}, token=False)
            assert status == 401

    try:
        asyncio.run(probe())
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr[-3000:]
    assert "stopped" in stderr and "dry-run" in stderr
    assert TOKEN not in stderr


def test_ready_is_503_while_a_node_is_down_and_names_it(node: IpcAnvil, tmp_path: Path) -> None:
    down = {
        **devnet_chain(node, "base"),
        "chain_id": 8453,
        "ipc_path": str(tmp_path / "no-such.ipc"),
        "ws_url": f"ws://127.0.0.1:{free_port()}",
    }
    config = load(agent_config(tmp_path, [devnet_chain(node), down]))

    async def scenario() -> None:
        async with running(config) as (_agent, api):
            status, body = await api.get("/ready")
            assert status == 503 and body["ready"] is False
            checks = {c["name"]: c for c in body["checks"]}
            assert checks["ethereum:node_synced"]["ok"] is True
            assert checks["base:node_synced"]["ok"] is False
            assert "no node endpoint answers" in checks["base:node_synced"]["detail"]
            status, body = await api.get("/health")
            assert status == 200

    asyncio.run(scenario())


def test_ready_is_503_when_the_node_serves_another_chain(node: IpcAnvil, tmp_path: Path) -> None:
    config = load(agent_config(tmp_path, [{**devnet_chain(node), "chain_id": 1}]))

    async def scenario() -> None:
        async with running(config) as (_agent, api):
            status, body = await api.get("/ready")
            checks = {c["name"]: c for c in body["checks"]}
            assert status == 503 and checks["ethereum:node_synced"]["ok"] is True
            assert checks["ethereum:chain_id"] == {
                "name": "ethereum:chain_id",
                "ok": False,
                "detail": "the node serves chain id 31337, the config says 1",
            }
            status, _ = await api.get("/health")
            assert status == 200

    asyncio.run(scenario())


def test_a_live_chain_without_its_contract_exits_2_naming_the_field(node: IpcAnvil, tmp_path: Path) -> None:
    key = tmp_path / "ethereum.key"
    write_new_key_file(key)
    chain = {
        **devnet_chain(node),
        "live": True,
        "signing_key_file": str(key),
        "endpoints": [{"name": "seq", "url": "http://127.0.0.1:9", "kind": "private_tx"}],
    }
    proc = start_process(write_config(tmp_path, agent_config(tmp_path, [chain])))
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2, stderr.decode()[-2000:]
    assert "chains.ethereum.contract: live: true needs the deployed ArbExecutor" in stderr.decode()
    assert key.read_text().strip()[2:] not in stderr.decode()


def test_the_executor_holds_the_head_simulation_to_the_risk_limits_max_slippage_as_changed(
    node: IpcAnvil, tmp_path: Path
) -> None:
    # Its refusal to sign a cycle the head pays less for (tests/agent/test_executor.py) uses the gate's
    # limit at each execution, so POST /config/risk moves it too, with no restart.
    config = load(agent_config(tmp_path, [devnet_chain(node)], risk={"max_slippage_bps": 20}))

    async def scenario() -> None:
        async with running(config) as (agent, api):
            executor = agent.chains["ethereum"].executor
            assert executor.max_slippage_bps() == 20
            status, body = await api.post("/config/risk", {"max_slippage_bps": 75})
            assert status == 200, body

            async def applied() -> bool:
                return executor.max_slippage_bps() == 75

            await eventually(applied, 5, "the executor to read the new max_slippage_bps")

    asyncio.run(scenario())
