"""A real AWS API for the tests/unit/test_cloud_* tests: moto in server mode on 127.0.0.1 (a free port).

Every test that takes `aws` gets a reset server, dummy credentials and AWS_ENDPOINT_URL in its environment
(so nothing can reach a real AWS endpoint), and its calls through mevfleet.cloud are checked against the
least-privilege policy in deploy/mevfleet/cloud/iam-policy.json when it ends.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field

import pytest

from testbed.services import free_port

# What a fleet with a Solana host must tell its agent (fleet.agent.chains.solana): the pools it tracks and USD
# per SOL. The plan only checks the shape; these are the devnet simulator's pools (inventory/devnet.yml).
SOLANA_AGENT = {
    "chains": {
        "solana": {
            "solana": {
                "sol_usd": 150,
                "pools": [{"kind": "raydium_cpmm", "address": "3yhvSRXkPLexUp9k4MvbnrBYU1NVqrYpLEYnwfUb3Eru"}],
            }
        }
    }
}

DUMMY_KEY_ID = "AKIAMEVFLEETTESTKEY0"
DUMMY_SECRET = "mevfleet-dummy-secret-access-key-0123456789"


@dataclass
class MotoServer:
    port: int
    server: object = None
    calls: set[tuple[str, str]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        """The endpoint goes away (connections refused); moto keeps its state for `start` again."""
        self.server.stop()

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean moto server in this test's environment; afterwards, every AWS call made through
    mevfleet.cloud must be allowed by the IAM policy document."""
    from mevfleet.cloud import aws as cloud_aws
    from mevfleet.cloud.iam import policy_actions

    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    calls: set[tuple[str, str]] = set()

    def record(service: str, operation: str) -> None:
        calls.add((service, operation))

    cloud_aws.add_call_hook(record)
    yield moto_server
    cloud_aws.remove_call_hook(record)
    moto_server.calls |= calls
    allowed = policy_actions()
    missing = sorted({cloud_aws.iam_action(s, o) for s, o in calls} - allowed)
    assert not missing, f"calls not allowed by deploy/mevfleet/cloud/iam-policy.json: {missing}"


def boto(service: str, url: str, region: str = "us-east-1"):
    """A plain boto3 client for a test's own set-up (not recorded: the code under test did not call it)."""
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=url)


def dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
