"""The upgrade/rollback health gate's beacon part (deploy/mevfleet/nodes/ops.py `gate`): the same probe
the gate runs on a host (curl), run here against a fake beacon API on loopback, and its decision for a
healthy node, a syncing one, one whose health endpoint answers 503 and one whose head does not advance."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mevfleet.inventory import parse_inventory
from mevfleet.nodes.ops import gate, host_beacons
from mevfleet.plan import compile_plan


class FakeBeacon(ThreadingHTTPServer):
    """A beacon API answering the endpoints the gate reads; `advance`: each syncing read is a slot later."""

    def __init__(self, *, health: int = 200, syncing: bool = False, advance: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.health, self.syncing, self.advance = health, syncing, advance
        self.slots = itertools.count(40)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeBeacon

    def do_GET(self) -> None:
        fake = self.server
        if self.path == "/eth/v1/node/health":
            self.send_response(fake.health)
            self.end_headers()
            return
        if self.path == "/eth/v1/node/syncing":
            slot = next(fake.slots) if fake.advance else 40
            data = {"head_slot": str(slot), "sync_distance": "9" if fake.syncing else "0", "is_syncing": fake.syncing}
        elif self.path == "/eth/v1/beacon/states/head/finality_checkpoints":
            data = {"finalized": {"epoch": "3", "root": "0x00"}, "current_justified": {"epoch": "4", "root": "0x00"}}
        elif self.path == "/eth/v1/node/peer_count":
            data = {"connected": "1"}
        else:
            self.send_error(404)
            return
        body = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def beacon(request: pytest.FixtureRequest) -> Iterator[FakeBeacon]:
    server = FakeBeacon(**getattr(request, "param", {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def local_shell(command: str) -> str:
    """What the gate's SSH shell does on a host, here: the probe's curls against the fake API."""
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30).stdout


def decide(beacon: FakeBeacon, el_problem: str | None = None) -> str | None:
    return gate(lambda: el_problem, local_shell, (beacon.url,), timeout=1.5, interval=0.3)


def test_a_healthy_synced_beacon_node_with_an_advancing_head_passes(beacon: FakeBeacon) -> None:
    assert decide(beacon) is None


@pytest.mark.parametrize("beacon", [{"syncing": True, "health": 206}], indirect=True)
def test_a_syncing_beacon_node_fails_the_gate_named(beacon: FakeBeacon) -> None:
    problem = decide(beacon)
    assert problem is not None
    assert f"beacon {beacon.url}: /eth/v1/node/health answered 206, expected 200" in problem
    assert f"beacon {beacon.url}: syncing (head 9 slots behind the clock)" in problem


@pytest.mark.parametrize("beacon", [{"health": 503}], indirect=True)
def test_health_503_fails_the_gate_named(beacon: FakeBeacon) -> None:
    problem = decide(beacon)
    assert problem == f"beacon {beacon.url}: /eth/v1/node/health answered 503, expected 200 after 2 s"


@pytest.mark.parametrize("beacon", [{"advance": False}], indirect=True)
def test_a_head_that_does_not_advance_fails_the_gate_named(beacon: FakeBeacon) -> None:
    problem = decide(beacon)
    assert problem == f"beacon {beacon.url}: head not advancing (slot 40) after 2 s"


def test_the_beacon_is_not_asked_while_the_node_itself_is_unhealthy(beacon: FakeBeacon) -> None:
    assert decide(beacon, el_problem="unit activating") == "unit activating after 2 s"


def test_a_beacon_api_that_does_not_answer_fails_the_gate() -> None:
    with FakeBeacon() as closed:  # bound, then closed: nothing listens on its port
        url = closed.url
    problem = gate(lambda: None, local_shell, (url,), timeout=0.5, interval=0.3)
    assert problem is not None
    assert f"beacon {url}: /eth/v1/node/health answered nothing, expected 200" in problem
    assert "/eth/v1/node/syncing did not answer" in problem


def test_the_pair_host_gates_on_both_of_its_beacon_nodes() -> None:
    text = (
        "fleet: {nodes: devnet, real_clients: [ethereum]}\n"
        "hosts: {eth1: {address: 10.9.0.11, chains: [ethereum, arbitrum]}}\n"
    )
    plan = compile_plan(parse_inventory(text, "pair.yml")).hosts["eth1"]
    beacons = host_beacons(plan.nodes, "ethereum")
    assert len(beacons) == 2
    assert set(beacons) == {n.beacon_url for n in plan.nodes if n.client == "lodestar-beacon"}
    assert host_beacons(plan.nodes, "arbitrum") == ()
