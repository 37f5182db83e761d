"""Submission: bundles fanned out to every builder at once, or one private/sequencer endpoint per chain.

Every request is bounded by its endpoint's own timeout, so a slow builder never holds up the others,
and every answer (or its absence) is recorded per endpoint: count, last status, last latency. The
`RelayStatus` is what the control API's /relays/status shows.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

from mevagent.executor.config import BuilderEndpoint
from mevagent.executor.keys import Signer

# Bundles of one opportunity for one block share a replacement id, so a resend replaces, never adds.
_REPLACEMENT_NAMESPACE = uuid.UUID("5b0d7c1e-2a43-4e0f-9a52-6f3c0f1d7a11")


def replacement_uuid(opportunity_id: str, block: int) -> str:
    return str(uuid.uuid5(_REPLACEMENT_NAMESPACE, f"{opportunity_id}:{block}"))


@dataclass(slots=True)
class EndpointStatus:
    name: str
    url: str
    requests: int = 0
    ok: int = 0
    errors: int = 0  # HTTP 4xx/5xx, JSON-RPC errors, refused connections
    timeouts: int = 0
    last_status: str = "unused"  # ok | http_<code> | rpc_error | timeout | connection_error
    last_latency_s: float | None = None
    last_error: str = ""
    last_at: float | None = None  # unix time of the last answer or timeout


@dataclass(slots=True)
class EndpointResult:
    endpoint: str
    block: int | None
    status: str
    latency_s: float
    result: Any = None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "ok"


@dataclass(slots=True)
class RelayStatus:
    """Per-endpoint figures of one chain's submissions."""

    chain: str
    endpoints: dict[str, EndpointStatus] = field(default_factory=dict)
    # Called with every result as it is recorded: the agent exports them as mev_endpoint_* metrics.
    observer: Callable[[str, EndpointResult], None] | None = None

    def endpoint(self, name: str, url: str) -> EndpointStatus:
        status = self.endpoints.get(name)
        if status is None:
            status = self.endpoints[name] = EndpointStatus(name, url)
        return status

    def record(self, status: EndpointStatus, result: EndpointResult) -> None:
        status.requests += 1
        status.last_status = result.status
        status.last_latency_s = result.latency_s
        status.last_at = time.time()
        status.last_error = result.error
        if result.status == "ok":
            status.ok += 1
        elif result.status == "timeout":
            status.timeouts += 1
        else:
            status.errors += 1
        if self.observer is not None:
            self.observer(self.chain, result)

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"chain": self.chain, **asdict(s)} for s in self.endpoints.values()]


async def _post(
    session: aiohttp.ClientSession,
    name: str,
    url: str,
    timeout_s: float,
    body: bytes,
    headers: dict[str, str],
    block: int | None,
) -> EndpointResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=body, headers=headers) as response:
                raw = await response.read()
                if response.status >= 400:
                    return EndpointResult(
                        name,
                        block,
                        f"http_{response.status}",
                        time.perf_counter() - started,
                        error=raw[:200].decode(errors="replace"),
                    )
        payload = orjson.loads(raw)
    except TimeoutError:
        return EndpointResult(
            name, block, "timeout", time.perf_counter() - started, error=f"no answer in {timeout_s:g} s"
        )
    except (aiohttp.ClientError, OSError) as exc:
        return EndpointResult(name, block, "connection_error", time.perf_counter() - started, error=type(exc).__name__)
    except orjson.JSONDecodeError:
        return EndpointResult(name, block, "rpc_error", time.perf_counter() - started, error="answer is not JSON")
    latency = time.perf_counter() - started
    error = payload.get("error") if isinstance(payload, dict) else {"message": "answer is not a JSON-RPC object"}
    if error is not None:
        return EndpointResult(name, block, "rpc_error", latency, error=str(error.get("message", error))[:200])
    return EndpointResult(name, block, "ok", latency, result=payload.get("result"))


class BundleSender:
    """eth_sendBundle to every configured builder, for each target block, all concurrently."""

    def __init__(
        self,
        endpoints: Sequence[BuilderEndpoint],
        identity: Signer,
        session: aiohttp.ClientSession,
        status: RelayStatus,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self._identity = identity
        self._session = session
        self.status = status
        self._ids = itertools.count(1)
        for endpoint in self.endpoints:
            status.endpoint(endpoint.name, endpoint.url)

    def _signed_body(self, method: str, params: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": [params]})
        headers = {"Content-Type": "application/json", "X-Flashbots-Signature": self._identity.sign_body(body)}
        return body, headers

    async def _one(self, endpoint: BuilderEndpoint, body: bytes, headers: dict[str, str], block: int) -> EndpointResult:
        result = await _post(
            self._session, endpoint.name, endpoint.url, endpoint.timeout_ms / 1000, body, headers, block
        )
        self.status.record(self.status.endpoint(endpoint.name, endpoint.url), result)
        return result

    async def send_bundle(self, raw_txs: Sequence[bytes], blocks: range, opportunity_id: str) -> list[EndpointResult]:
        txs = ["0x" + tx.hex() for tx in raw_txs]
        requests: list[asyncio.Future[EndpointResult]] = []
        for index, block in enumerate(blocks):
            # One body per block, signed once and sent to every builder.
            params = {"txs": txs, "blockNumber": hex(block), "replacementUuid": replacement_uuid(opportunity_id, block)}
            body, headers = self._signed_body("eth_sendBundle", params)
            requests.extend(asyncio.ensure_future(self._one(e, body, headers, block)) for e in self.endpoints)
            if index == 0:
                # The next block's bundle is the one that can land: its requests go out before the
                # later blocks' bodies are signed (a signature each).
                await asyncio.sleep(0)
        return list(await asyncio.gather(*requests))

    async def call_bundle(self, raw_txs: Sequence[bytes], block: int) -> EndpointResult | None:
        """eth_callBundle at the first builder that offers it; None when none does."""
        endpoint = next((e for e in self.endpoints if e.call_bundle), None)
        if endpoint is None:
            return None
        params = {"txs": ["0x" + tx.hex() for tx in raw_txs], "blockNumber": hex(block), "stateBlockNumber": "latest"}
        body, headers = self._signed_body("eth_callBundle", params)
        return await self._one(endpoint, body, headers, block)


class SequencerSender:
    """eth_sendRawTransaction to a chain's private or sequencer endpoint (L2s, chains without builders)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, status: RelayStatus, timeout_s: float = 2.0) -> None:
        self.url = url
        self._session = session
        self.status = status
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        status.endpoint("sequencer", url)

    async def send(self, raw_tx: bytes) -> EndpointResult:
        body = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": next(self._ids),
                "method": "eth_sendRawTransaction",
                "params": ["0x" + raw_tx.hex()],
            }
        )
        headers = {"Content-Type": "application/json"}
        result = await _post(self._session, "sequencer", self.url, self._timeout_s, body, headers, None)
        self.status.record(self.status.endpoint("sequencer", self.url), result)
        return result
