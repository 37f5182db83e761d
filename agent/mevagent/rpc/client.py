"""One persistent JSON-RPC connection: calls, batches and eth_subscribe streams share it.

A single reader task routes every incoming message: responses to the future waiting on their id,
notifications to their subscription's queue. When the connection drops, every waiting call and every
subscription fails with ConnectionLost at once; the caller reconnects (`connect_first` with a
`Backoff`) and resubscribes, and the collector fills the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mevagent.rpc.backoff import Backoff
from mevagent.rpc.transport import HttpTransport, IpcTransport, Transport, TransportClosed, WebSocketTransport

log = logging.getLogger(__name__)


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}" + (f" ({data})" if data is not None else ""))
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class ConnectionLost(Exception):
    """The connection to the node dropped (or never answered): reconnect, resubscribe, fill the gap."""


@dataclass(frozen=True, slots=True)
class Notification:
    result: Any
    received_ns: int  # perf_counter_ns when the reader took it off the socket


_CLOSED = object()


class Subscription:
    """An eth_subscribe stream. Iterate it; it raises ConnectionLost when the connection drops.

    The queue is bounded and drops the oldest notification when full (counted in `dropped`): a
    consumer that falls behind on heads loses heads, which the collector sees as a gap and fills from
    the node, instead of the agent growing without bound.
    """

    def __init__(self, client: RpcClient, kind: str, sub_id: str, maxsize: int) -> None:
        self.client = client
        self.kind = kind
        self.id = sub_id
        self.dropped = 0
        self._items: deque[Any] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._closed = False

    def _push(self, item: Any) -> None:
        if item is not _CLOSED and len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Notification:
        while not self._items:
            if self._closed:
                raise ConnectionLost(f"{self.client.endpoint}: subscription {self.kind} ended")
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is _CLOSED:
            self._closed = True
            raise ConnectionLost(f"{self.client.endpoint}: connection lost under subscription {self.kind}")
        return item

    def pending(self) -> int:
        return len(self._items)

    async def unsubscribe(self) -> None:
        self.client._subscriptions.pop(self.id, None)
        self._push(_CLOSED)
        if self.id.startswith("poll:"):
            return  # a polled stream (HTTP): its poller stops on its own
        with contextlib.suppress(ConnectionLost):
            await self.client.call("eth_unsubscribe", [self.id])


class RpcClient:
    """JSON-RPC 2.0 over one transport. Use `connect(...)` to make one; `close()` when done."""

    def __init__(
        self,
        transport: Transport,
        *,
        request_timeout: float = 30.0,
        subscription_queue: int = 4096,
        poll_interval: float = 0.25,
    ) -> None:
        self.endpoint = transport.endpoint
        self.request_timeout = request_timeout
        # Transports without server push (HTTP): newHeads is emulated by polling this often.
        self.poll_interval = poll_interval
        self._pollers: set[asyncio.Task[None]] = set()
        self._transport = transport
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        # Notifications can overtake the eth_subscribe answer's consumer: the reader routes the answer
        # and then the first notification before the subscriber registers its id.
        self._early: dict[str, list[Notification]] = {}
        self._subscription_queue = subscription_queue
        self._closed: BaseException | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name=f"rpc-reader {self.endpoint}")

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._fail_all(ConnectionLost(f"{self.endpoint}: closed by the agent"))
        for poller in list(self._pollers):
            poller.cancel()
        if self._pollers:
            await asyncio.wait(self._pollers)
        self._reader.cancel()
        # wait(), not `await self._reader` under suppress(CancelledError): that would also swallow a
        # cancellation of the task that is closing us, which must go on unwinding.
        await asyncio.wait([self._reader])
        await self._transport.close()

    async def call(self, method: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """One request; its result, or RpcError for an error object, or ConnectionLost."""
        request_id = next(self._ids)
        future = self._register(request_id)
        await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}, (request_id,))
        message = await self._wait(future, method)
        return _result(method, message)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, chunk: int = 1000) -> list[Any]:
        """Many requests, one round trip per `chunk`: results in order; an error object becomes an
        RpcError *in the list* (not raised), so one failed call does not hide the others."""
        results: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start : start + chunk]
            ids = [next(self._ids) for _ in part]
            futures = [self._register(i) for i in ids]
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, part, strict=True)
            ]
            await self._send(payload, ids)
            for future, (method, _params) in zip(futures, part, strict=True):
                message = await self._wait(future, method)
                try:
                    results.append(_result(method, message))
                except RpcError as exc:
                    results.append(exc)
        return results

    async def subscribe(self, kind: str, *params: Any) -> Subscription:
        """eth_subscribe(kind, *params): "newHeads", "logs" with a filter, "newPendingTransactions".

        On a transport without server push (HTTP), newHeads is polled (the latest block, whenever its
        hash changes); heads between two polls are skipped, which the collector fills like any gap.
        """
        if getattr(self._transport, "polls", False):
            return self._poll_heads(kind, params)
        sub_id = await self.call("eth_subscribe", [kind, *params])
        subscription = Subscription(self, kind, sub_id, self._subscription_queue)
        if self._closed is not None:
            subscription._push(_CLOSED)
            return subscription
        self._subscriptions[sub_id] = subscription
        for notification in self._early.pop(sub_id, ()):
            subscription._push(notification)
        return subscription

    def _poll_heads(self, kind: str, params: Sequence[Any]) -> Subscription:
        if kind != "newHeads" or params:
            raise RpcError("eth_subscribe", -32601, f"{self.endpoint}: HTTP has no {kind} subscription")
        subscription = Subscription(self, kind, f"poll:{next(self._ids)}", self._subscription_queue)
        if self._closed is not None:
            subscription._push(_CLOSED)
            return subscription
        self._subscriptions[subscription.id] = subscription
        poller = asyncio.get_running_loop().create_task(self._poll(subscription), name=f"poll {self.endpoint}")
        self._pollers.add(poller)
        poller.add_done_callback(self._pollers.discard)
        return subscription

    async def _poll(self, subscription: Subscription) -> None:
        last = None
        while subscription.id in self._subscriptions:
            try:
                block = await self.call("eth_getBlockByNumber", ["latest", False])
            except (ConnectionLost, RpcError) as exc:
                # A lost connection already closed the subscription (_fail_all); an error answer ends it.
                if subscription.id in self._subscriptions:
                    log.warning("%s: polling for heads failed: %s", self.endpoint, exc)
                    self._subscriptions.pop(subscription.id, None)
                    subscription._push(_CLOSED)
                return
            if isinstance(block, dict) and block.get("hash") != last:
                last = block.get("hash")
                subscription._push(Notification(block, time.perf_counter_ns()))
            await asyncio.sleep(self.poll_interval)

    def _register(self, request_id: int) -> asyncio.Future[Any]:
        if self._closed is not None:
            raise ConnectionLost(f"{self.endpoint}: {self._closed}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return future

    async def _send(self, payload: Any, ids: Sequence[int]) -> None:
        try:
            await self._transport.send(orjson.dumps(payload))
        except TransportClosed as exc:
            for request_id in ids:
                self._pending.pop(request_id, None)
            self._fail_all(ConnectionLost(str(exc)))
            raise ConnectionLost(str(exc)) from exc

    async def _wait(self, future: asyncio.Future[Any], method: str) -> Any:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation of the caller
        # that arrives together with the answer, and a collector that was told to stop runs on.
        try:
            async with asyncio.timeout(self.request_timeout):
                return await future
        except TimeoutError:
            # A node that stops answering is as good as gone: drop the connection so every waiter and
            # subscription learns it now, instead of each timing out on its own.
            lost = ConnectionLost(f"{self.endpoint}: no answer to {method} within {self.request_timeout} s")
            self._fail_all(lost)
            raise lost from None

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self._transport.receive()
                received_ns = time.perf_counter_ns()
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    log.warning("%s: dropped a message that is not JSON: %.200r", self.endpoint, raw)
                    continue
                if isinstance(message, list):
                    for item in message:
                        self._route(item, received_ns)
                else:
                    self._route(message, received_ns)
        except TransportClosed as exc:
            self._fail_all(ConnectionLost(str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever broke the reader, every waiter must hear of it
            log.exception("%s: reader failed", self.endpoint)
            self._fail_all(ConnectionLost(f"{self.endpoint}: reader failed: {exc!r}"))

    def _route(self, message: Any, received_ns: int) -> None:
        if not isinstance(message, dict):
            return
        request_id = message.get("id")
        if request_id is not None:
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.get("method") == "eth_subscription":
            params = message.get("params") or {}
            sub_id = params.get("subscription")
            notification = Notification(params.get("result"), received_ns)
            subscription = self._subscriptions.get(sub_id)
            if subscription is not None:
                subscription._push(notification)
            elif len(self._early) < 64:
                early = self._early.setdefault(sub_id, [])
                if len(early) < self._subscription_queue:
                    early.append(notification)

    def _fail_all(self, exc: ConnectionLost) -> None:
        if self._closed is None:
            self._closed = exc
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
                # Its waiter may be gone (cancelled, or a batch that stopped at its first failure):
                # mark the exception retrieved so asyncio does not log it when the future is collected.
                future.exception()
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            subscription._push(_CLOSED)


def _result(method: str, message: dict[str, Any]) -> Any:
    error = message.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise RpcError(method, -32603, f"malformed error object: {error!r}")
        raise RpcError(method, int(error.get("code", -32603)), str(error.get("message", "")), error.get("data"))
    return message.get("result")


async def connect(endpoint: str, *, timeout: float = 5.0, request_timeout: float = 30.0) -> RpcClient:
    """A client on `endpoint`: ws:// or wss:// is a WebSocket, http:// or https:// plain HTTP (heads
    polled), anything else the path of an IPC socket."""
    try:
        if endpoint.startswith(("ws://", "wss://")):
            transport: Transport = await WebSocketTransport.open(endpoint, timeout)
        elif endpoint.startswith(("http://", "https://")):
            transport = await HttpTransport.open(endpoint, timeout)
        else:
            async with asyncio.timeout(timeout):
                transport = await IpcTransport.open(endpoint)
    except Exception as exc:  # OSError, TimeoutError, and aiohttp's own ClientError family
        raise ConnectionLost(f"{endpoint}: cannot connect: {exc}") from exc
    return RpcClient(transport, request_timeout=request_timeout)


async def connect_first(
    endpoints: Sequence[str],
    backoff: Backoff,
    *,
    timeout: float = 5.0,
    request_timeout: float = 30.0,
    on_failure: Any = None,
) -> RpcClient:
    """The first endpoint (in order: IPC before WebSocket) that accepts and answers eth_chainId.

    Retries forever with `backoff` between rounds; cancel the caller to give up. `on_failure(endpoint,
    exc)` is told about each failed attempt (for logs and metrics).
    """
    if not endpoints:
        raise ValueError("no endpoints to connect to")
    while True:
        for endpoint in endpoints:
            client: RpcClient | None = None
            try:
                client = await connect(endpoint, timeout=timeout, request_timeout=request_timeout)
                await client.call("eth_chainId")
            except (ConnectionLost, RpcError) as exc:
                if client is not None:
                    await client.close()
                if on_failure is not None:
                    on_failure(endpoint, exc)
                continue
            return client
        await asyncio.sleep(backoff.next())
