"""Bundle fan-out against real local builder endpoints (aiohttp servers on 127.0.0.1).

One builder answers at once, one after a short delay, one with 503, one never within its timeout,
and one port where nothing listens. Every builder gets the bundle for every target block, signed by
the searcher-identity key; each endpoint's own timeout bounds it; what each one did is recorded
per endpoint. Assertions read the recorded statuses, never the wall clock.
"""

import asyncio
from pathlib import Path

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from mevagent.executor.bundles import BundleSender, RelayStatus, SequencerSender, replacement_uuid
from mevagent.executor.config import BuilderEndpoint
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.metrics import AgentMetrics
from testbed.arb import BuilderBehaviour, builders
from testbed.services import free_port

RAW_TX = bytes.fromhex("02f86b0180808080809400000000000000000000000000000000000000008080c0808080")


def test_fan_out_honours_each_endpoint_timeout_and_records_its_status(tmp_path: Path) -> None:
    write_new_key_file(tmp_path / "identity.key")
    identity = Signer.from_file(tmp_path / "identity.key")
    behaviours = [
        BuilderBehaviour("fast"),
        BuilderBehaviour("slow", delay_s=0.2),
        BuilderBehaviour("broken", status=503),
        BuilderBehaviour("hanging", delay_s=30.0),
    ]

    async def scenario() -> tuple[RelayStatus, list, list]:
        async with builders(behaviours, "http://127.0.0.1:1/") as servers:
            endpoints = [BuilderEndpoint(name=s.behaviour.name, url=s.url, timeout_ms=2000) for s in servers]
            endpoints[3] = BuilderEndpoint(name="hanging", url=servers[3].url, timeout_ms=150)
            endpoints.append(BuilderEndpoint(name="refused", url=f"http://127.0.0.1:{free_port()}/", timeout_ms=500))
            status = RelayStatus("anvil", observer=metrics.endpoint_result)
            async with aiohttp.ClientSession() as session:
                sender = BundleSender(endpoints, identity, session, status)
                results = await sender.send_bundle([RAW_TX], range(101, 104), "opp-1")
            return status, results, servers

    metrics = AgentMetrics()
    status, results, servers = asyncio.run(scenario())
    # Every result also reached the Prometheus series the dashboards and alerts read.
    sample = metrics.registry.get_sample_value
    assert sample("mev_endpoint_requests_total", {"chain": "anvil", "endpoint": "broken", "status": "http_503"}) == 3
    assert sample("mev_endpoint_up", {"chain": "anvil", "endpoint": "fast"}) == 1
    assert sample("mev_endpoint_up", {"chain": "anvil", "endpoint": "hanging"}) == 0
    by_endpoint: dict[str, set[str]] = {}
    for result in results:
        by_endpoint.setdefault(result.endpoint, set()).add(result.status)
    assert by_endpoint == {
        "fast": {"ok"},
        "slow": {"ok"},
        "broken": {"http_503"},
        "hanging": {"timeout"},
        "refused": {"connection_error"},
    }
    assert sorted(r.block for r in results if r.endpoint == "fast") == [101, 102, 103]

    figures = {row["name"]: row for row in status.snapshot()}
    assert figures["fast"]["ok"] == 3 and figures["fast"]["requests"] == 3
    assert figures["broken"]["errors"] == 3 and figures["broken"]["last_status"] == "http_503"
    assert figures["hanging"]["timeouts"] == 3 and figures["hanging"]["ok"] == 0
    assert figures["refused"]["errors"] == 3 and figures["refused"]["last_status"] == "connection_error"
    # The slow builder's latency includes its delay; the hanging one was cut at its own 150 ms timeout,
    # far below its 30 s delay (the recorded figure, not the test's clock).
    assert figures["slow"]["last_latency_s"] >= 0.2
    assert 0.15 <= figures["hanging"]["last_latency_s"] < 30.0
    assert all(row["chain"] == "anvil" and row["last_at"] is not None for row in figures.values())

    for server in servers:
        bundles = server.bundles
        assert sorted(int(b.params["blockNumber"], 16) for b in bundles) == [101, 102, 103]
        for bundle in bundles:
            assert bundle.params["txs"] == ["0x" + RAW_TX.hex()]
            assert bundle.params["replacementUuid"] == replacement_uuid("opp-1", int(bundle.params["blockNumber"], 16))
            # X-Flashbots-Signature: the identity key signed this exact body.
            assert bundle.signer == bundle.claimed == identity.address


def test_replacement_ids_are_stable_per_opportunity_and_block() -> None:
    assert replacement_uuid("a", 5) == replacement_uuid("a", 5)
    assert len({replacement_uuid("a", 5), replacement_uuid("a", 6), replacement_uuid("b", 5)}) == 3


def test_sequencer_path_records_a_json_rpc_refusal(tmp_path: Path) -> None:
    async def scenario() -> RelayStatus:
        async with builders([BuilderBehaviour("sequencer", status=500)], "http://127.0.0.1:1/") as (server,):
            status = RelayStatus("op")
            async with aiohttp.ClientSession() as session:
                result = await SequencerSender(server.url, session, status).send(RAW_TX)
            assert not result.accepted and result.status == "http_500"
            assert server.received[0].method == "eth_sendRawTransaction"
            return status

    (row,) = asyncio.run(scenario()).snapshot()
    assert (row["name"], row["errors"], row["last_status"]) == ("sequencer", 1, "http_500")


def test_identity_signature_is_the_flashbots_header_format(tmp_path: Path) -> None:
    write_new_key_file(tmp_path / "id.key")
    identity = Signer.from_file(tmp_path / "id.key")
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'
    address, _, signature = identity.sign_body(body).partition(":")
    assert address == identity.address
    assert Account.recover_message(encode_defunct(text="0x" + keccak(body).hex()), signature=signature) == address
