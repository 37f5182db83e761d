"""The control plane as the tests and benches run it: configs, the `mevcontrol` process, events, operators' tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from mevagent.bus.events import DURABLE_STREAM, FIELD, ExecutionOutcome, ExecutionSent, OpportunityFound, encode

from .e2e import agent_config, devnet_chain
from .services import Postgres, RedisServer, free_port


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return path


class Operator:
    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role
        self.token = secrets.token_hex(24)

    @property
    def entry(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "token_sha256": hashlib.sha256(self.token.encode()).hexdigest()}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def control_config(directory: Path, redis: RedisServer, pg: Postgres, operators: list[Operator], **extra: Any) -> Path:
    data: dict[str, Any] = {
        "redis_url": redis.url,
        "redis_password_file": str(redis.password_file),
        "postgres_dsn_file": str(secret_file(directory / "pg.dsn", pg.dsn)),
        "listen": {
            "bind": "127.0.0.1",
            "risk_port": free_port(),
            "dashboard_port": free_port(),
            "relays_port": free_port(),
            "flashloans_port": free_port(),
            "metrics_port": free_port(),
        },
        "operators": [o.entry for o in operators],
        "lease_ttl_s": 3,
        **extra,
    }
    path = directory / "control.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_control(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mevcontrol.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
    )


def outcome(agent: str, n: int) -> ExecutionOutcome:
    """The n-th landed execution of `agent`: a profit of n + 1 wei-units, gas n wei (checksums are exact)."""
    now = time.time()
    return ExecutionOutcome(
        agent=agent, chain="anvil", strategy="dex_arb", opportunity_id=f"{agent}-{n}", block=n, status="landed",
        token="0x" + "11" * 20, amount_in=10**18 + n, realized_profit=n + 1, gas_paid_wei=n,
        token_usd_per_unit=Decimal("1e-18"), native_usd_per_wei=Decimal("3e-15"),
        realized_profit_usd=Decimal(n + 1) * Decimal("1e-18"), gas_cost_usd=Decimal(n) * Decimal("3e-15"),
        tx_hashes=("0x" + f"{n:064x}",), found_at=now, settled_at=now,
    )  # fmt: skip


def found(agent: str, n: int) -> OpportunityFound:
    return OpportunityFound(
        agent=agent, chain="anvil", strategy="dex_arb", opportunity_id=f"{agent}-{n}", block=n,
        token="0x" + "11" * 20, amount_in=10**18, amount_out=10**18 + n, gas_limit=300_000, gas_price_wei=10**9,
        token_usd_per_unit=Decimal("1e-18"), notional_usd=Decimal(1), profit_usd=Decimal("0.001"),
        gas_cost_usd=Decimal("0.0001"), hops=2,
    )  # fmt: skip


def tls_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (what the deploy generates when the inventory supplies none)."""
    cert, key = directory / "control.crt", directory / "control.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    os.chmod(key, 0o600)
    return cert, key


def bus_agent_config(
    directory: Path, node: Any, redis: RedisServer, name: str, *, token: str, **bus: Any
) -> dict[str, Any]:
    """A devnet agent (dry-run, no pools) on `node`, connected to the fleet bus as `name`, with its own token."""
    directory.mkdir(parents=True, exist_ok=True)
    data = agent_config(directory, [devnet_chain(node)])
    data["api"]["token_file"] = str(secret_file(directory / "own.token", token))
    data["bus"] = {
        "agent": name,
        "redis_url": redis.url,
        "password_file": str(redis.password_file),
        "heartbeat_s": 0.5,
        **bus,
    }
    return data


def pending_tx(w3: Any, key: Any, nonce: int, **fields: Any) -> str:
    """Sign (with `key`: a Signer or anything with its sign_transaction) and send a transaction on a node that
    does not mine on its own (`evm_setAutomine false`): it stays pending. Its hash."""
    tx = {"chainId": w3.eth.chain_id, "nonce": nonce, "gas": 60_000, "maxFeePerGas": 2 * 10**9,
          "maxPriorityFeePerGas": 10**9, "type": 2, "value": 0, **fields}  # fmt: skip
    raw, tx_hash = key.sign_transaction(tx)
    answer = w3.provider.make_request("eth_sendRawTransaction", ["0x" + raw.hex()])
    assert "error" not in answer, answer
    return tx_hash


def report_sent(redis: RedisServer, agent: str, chain: str, tx_hash: str, block: int, opportunity_id: str) -> None:
    """An agent's execution_sent whose outcome is not known yet (what a stuck transaction leaves in history)."""
    from redis import Redis

    event = ExecutionSent(agent=agent, chain=chain, strategy="dex_arb", opportunity_id=opportunity_id, block=block,
                          tx_hashes=(tx_hash,), found_at=0.0)  # fmt: skip
    client = Redis.from_url(redis.url, password=redis.password)
    try:
        client.xadd(DURABLE_STREAM, {FIELD: encode(event)})
    finally:
        client.close()
