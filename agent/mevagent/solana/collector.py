"""Account and slot subscriptions for the tracked pools, with reconnect and a full re-read.

On every (re)connect the collector subscribes to every tracked account, then re-reads all of them with
getMultipleAccounts: an update that happened while the socket was down is in that read, so nothing is
missed. Updates reach the caller as (pubkey, data and owner) in arrival order; a pool's new dependencies (its
vaults, once its state decoded) are subscribed as they appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import orjson
from solders.pubkey import Pubkey

from .layouts import AccountData
from .rpc import SolanaRpc, account_data

log = logging.getLogger(__name__)

OnAccounts = Callable[[Sequence[tuple[Pubkey, AccountData | None]]], Awaitable[Sequence[Pubkey]]]
OnSlot = Callable[[int], Awaitable[None]]


class AccountCollector:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        rpc: SolanaRpc,
        ws_url: str,
        accounts: Sequence[Pubkey],
        on_accounts: OnAccounts,
        on_slot: OnSlot | None = None,
        backoff_s: float = 0.2,
    ) -> None:
        self.session, self.rpc, self.ws_url = session, rpc, ws_url
        self.tracked: list[Pubkey] = list(dict.fromkeys(accounts))
        self.on_accounts, self.on_slot = on_accounts, on_slot
        self.backoff_s = backoff_s
        self.connects = 0
        self.ready = asyncio.Event()  # set once subscribed and re-read after each (re)connect
        self._subs: dict[int, Pubkey] = {}
        self._pending: dict[int, Pubkey | None] = {}  # subscription requests not yet acknowledged
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("solana websocket lost (%s); reconnecting", exc)
            self.ready.clear()
            await asyncio.sleep(self.backoff_s)

    async def _session(self) -> None:
        async with self.session.ws_connect(self.ws_url, heartbeat=10) as ws:
            self.connects += 1
            self._subs, self._pending = {}, {}
            first = [await self._subscribe(ws, "accountSubscribe", key) for key in self.tracked]
            if self.on_slot is not None:
                first.append(await self._subscribe(ws, "slotSubscribe", None))
            # Subscriptions first, then the read: a change after the read arrives as a notification.
            reread = asyncio.create_task(self._read_after_ack(first, self.tracked, ws, initial=True))
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._handle(ws, orjson.loads(msg.data))
            finally:
                reread.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reread

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, method: str, key: Pubkey | None) -> int:
        rid = next(self._ids)
        self._pending[rid] = key
        params = [str(key), {"encoding": "base64", "commitment": "confirmed"}] if key is not None else []
        await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).decode())
        return rid

    async def _read_after_ack(self, ids: list[int], keys: Sequence[Pubkey], ws, initial: bool = False) -> None:
        while any(i in self._pending for i in ids):
            await asyncio.sleep(0.002)
        await self._deliver(await self.rpc.accounts(list(keys)), ws)
        if initial:
            self.ready.set()

    async def _handle(self, ws, message: dict) -> None:
        if "id" in message and message.get("id") in self._pending:
            key = self._pending.pop(message["id"])
            if "result" in message and key is not None:
                self._subs[message["result"]] = key
            return
        method, params = message.get("method"), message.get("params") or {}
        if method == "accountNotification":
            key = self._subs.get(params.get("subscription"))
            if key is not None:
                await self._deliver([(key, account_data(params["result"]["value"]))], ws)
        elif method == "slotNotification" and self.on_slot is not None:
            await self.on_slot(params["result"]["slot"])

    async def _deliver(self, items: Sequence[tuple[Pubkey, AccountData | None]], ws) -> None:
        new = [k for k in await self.on_accounts(items) if k not in self.tracked]
        if not new:
            return
        self.tracked.extend(new)
        ids = [await self._subscribe(ws, "accountSubscribe", key) for key in new]
        self._tasks.add(task := asyncio.get_running_loop().create_task(self._read_after_ack(ids, new, ws)))
        task.add_done_callback(self._tasks.discard)
