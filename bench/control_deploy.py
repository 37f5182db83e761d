"""The deployed control plane's emergency stop, as an operator sees it, beside its baseline.

A small fleet of real test hosts (one monitoring/control host, two anvil node hosts with their agents) is
deployed by the real engine; from this machine (the operator allowlist) each trial POSTs
https://<control host>:8908/emergency/stop with an operator token over a new TLS connection, as curl does,
and takes the time until the answer, which lists every agent's acknowledgement (direct API call and bus);
a trial counts only if every agent acknowledged on both. Then a resume is requested and approved by a
second operator (untimed) before the next trial. Baseline: an authenticated GET /exposure/current on the
same listener (TLS, token, one database read, no fan-out).

Run under the Docker lock (it creates test hosts):
  flock /tmp/mevfleet-docker.lock .venv/bin/python bench/control_deploy.py [--trials 100]
Or against a devnet fleet already deployed (`make devnet`: 8 agents), nothing created or removed:
  .venv/bin/python bench/control_deploy.py --inventory inventory/devnet.yml [--trials 100]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import docker
import yaml

from mevfleet.control import operator_token
from mevfleet.devnet import Harness, TestHost
from mevfleet.devnet.fleet import isolated_devnet
from mevfleet.engine.run import run_deploy
from mevfleet.fleetca import ca_dir
from mevfleet.inventory import load_inventory
from mevfleet.plan import compile_plan

NETWORK = "mevfleet-control-bench"
SUBNET = "172.30.124.0/24"
MON, AGENTS = "ctlb-mon1", ("ctlb-arb1", "ctlb-op1")


def _token(name: str, control_host: str = MON) -> str:
    container = docker.from_env().containers.get(TestHost(control_host, "").container_name)
    code, out = container.exec_run(["cat", operator_token(name)])
    assert code == 0, out.decode()
    return out.decode().strip()


class Client:
    def __init__(self, base: str, ca: Path, token: str):
        self.base, self.token = base, token
        self.context = ssl.create_default_context(cafile=str(ca))

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(first: Client, second: Client, agents: set[str], trials: int) -> int:
    """`trials` emergency stops (each resumed by two operators, untimed) beside the baseline read."""
    stops, reads, missed = [], [], 0
    for _ in range(trials):
        t0 = time.perf_counter()
        status, answer = first.call("POST", "/emergency/stop", {"reason": "bench"})
        elapsed = time.perf_counter() - t0
        acked = status == 200 and all(
            a == {"api": "acknowledged", "bus": "acked"} for a in answer.get("agents", {}).values()
        )
        if acked and set(answer["agents"]) == agents:
            stops.append(elapsed)
        else:
            missed += 1
        t0 = time.perf_counter()
        status, _ = first.call("GET", "/exposure/current")
        reads.append(time.perf_counter() - t0)
        status, request = first.call("POST", "/emergency/resume", {})
        if status == 202:
            second.call("POST", f"/approvals/{request['approval_id']}/approve")
    if not stops:
        print("no trial was acknowledged by every agent", file=sys.stderr)
        return 1
    ms = 1000
    print(f"emergency stop POST -> all {len(agents)} agents acked (api + bus), {len(stops)}/{trials} trials:")
    print(
        f"  stop     p50 {statistics.median(stops) * ms:7.1f} ms  p99 {_pct(stops, 0.99) * ms:7.1f} ms"
        f"  (target p99 <= 100 ms)"
    )
    print(f"  baseline p50 {statistics.median(reads) * ms:7.1f} ms  p99 {_pct(reads, 0.99) * ms:7.1f} ms")
    print(
        f"  ratio    p50 {statistics.median(stops) / statistics.median(reads):.1f}x  "
        f"p99 {_pct(stops, 0.99) / _pct(reads, 0.99):.1f}x; not acknowledged by all: {missed}"
    )
    print(f"  load average: {os.getloadavg()[0]:.1f}")
    return 0


def _clients(plan, control_host: str, ca: Path) -> tuple[Client, Client]:
    control = plan.hosts[control_host].control
    assert control is not None
    base = f"https://{control.bind}:{control.risk_port}"
    return (
        Client(base, ca, _token("operator1", control_host)),
        Client(base, ca, _token("operator2", control_host)),
    )


def on_deployed_fleet(path: Path, trials: int) -> int:
    """The fleet of `path` as it runs now (its control host's operator tokens read through its container)."""
    inventory = load_inventory(path)
    plan = compile_plan(inventory)
    controls = [name for name, host in plan.hosts.items() if host.control is not None]
    if not controls:
        print(f"{path}: no host runs the control plane", file=sys.stderr)
        return 1
    agents = {name for name, host in plan.hosts.items() if host.agent is not None}
    first, second = _clients(plan, controls[0], ca_dir(inventory.fleet.name) / "ca.pem")
    return measure(first, second, agents, trials)


def on_own_fleet(trials: int) -> int:
    state = Path(tempfile.mkdtemp(prefix="mevfleet-control-bench-"))
    os.environ["MEVFLEET_CA_DIR"] = str(state / "ca")
    path = isolated_devnet("ctlb", NETWORK, SUBNET, state)
    doc = yaml.safe_load(path.read_text())
    doc["hosts"] = {name: spec for name, spec in doc["hosts"].items() if name in (MON, *AGENTS)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    harness = Harness(network=NETWORK, subnet=SUBNET, state_dir=state)
    harness.down()
    try:
        harness.up([TestHost(name, spec["address"]) for name, spec in doc["hosts"].items()])
        inventory = load_inventory(path)
        plan = compile_plan(inventory)
        started = time.monotonic()
        result = run_deploy(plan, inventory, out=lambda _: None)
        if result.failed:
            print(f"deploy failed: {result.failed}", file=sys.stderr)
            return 1
        print(f"deployed {len(plan.hosts)} hosts in {time.monotonic() - started:.0f} s")
        first, second = _clients(plan, MON, state / "ca" / "ca.pem")
        # Wait for both agents' first heartbeats (the fan-out goes to the configured agents either way).
        time.sleep(5)
        return measure(first, second, set(AGENTS), trials)
    finally:
        harness.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--inventory", type=Path, help="measure this deployed devnet fleet instead of making one")
    args = parser.parse_args()
    if args.inventory is not None:
        return on_deployed_fleet(args.inventory, args.trials)
    return on_own_fleet(args.trials)


if __name__ == "__main__":
    sys.exit(main())
