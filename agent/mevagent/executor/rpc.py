"""The few JSON-RPC calls the executor makes to its node and to sequencers, as raw JSON over aiohttp."""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import aiohttp
import orjson


class RpcError(Exception):
    """The endpoint answered with a JSON-RPC error (a revert carries its data)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class JsonRpc(Protocol):
    async def call(self, method: str, params: list[Any]) -> Any: ...


class HttpJsonRpc:
    """JSON-RPC over HTTP with one keep-alive session."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout_s: float = 10.0) -> None:
        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any]) -> Any:
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        async with self._session.post(
            self.url, data=body, headers={"Content-Type": "application/json"}, timeout=self._timeout
        ) as response:
            payload = orjson.loads(await response.read())
        error = payload.get("error")
        if error is not None:
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        return payload["result"]


def is_revert(error: Exception) -> bool:
    """Whether a failed eth_call is the call reverting rather than the node failing. Duck-typed: this module's
    RpcError and the agent's IPC client's (mevagent.rpc.client) carry the same fields."""
    return getattr(error, "code", None) == 3 or "revert" in str(getattr(error, "message", "")).lower()


def is_out_of_gas(error: Exception) -> bool:
    """Whether a failed eth_call ran out of the gas it was given (geth: "out of gas", anvil: "OutOfGas")."""
    message = str(getattr(error, "message", "") or error).lower().replace(" ", "")
    return "outofgas" in message


def revert_data(error: Exception) -> bytes:
    """The revert payload of a failed eth_call (any client's error with a `data` field), b"" if none."""
    data = getattr(error, "data", None)
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""
