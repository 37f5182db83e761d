"""Raw Solana JSON-RPC and the Jito block-engine API over aiohttp (the hot path sends raw JSON-RPC)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from .layouts import AccountData
from .token2022 import EpochInfo


class RpcError(RuntimeError):
    def __init__(self, method: str, error: Any) -> None:
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        super().__init__(f"{method}: {message}")
        self.error = error


class RateLimited(RpcError):
    """HTTP 429 from a block-engine region."""


def account_data(value: dict[str, Any] | None) -> AccountData | None:
    """An account in a getMultipleAccounts / accountNotification answer (base64): None when it does not
    exist (no value, or no lamports: closed)."""
    if not value or not value.get("lamports"):
        return None
    return AccountData(base64.b64decode(value["data"][0]), Pubkey.from_string(value["owner"]))


class SolanaRpc:
    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_s: float = 5.0) -> None:
        self.session, self.url = session, url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.ids = itertools.count(1)

    async def call(self, method: str, *params: Any) -> Any:
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": list(params)})
        async with self.session.post(
            self.url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout
        ) as resp:
            answer = orjson.loads(await resp.read())
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    async def accounts(self, keys: Sequence[Pubkey]) -> list[tuple[Pubkey, AccountData | None]]:
        """Current data and owner of `keys` (None: no such account), 100 per request (the RPC's limit)."""
        out: list[tuple[Pubkey, AccountData | None]] = []
        for i in range(0, len(keys), 100):
            chunk = keys[i : i + 100]
            result = await self.call("getMultipleAccounts", [str(k) for k in chunk], {"encoding": "base64"})
            for key, acc in zip(chunk, result["value"], strict=True):
                out.append((key, account_data(acc)))
        return out

    async def program_accounts(
        self, program: Pubkey, filters: Sequence[dict[str, Any]] = ()
    ) -> list[tuple[Pubkey, AccountData]]:
        """The accounts `program` owns that pass `filters` (getProgramAccounts' dataSize / memcmp)."""
        result = await self.call(
            "getProgramAccounts",
            str(program),
            {"encoding": "base64", "commitment": "confirmed", "filters": list(filters)},
        )
        found = ((Pubkey.from_string(item["pubkey"]), account_data(item["account"])) for item in result)
        return [(key, acc) for key, acc in found if acc is not None]

    async def slot(self) -> int:
        return int(await self.call("getSlot", {"commitment": "confirmed"}))

    async def rent_exempt(self, size: int) -> int:
        """The lamports an account of `size` bytes must hold (getMinimumBalanceForRentExemption)."""
        return int(await self.call("getMinimumBalanceForRentExemption", size))

    async def send_transaction(self, tx: VersionedTransaction) -> str:
        """An ordinary transaction to the node (preflight on); its base58 signature."""
        encoded = base64.b64encode(bytes(tx)).decode()
        return await self.call("sendTransaction", encoded, {"encoding": "base64", "preflightCommitment": "confirmed"})

    async def signature_status(self, signature: str) -> dict[str, Any] | None:
        """The signature's status (slot, err, confirmationStatus), None while the node has not seen it."""
        return (await self.call("getSignatureStatuses", [signature]))["value"][0]

    async def epoch_info(self) -> EpochInfo:
        return EpochInfo.model_validate(await self.call("getEpochInfo", {"commitment": "confirmed"}))

    async def blockhash(self) -> Hash:
        result = await self.call("getLatestBlockhash", {"commitment": "confirmed"})
        return Hash.from_string(result["value"]["blockhash"])

    async def simulate(self, tx: VersionedTransaction) -> dict[str, Any]:
        encoded = base64.b64encode(bytes(tx)).decode()
        result = await self.call("simulateTransaction", encoded, {"encoding": "base64", "commitment": "confirmed"})
        return result["value"]


class BlockEngine:
    """One block-engine region: bundles, statuses, and the region's per-IP rate limit kept on our side."""

    def __init__(self, session: aiohttp.ClientSession, url: str, rps: float = 1.0, timeout_s: float = 2.0) -> None:
        self.session, self.url, self.rps = session, url, rps
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.next_free = 0.0
        self.ids = itertools.count(1)
        self.refused = 0  # 429s we still got (should stay 0 when the limiter is right)

    async def _slot(self) -> None:
        """Wait for the next request slot of this region (1/rps apart), so the engine never has to refuse."""
        now = time.monotonic()
        wait = self.next_free - now
        self.next_free = max(now, self.next_free) + 1.0 / self.rps
        if wait > 0:
            await asyncio.sleep(wait)

    async def call(self, method: str, *params: Any) -> Any:
        await self._slot()
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": list(params)})
        async with self.session.post(
            self.url, data=body, headers={"Content-Type": "application/json"}, timeout=self.timeout
        ) as resp:
            answer = orjson.loads(await resp.read())
            if resp.status == 429:
                self.refused += 1
                raise RateLimited(method, answer.get("error", "rate limited"))
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    async def send_bundle(self, txs: Sequence[VersionedTransaction]) -> str:
        encoded = [base64.b64encode(bytes(tx)).decode() for tx in txs]
        return await self.call("sendBundle", encoded, {"encoding": "base64"})

    async def inflight(self, bundle_ids: Sequence[str]) -> list[dict[str, Any]]:
        return (await self.call("getInflightBundleStatuses", list(bundle_ids)))["value"]

    async def tip_accounts(self) -> list[Pubkey]:
        return [Pubkey.from_string(k) for k in await self.call("getTipAccounts")]
