"""The whole agent against a real node: configs as the fleet deploy renders them, the agent run in-process
exactly as `mevagent run` wires it (mevagent.app.Agent) or as the `mevagent` process, and its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

from mevagent.app import Agent
from mevagent.config import AgentConfig, validate

from .evm import REPO, _free_loopback_port

TOKEN = "e2e-token-" + "z" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEVAGENT = REPO / ".venv" / "bin" / "mevagent"
T = TypeVar("T")


def write_token(directory: Path) -> Path:
    path = directory / "api.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


def agent_config(directory: Path, chains: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """The shape deploy/mevfleet/plan.py agent_config renders, on free loopback ports."""
    return {
        "state_dir": str(directory / "state"),
        "api": {
            "bind": "127.0.0.1",
            "port": _free_loopback_port(),
            "token_file": str(write_token(directory)),
            "metrics_bind": "127.0.0.1",
            "metrics_port": _free_loopback_port(),
        },
        "chains": chains,
        **sections,
    }


def write_config(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "agent.yml"
    path.write_text(yaml.safe_dump(data))
    return path


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float = 20.0, what: str = "") -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or probe}")
        await asyncio.sleep(0.05)


class Api:
    """The agent's control API and metrics listener over real HTTP."""

    def __init__(self, config: AgentConfig, session: aiohttp.ClientSession) -> None:
        self.base = f"http://{config.api.bind}:{config.api.port}"
        self.metrics_url = f"http://{config.api.metrics_bind}:{config.api.metrics_port}/metrics"
        self.session = session

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as response:
            body = await response.read()
            is_json = response.content_type == "application/json"
            return response.status, (await response.json()) if is_json else body.decode()

    async def post(self, path: str, payload: dict[str, Any], *, token: bool = True) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=payload, headers=AUTH if token else {}) as response:
            return response.status, await response.json()

    async def opportunities(self) -> list[dict[str, Any]]:
        status, body = await self.get("/opportunities?limit=1000")
        assert status == 200, body
        return body["opportunities"]

    async def ready(self) -> bool | None:
        status, _ = await self.get("/ready")
        return True if status == 200 else None


@contextlib.asynccontextmanager
async def running(config: AgentConfig) -> AsyncIterator[tuple[Agent, Api]]:
    """The agent as run_agent wires it, in this event loop; stopped as SIGTERM stops it."""
    agent = await Agent.build(config)
    await agent.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield agent, Api(config, session)
    finally:
        await agent.stop()


def load(data: dict[str, Any]) -> AgentConfig:
    return validate(data)


def start_process(config_path: Path) -> subprocess.Popen[bytes]:
    """`mevagent run --config ...`, the way the systemd unit starts it."""
    executable = [str(MEVAGENT)] if MEVAGENT.is_file() else [sys.executable, "-m", "mevagent.cli"]
    return subprocess.Popen(
        [*executable, "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=config_path.parent,
    )
