"""Byte-message transports to a node: its IPC unix socket, a WebSocket, or plain HTTP.

Both carry whole JSON texts. Geth and anvil end every IPC message with a newline and never put one
inside (their JSON encoders escape control characters), so newline framing is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import aiohttp

# A batch of thousands of eth_call results, or a block's logs, is megabytes: asyncio's default 64 KiB
# line limit would break the connection on the first large answer (web3.py#3485).
MAX_MESSAGE = 256 * 1024 * 1024


class TransportClosed(Exception):
    """The connection to the node is gone."""


class Transport(Protocol):
    endpoint: str

    async def send(self, payload: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...


class IpcTransport:
    def __init__(self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.endpoint = path
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, path: str) -> IpcTransport:
        reader, writer = await asyncio.open_unix_connection(path, limit=MAX_MESSAGE)
        return cls(path, reader, writer)

    async def send(self, payload: bytes) -> None:
        if self._writer.is_closing():
            raise TransportClosed(f"{self.endpoint}: closed")
        try:
            self._writer.write(payload + b"\n")
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise TransportClosed(f"{self.endpoint}: {exc}") from exc

    async def receive(self) -> bytes:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise TransportClosed(f"{self.endpoint}: the node closed the socket") from exc
        except asyncio.LimitOverrunError as exc:
            raise TransportClosed(f"{self.endpoint}: message larger than {MAX_MESSAGE} bytes") from exc
        except (ConnectionError, OSError) as exc:
            raise TransportClosed(f"{self.endpoint}: {exc}") from exc
        return line

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class HttpTransport:
    """JSON-RPC over HTTP POST, for nodes with neither IPC nor WebSocket (EthereumJS 0.10.5).

    Each send is one POST whose answer is queued for receive(), so RpcClient runs unchanged on top.
    There is no server push: `polls` tells RpcClient to emulate newHeads by polling (rpc/client.py).
    A refused or broken request ends the transport, like a dropped socket: the collector reconnects.
    """

    polls = True

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.endpoint = url
        self._session = session
        self._answers: asyncio.Queue[bytes | TransportClosed] = asyncio.Queue()
        self._posts: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    async def open(cls, url: str, timeout: float) -> HttpTransport:
        # Per-request deadlines are RpcClient's; here only connecting is bounded.
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout))
        return cls(url, session)

    async def send(self, payload: bytes) -> None:
        if self._closed:
            raise TransportClosed(f"{self.endpoint}: closed")
        post = asyncio.get_running_loop().create_task(self._post(payload))
        self._posts.add(post)
        post.add_done_callback(self._posts.discard)

    async def _post(self, payload: bytes) -> None:
        try:
            async with self._session.post(
                self.endpoint, data=payload, headers={"Content-Type": "application/json"}
            ) as answer:
                body = await answer.read()
                if answer.status >= 400 and not body.lstrip().startswith((b"{", b"[")):
                    raise TransportClosed(f"{self.endpoint}: HTTP {answer.status}")
            self._answers.put_nowait(body)
        except TransportClosed as exc:
            self._answers.put_nowait(exc)
        except (aiohttp.ClientError, OSError) as exc:
            self._answers.put_nowait(TransportClosed(f"{self.endpoint}: {exc}"))

    async def receive(self) -> bytes:
        item = await self._answers.get()
        if isinstance(item, TransportClosed):
            self._closed = True
            raise item
        return item

    async def close(self) -> None:
        self._closed = True
        for post in list(self._posts):
            post.cancel()
        if self._posts:
            await asyncio.wait(self._posts)
        await self._session.close()


class WebSocketTransport:
    def __init__(self, url: str, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.endpoint = url
        self._session = session
        self._ws = ws

    @classmethod
    async def open(cls, url: str, timeout: float) -> WebSocketTransport:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(
                url,
                max_msg_size=MAX_MESSAGE,
                # Pings find a silently dead peer (no FIN) that a subscription would otherwise wait on forever.
                heartbeat=10.0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeout),
            )
        except BaseException:
            await session.close()
            raise
        return cls(url, session, ws)

    async def send(self, payload: bytes) -> None:
        if self._ws.closed:
            raise TransportClosed(f"{self.endpoint}: closed")
        try:
            await self._ws.send_str(payload.decode())
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise TransportClosed(f"{self.endpoint}: {exc}") from exc

    async def receive(self) -> bytes:
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return msg.data.encode()
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        raise TransportClosed(f"{self.endpoint}: websocket {msg.type.name.lower()}")

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()
