"""The Solana simulator on a devnet node host: installed by the nodes concern from the agent's release,
answering the unmodified `solana` client over the fleet network, named a simulator by `mevfleet status`;
the agent beside it (dry-run) reads the pools it holds from its start and finds their price gap.

One host of its own (network, subnet and host name used by no other test), torn down at the end.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import docker
import orjson
import pytest
import urllib3
from solana.rpc.async_api import AsyncClient

from mevfleet import REPO_ROOT
from mevfleet.devnet import TestHost
from mevfleet.devnet.fleet import hosts_up, isolated_devnet
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("solana-standin")]

NETWORK = "mevfleet-solsim"
SUBNET = "172.30.118.0/24"
HOST = "ss-sol1"


MEVFLEET = str(Path(sys.executable).with_name("mevfleet"))  # the installed console script, as operators run it


def mevfleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MEVFLEET, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("solsim")
    path = isolated_devnet("ss", NETWORK, SUBNET, state_dir, hosts=[HOST])
    with hosts_up(path, NETWORK, SUBNET, state_dir):
        run = mevfleet("deploy", "-i", str(path))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        yield path, load_inventory(path).hosts[HOST].address


def rpc_url(address: str) -> str:
    return f"http://{address}:8899"


def test_status_names_the_simulator_and_it_answers(fleet):
    path, _ = fleet
    run = mevfleet("status", "-i", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith(HOST))
    fields = row.split()
    assert fields[1] == "solana" and fields[3] == "active" and fields[4].isdigit(), row
    assert "simulator" in row, row


def test_unmodified_solana_client_over_the_fleet_network(fleet):
    _, address = fleet

    async def go():
        async with AsyncClient(rpc_url(address)) as client:
            assert "simulator" in (await client.get_version()).value.solana_core
            first = (await client.get_slot()).value
            await asyncio.sleep(1.0)
            assert (await client.get_slot()).value > first
            assert (await client.get_latest_blockhash()).value.last_valid_block_height > first

    asyncio.run(go())
    tips = orjson.loads(
        urllib3.request(
            "POST",
            f"{rpc_url(address)}/api/v1/bundles",
            body=orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "getTipAccounts", "params": []}),
            headers={"Content-Type": "application/json"},
        ).data
    )
    assert len(tips["result"]) == 8


def test_cheats_are_off_on_the_devnet(fleet):
    _, address = fleet
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "requestAirdrop", "params": ["1" * 32, 1]})
    answer = orjson.loads(urllib3.request("POST", rpc_url(address), body=body).data)
    assert answer["error"]["code"] == -32601


def test_the_agent_searches_the_simulators_pools_in_dry_run(fleet):
    path, _ = fleet
    agent = compile_plan(load_inventory(path)).hosts[HOST].agent
    assert agent is not None and [(c.chain, c.live) for c in agent.chains] == [("solana", False)]
    container = docker.from_env().containers.get(TestHost(HOST, "").container_name)
    metrics = f"curl -sf http://{agent.metrics_bind}:{agent.metrics_port}/metrics"
    found, text = 0.0, ""
    deadline = time.monotonic() + 60  # the agent reads the pools and sizes the cycle within seconds
    while not found and time.monotonic() < deadline:
        code, out = container.exec_run(["sh", "-c", metrics])
        text = out.decode() if code == 0 else ""
        hit = re.search(r'^mev_opportunities_found_total\{chain="solana",strategy="solana_arb"\} (\S+)$', text, re.M)
        found = float(hit.group(1)) if hit else 0.0
        time.sleep(0 if found else 2)
    assert found >= 1, text[-3000:]
    assert not re.search(r'^mev_executions_total\{chain="solana",outcome="landed"', text, re.M), "dry-run sends nothing"


def test_verify_passes_and_second_deploy_changes_nothing(fleet):
    path, _ = fleet
    run = mevfleet("verify", "-i", str(path), f"--limit={HOST}", "-q", "-p", "no:randomly", "-rs")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    again = mevfleet("deploy", "-i", str(path))
    assert again.returncode == 0, again.stdout[-3000:]
    lines = [line for line in again.stdout.splitlines() if line.startswith(HOST) and "operations" in line]
    assert len(lines) == 1 and " 0 changed" in lines[0], lines
