"""HTTP JSON-RPC, WebSocket pubsub and the Jito block-engine API of the simulator, on one aiohttp app.

`POST /` is Solana JSON-RPC, `GET /` upgrades to the pubsub WebSocket, `POST /api/v1/bundles` is the block
engine. Answers are built from `solders.rpc.responses` types, so their JSON is the one real clients parse.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import base58
import orjson
from aiohttp import WSMsgType, web
from solders import transaction_status as T
from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.epoch_info import EpochInfo
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc import responses as R
from solders.signature import Signature
from solders.transaction import Legacy, Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import TransactionConfirmationStatus, TransactionErrorFieldless, TransactionStatus

from . import SIMULATOR_VERSION
from .jito import TIP_ACCOUNTS, BlockEngine, BundleRejected
from .ledger import AnyTx, Change, Executed, Ledger, TokenBalance

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
PREFLIGHT_FAILURE, SIGVERIFY_FAILURE = -32002, -32003
BLOCK_NOT_AVAILABLE, SLOT_SKIPPED, UNSUPPORTED_VERSION = -32004, -32007, -32015
RATE_LIMITED = -32097


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class Settings:
    slot_ms: int = 400
    auction_ms: int = 200
    cheats: bool = False  # standin_* methods and requestAirdrop: tests and the devnet only
    jito_rps: float = 1.0  # the block engine's default per-IP limit
    min_tip: int = 1_000
    blockhash_slots: int = 150


def _ctx(ledger: Ledger) -> R.RpcResponseContext:
    return R.RpcResponseContext(ledger.slot)


def _json(resp: Any) -> Any:
    """A solders response as plain JSON data (its own envelope dropped), with `space` filled in."""
    data = orjson.loads(resp.to_json())
    data = data.get("result", data) if isinstance(data, dict) and "jsonrpc" in data else data
    _fill_space(data)
    return data


def _fill_space(node: Any) -> None:
    # solders leaves `space` null; nodes report the data length.
    if isinstance(node, dict):
        if "lamports" in node and "data" in node and "owner" in node and node.get("space") is None:
            raw = node["data"]
            if isinstance(raw, list) and raw and raw[1] == "base64":
                node["space"] = len(base64.b64decode(raw[0]))
        for value in node.values():
            _fill_space(value)
    elif isinstance(node, list):
        for value in node:
            _fill_space(value)


def _pubkey(value: Any, field_name: str = "pubkey") -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {field_name} is not a base58 public key") from exc


def _signature(value: Any) -> Signature:
    try:
        return Signature.from_string(value)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, "Invalid param: not a base58 signature") from exc


def decode_tx(raw: Any, encoding: str | None) -> AnyTx:
    if not isinstance(raw, str):
        raise RpcError(INVALID_PARAMS, "Invalid params: the transaction must be an encoded string")
    try:
        blob = base64.b64decode(raw, validate=True) if encoding == "base64" else base58.b58decode(raw)
    except Exception as exc:
        raise RpcError(INVALID_PARAMS, f"invalid transaction: not {encoding or 'base58'}") from exc
    try:
        return VersionedTransaction.from_bytes(blob)
    except Exception:
        try:
            return Transaction.from_bytes(blob)
        except Exception as exc:
            raise RpcError(INVALID_PARAMS, "invalid transaction: failed to deserialize") from exc


def _params(params: Any, n: int) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, list):
        raise RpcError(INVALID_PARAMS, "Invalid params: expected an array")
    return [*params, *([None] * max(0, n - len(params)))]


def _config(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: the configuration must be an object")
    return value


def _slice(account: dict[str, Any], encoding: str, data_slice: dict | None) -> dict[str, Any]:
    raw = base64.b64decode(account["data"][0])
    if data_slice:
        offset, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
        raw = raw[offset : offset + length]
    if encoding == "base58":
        account["data"] = base58.b58encode(raw).decode()
    elif encoding == "base64" or data_slice:
        account["data"] = [base64.b64encode(raw).decode(), "base64"]
    return account


def _account_json(acc: Account | None, config: dict[str, Any]) -> dict[str, Any] | None:
    if acc is None:
        return None
    data = _json(R.GetAccountInfoResp(acc, R.RpcResponseContext(0)))["value"]
    # base64 unless base58 is asked for (jsonParsed falls back to base64, as on a node without a parser).
    encoding = "base58" if config.get("encoding") == "base58" else "base64"
    return _slice(data, encoding, config.get("dataSlice"))


def matches(acc: Account, filters: list[dict[str, Any]]) -> bool:
    data = bytes(acc.data)
    for f in filters:
        if "dataSize" in f:
            if len(data) != int(f["dataSize"]):
                return False
        elif "memcmp" in f:
            spec = f["memcmp"]
            offset = int(spec.get("offset", 0))
            want = spec.get("bytes", "")
            blob = base64.b64decode(want) if spec.get("encoding") == "base64" else base58.b58decode(want)
            if data[offset : offset + len(blob)] != blob:
                return False
        else:
            raise RpcError(INVALID_PARAMS, f"Invalid param: unknown filter {sorted(f)}")
    return True


class RateLimiter:
    """A token bucket per client address: `rps` requests per second, bursts of at most one second's worth."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(client, (max(1.0, self.rps), now))
        tokens = min(max(1.0, self.rps), tokens + (now - last) * self.rps)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return False
        self.buckets[client] = (tokens - 1.0, now)
        return True


@dataclass
class Subscription:
    id: int
    kind: str
    ws: web.WebSocketResponse
    key: Any = None
    config: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[list[Any]], Any]


class StandIn:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.ledger = Ledger(blockhash_slots=self.settings.blockhash_slots)
        self.engine = BlockEngine(self.ledger, self.settings.min_tip)
        self.limiter = RateLimiter(self.settings.jito_rps)
        self.paused = False
        self.subs: dict[int, Subscription] = {}
        self.sockets: dict[web.WebSocketResponse, asyncio.Queue[bytes]] = {}
        self.next_sub = 1
        self.tasks: list[asyncio.Task] = []
        self.ledger.listeners.on_changes.append(self._notify_changes)
        self.ledger.listeners.on_executed.append(self._notify_executed)
        self.ledger.listeners.on_slot.append(self._notify_slot)
        self.methods: dict[str, Handler] = {
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getBalance": self.get_balance,
            "getLatestBlockhash": self.get_latest_blockhash,
            "isBlockhashValid": self.is_blockhash_valid,
            "getSlot": lambda p: _json(R.GetSlotResp(self.ledger.slot)),
            "getBlockHeight": lambda p: _json(R.GetBlockHeightResp(self.ledger.slot)),
            "getEpochInfo": self.get_epoch_info,
            "getHealth": lambda p: "ok",
            "getVersion": lambda p: _json(R.GetVersionResp(R.RpcVersionInfo(SIMULATOR_VERSION, None))),
            "getGenesisHash": lambda p: str(Hash.hash(b"mevfleet-solana-standin")),
            "getMinimumBalanceForRentExemption": self.get_minimum_balance,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getBlock": self.get_block,
        }
        if self.settings.cheats:
            self.methods |= {
                "requestAirdrop": self.request_airdrop,
                "standin_setAccount": self.cheat_set_account,
                "standin_warpSlot": self.cheat_warp,
                "standin_advanceSlots": self.cheat_advance,
                "standin_expireBlockhash": self.cheat_expire,
                "standin_pauseTicker": self.cheat_pause,
                "standin_resumeTicker": self.cheat_resume,
                "standin_dropSubscribers": self.cheat_drop,
                "standin_bundleTimings": self.cheat_bundle_timings,
            }
        self.jito_methods: dict[str, Handler] = {
            "getTipAccounts": lambda p: [str(t) for t in TIP_ACCOUNTS],
            "sendBundle": self.send_bundle,
            "getBundleStatuses": self.get_bundle_statuses,
            "getInflightBundleStatuses": self.get_inflight_bundle_statuses,
        }

    # --- app ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2**20)
        app.router.add_post("/", self.http_rpc)
        app.router.add_get("/", self.websocket)
        app.router.add_post("/api/v1/bundles", self.http_jito)
        app.router.add_get("/health", lambda r: web.Response(text="ok"))
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.tasks = [asyncio.create_task(self._ticker()), asyncio.create_task(self._auctions())]

    async def _stop(self, app: web.Application) -> None:
        for task in self.tasks:
            task.cancel()
        for ws in list(self.sockets):
            await ws.close()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.settings.slot_ms / 1000)
            if not self.paused:
                self.ledger.advance()

    async def _auctions(self) -> None:
        while True:
            await asyncio.sleep(self.settings.auction_ms / 1000)
            self.engine.auction()

    async def _dispatch(self, body: bytes, methods: dict[str, Handler]) -> bytes:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return orjson.dumps(_error(None, PARSE_ERROR, "Parse error"))
        if isinstance(request, list):
            if not request:
                return orjson.dumps(_error(None, INVALID_REQUEST, "Invalid request: empty batch"))
            return orjson.dumps([await self._one(r, methods) for r in request])
        return orjson.dumps(await self._one(request, methods))

    async def _one(self, request: Any, methods: dict[str, Handler]) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, INVALID_REQUEST, "Invalid request")
        rid = request.get("id")
        handler = methods.get(request["method"])
        if handler is None:
            return _error(rid, METHOD_NOT_FOUND, "Method not found")
        try:
            result = handler(request.get("params"))
            if isinstance(result, Awaitable):
                result = await result
        except RpcError as exc:
            return _error(rid, exc.code, exc.message, exc.data)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return _error(rid, INVALID_PARAMS, f"Invalid params: {exc}")
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    async def http_rpc(self, request: web.Request) -> web.Response:
        return web.Response(
            body=await self._dispatch(await request.read(), self.methods), content_type="application/json"
        )

    async def http_jito(self, request: web.Request) -> web.Response:
        if not self.limiter.allow(request.remote or ""):
            body = _error(None, RATE_LIMITED, "Network congested. Endpoint is globally rate limited.")
            return web.Response(status=429, body=orjson.dumps(body), content_type="application/json")
        return web.Response(
            body=await self._dispatch(await request.read(), self.jito_methods), content_type="application/json"
        )

    # --- state -------------------------------------------------------------------------------------------

    def get_account_info(self, params: Any) -> Any:
        key, config = _params(params, 2)
        acc = self.ledger.account(_pubkey(key))
        return {"context": {"slot": self.ledger.slot}, "value": _account_json(acc, _config(config))}

    def get_multiple_accounts(self, params: Any) -> Any:
        keys, config = _params(params, 2)
        if not isinstance(keys, list) or len(keys) > 100:
            raise RpcError(INVALID_PARAMS, "Invalid params: pass at most 100 public keys")
        config = _config(config)
        value = [_account_json(self.ledger.account(_pubkey(k)), config) for k in keys]
        return {"context": {"slot": self.ledger.slot}, "value": value}

    def get_program_accounts(self, params: Any) -> Any:
        program, config = _params(params, 2)
        config = _config(config)
        filters = config.get("filters") or []
        found = [
            {"pubkey": str(k), "account": _account_json(a, config)}
            for k, a in self.ledger.program_accounts(_pubkey(program, "program id"))
            if matches(a, filters)
        ]
        if config.get("withContext"):
            return {"context": {"slot": self.ledger.slot}, "value": found}
        return found

    def get_balance(self, params: Any) -> Any:
        key, _ = _params(params, 2)
        acc = self.ledger.account(_pubkey(key))
        return _json(R.GetBalanceResp(acc.lamports if acc else 0, _ctx(self.ledger)))

    def get_latest_blockhash(self, params: Any) -> Any:
        block = R.RpcBlockhash(self.ledger.blockhash(), self.ledger.last_valid_block_height())
        return _json(R.GetLatestBlockhashResp(block, _ctx(self.ledger)))

    def is_blockhash_valid(self, params: Any) -> Any:
        value, _ = _params(params, 2)
        return _json(R.IsBlockhashValidResp(str(self.ledger.blockhash()) == value, _ctx(self.ledger)))

    def get_minimum_balance(self, params: Any) -> Any:
        size, _ = _params(params, 2)
        return self.ledger.svm.minimum_balance_for_rent_exemption(int(size))

    # --- transactions ------------------------------------------------------------------------------------

    def send_transaction(self, params: Any) -> Any:
        raw, config = _params(params, 2)
        config = _config(config)
        tx = decode_tx(raw, config.get("encoding"))
        if not tx.verify_with_results() or not all(tx.verify_with_results()):
            raise RpcError(SIGVERIFY_FAILURE, "Transaction signature verification failure")
        if not config.get("skipPreflight"):
            if self.ledger.duplicate(tx):
                detail = R.RpcSimulateTransactionResult(err=TransactionErrorFieldless.AlreadyProcessed, logs=[])
                message = "Transaction simulation failed: This transaction has already been processed"
                raise RpcError(PREFLIGHT_FAILURE, message, _json(detail))
            simulated = self.ledger.simulate(tx)
            if isinstance(simulated, FailedTransactionMetadata):
                meta = simulated.meta()
                detail = R.RpcSimulateTransactionResult(
                    err=simulated.err(), logs=list(meta.logs()), units_consumed=meta.compute_units_consumed()
                )
                message = f"Transaction simulation failed: {simulated.err()}"
                raise RpcError(PREFLIGHT_FAILURE, message, _json(detail))
        self.ledger.send(tx)
        return str(tx.signatures[0])

    def simulate_transaction(self, params: Any) -> Any:
        raw, config = _params(params, 2)
        config = _config(config)
        tx = decode_tx(raw, config.get("encoding"))
        simulated = self.ledger.simulate(tx)
        wanted = (config.get("accounts") or {}).get("addresses") or []
        if isinstance(simulated, FailedTransactionMetadata):
            meta, err, post = simulated.meta(), simulated.err(), {}
        else:
            meta, err, post = simulated.meta(), None, dict(simulated.post_accounts())
        accounts = None
        if wanted:
            accounts = [post.get(_pubkey(k)) or self.ledger.account(_pubkey(k)) for k in wanted]
        result = R.RpcSimulateTransactionResult(
            err=err, logs=list(meta.logs()), accounts=accounts, units_consumed=meta.compute_units_consumed()
        )
        return _json(R.SimulateTransactionResp(result, _ctx(self.ledger)))

    def get_signature_statuses(self, params: Any) -> Any:
        sigs, _ = _params(params, 2)
        if not isinstance(sigs, list) or len(sigs) > 256:
            raise RpcError(INVALID_PARAMS, "Invalid params: pass at most 256 signatures")
        value = []
        for s in sigs:
            executed = self.ledger.statuses.get(_signature(s))
            value.append(self._status(executed) if executed else None)
        return _json(R.GetSignatureStatusesResp(value, _ctx(self.ledger)))

    def get_block(self, params: Any) -> Any:
        """A slot's landed transactions, full details, base64-encoded (the only encoding simulated). Every slot
        is a block (no leader skips); a slot older than the ledger keeps is reported skipped, as a pruned
        RPC node reports one missing in long-term storage. Commitment is not simulated: a slot's block is
        served at once, whatever level is asked for."""
        slot, config = _params(params, 2)
        config = _config(config)
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
            raise RpcError(INVALID_PARAMS, "Invalid params: the first parameter is a slot number")
        if (config.get("encoding") or "json") != "base64" or (config.get("transactionDetails") or "full") != "full":
            raise RpcError(INVALID_PARAMS, "Invalid params: the simulator serves encoding base64, full details")
        if slot > self.ledger.slot:
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        oldest = next(iter(self.ledger.blocks), self.ledger.slot)
        if slot < oldest and slot not in self.ledger.blocks:
            raise RpcError(SLOT_SKIPPED, f"Slot {slot} was skipped, or missing in long-term storage")
        executed = self.ledger.blocks.get(slot, [])
        if config.get("maxSupportedTransactionVersion") is None and any(
            isinstance(e.entry.tx, VersionedTransaction) and e.entry.tx.version() != Legacy.Legacy
            for e in executed
            if e.entry
        ):
            raise RpcError(UNSUPPORTED_VERSION, "Transaction version (0) is not supported by the requesting client")
        txs = [self._block_tx(e) for e in executed if e.entry is not None]
        block = T.UiConfirmedBlock(
            _slot_hash(slot - 1), _slot_hash(slot), max(slot - 1, 0), txs, None, [], int(time.time()), slot
        )
        return _json(R.GetBlockResp(block))

    def _block_tx(self, executed: Executed) -> T.EncodedTransactionWithStatusMeta:
        entry = executed.entry
        assert entry is not None
        meta = T.UiTransactionStatusMeta(
            executed.err,
            executed.fee,
            list(entry.pre_lamports),
            list(entry.post_lamports),
            [],
            list(executed.logs),
            [_token_balance(b) for b in entry.pre_tokens],
            [_token_balance(b) for b in entry.post_tokens],
            [],
            T.UiLoadedAddresses([str(k) for k in entry.loaded[0]], [str(k) for k in entry.loaded[1]]),
            None,
            executed.units,
        )
        tx = entry.tx
        versioned = VersionedTransaction.from_legacy(tx) if isinstance(tx, Transaction) else tx
        return T.EncodedTransactionWithStatusMeta(versioned, meta, versioned.version())

    def _status(self, executed: Executed) -> TransactionStatus:
        finalized = self.ledger.confirmation(executed) == "finalized"
        return TransactionStatus(
            executed.slot,
            None if finalized else self.ledger.slot - executed.slot,
            executed.err,
            executed.err,
            TransactionConfirmationStatus.Finalized if finalized else TransactionConfirmationStatus.Confirmed,
        )

    # --- block engine ------------------------------------------------------------------------------------

    def send_bundle(self, params: Any) -> Any:
        txs, config = _params(params, 2)
        if not isinstance(txs, list):
            raise RpcError(INVALID_PARAMS, "Invalid params: the first parameter is the list of transactions")
        encoding = _config(config).get("encoding", "base58")
        try:
            return self.engine.submit([decode_tx(t, encoding) for t in txs])
        except BundleRejected as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from exc

    def _bundle_ids(self, params: Any) -> list[str]:
        (ids,) = _params(params, 1)
        if not isinstance(ids, list) or not 1 <= len(ids) <= 5:
            raise RpcError(INVALID_PARAMS, "Invalid params: pass 1 to 5 bundle ids")
        return [str(i) for i in ids]

    def get_bundle_statuses(self, params: Any) -> Any:
        value = []
        for bid in self._bundle_ids(params):
            bundle = self.engine.status(bid)
            if bundle is None or bundle.status != "Landed":
                value.append(None)
                continue
            value.append(
                {
                    "bundle_id": bid,
                    "transactions": [str(tx.signatures[0]) for tx in bundle.txs],
                    "slot": bundle.slot,
                    "confirmation_status": "confirmed",
                    "err": {"Ok": None},
                }
            )
        return {"context": {"slot": self.ledger.slot}, "value": value}

    def get_inflight_bundle_statuses(self, params: Any) -> Any:
        value = []
        for bid in self._bundle_ids(params):
            bundle = self.engine.status(bid)
            value.append(
                {
                    "bundle_id": bid,
                    "status": bundle.status if bundle else "Invalid",
                    "landed_slot": bundle.slot if bundle else None,
                }
            )
        return {"context": {"slot": self.ledger.slot}, "value": value}

    # --- cheats (only with Settings.cheats) ----------------------------------------------------------------

    def request_airdrop(self, params: Any) -> Any:
        key, lamports, _ = _params(params, 3)
        pubkey = _pubkey(key)
        before = self.ledger.snapshot([pubkey])
        result = self.ledger.svm.airdrop(pubkey, int(lamports))
        if isinstance(result, FailedTransactionMetadata):
            raise RpcError(INVALID_PARAMS, f"airdrop failed: {result.err()}")
        self.ledger.publish(before)
        executed = Executed(result.signature(), self.ledger.slot, None, tuple(result.logs()), 0, 0)
        self.ledger.statuses[result.signature()] = executed
        return str(result.signature())

    def cheat_set_account(self, params: Any) -> Any:
        key, spec = _params(params, 2)
        spec = _config(spec)
        data = spec.get("data", ["", "base64"])
        raw = base64.b64decode(data[0] if isinstance(data, list) else data)
        account = Account(
            int(spec.get("lamports", 0)),
            raw,
            _pubkey(spec.get("owner", "11111111111111111111111111111111"), "owner"),
            bool(spec.get("executable", False)),
            int(spec.get("rentEpoch", 0)),
        )
        self.ledger.set_account(_pubkey(key), account)
        return None

    def get_epoch_info(self, params: Any) -> Any:
        epoch, index, slots = self.ledger.epoch_info()
        slot = self.ledger.slot
        return _json(R.GetEpochInfoResp(EpochInfo(epoch, index, slots, slot, slot, None)))

    def cheat_warp(self, params: Any) -> Any:
        (slot,) = _params(params, 1)
        self.ledger.warp(int(slot))
        return self.ledger.slot

    def cheat_advance(self, params: Any) -> Any:
        (n,) = _params(params, 1)
        return self.ledger.advance(int(n or 1))

    def cheat_expire(self, params: Any) -> Any:
        self.ledger.expire_blockhash()
        return str(self.ledger.blockhash())

    def cheat_pause(self, params: Any) -> Any:
        self.paused = True
        return self.ledger.slot

    def cheat_resume(self, params: Any) -> Any:
        self.paused = False
        return self.ledger.slot

    def cheat_bundle_timings(self, params: Any) -> Any:
        """Receipt times of bundles (CLOCK_MONOTONIC, comparable across processes on this machine)."""
        (ids,) = _params(params, 1)
        out = []
        for bid in ids or []:
            b = self.engine.status(str(bid))
            out.append(
                None
                if b is None
                else {"received": b.received_mono, "slot": b.slot_seen, "slot_started": b.slot_started}
            )
        return out

    async def cheat_drop(self, params: Any) -> Any:
        sockets = list(self.sockets)
        for ws in sockets:
            await ws.close()
        return len(sockets)

    # --- pubsub ------------------------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        if not ws.can_prepare(request).ok:
            raise web.HTTPMethodNotAllowed("GET", ["POST"])
        await ws.prepare(request)
        # One writer per socket: notifications and answers leave in the order they were made.
        outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.sockets[ws] = outbox
        writer = asyncio.create_task(_drain(ws, outbox))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    outbox.put_nowait(self._subscribe(msg.data, ws))
        finally:
            writer.cancel()
            self.sockets.pop(ws, None)
            for sid in [s.id for s in self.subs.values() if s.ws is ws]:
                del self.subs[sid]
        return ws

    def _subscribe(self, text: str, ws: web.WebSocketResponse) -> bytes:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return orjson.dumps(_error(None, PARSE_ERROR, "Parse error"))
        requests = request if isinstance(request, list) else [request]
        answers = [self._subscribe_one(r, ws) for r in requests]
        return orjson.dumps(answers if isinstance(request, list) else answers[0])

    def _subscribe_one(self, request: Any, ws: web.WebSocketResponse) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "Invalid request")
        rid, method = request.get("id"), request.get("method")
        try:
            params = _params(request.get("params"), 2)
            if isinstance(method, str) and method.endswith("Unsubscribe"):
                (sid,) = params[:1]
                return {"jsonrpc": "2.0", "result": self.subs.pop(int(sid), None) is not None, "id": rid}
            kind = {
                "accountSubscribe": "account",
                "programSubscribe": "program",
                "slotSubscribe": "slot",
                "signatureSubscribe": "signature",
                "logsSubscribe": "logs",
            }.get(method or "")
            if kind is None:
                return _error(rid, METHOD_NOT_FOUND, "Method not found")
            key: Any = None
            if kind in ("account", "program"):
                key = _pubkey(params[0])
            elif kind == "signature":
                key = _signature(params[0])
            elif kind == "logs":
                key = self._logs_filter(params[0])
            config = _config(params[1]) if kind != "slot" else {}
            sid = self.next_sub
            self.next_sub += 1
            self.subs[sid] = Subscription(sid, kind, ws, key, config)
        except RpcError as exc:
            return _error(rid, exc.code, exc.message)
        if kind == "signature" and key in self.ledger.statuses:
            asyncio.get_running_loop().call_soon(self._notify_executed, self.ledger.statuses[key], ())
        return {"jsonrpc": "2.0", "result": sid, "id": rid}

    @staticmethod
    def _logs_filter(value: Any) -> Any:
        if value in ("all", "allWithVotes"):
            return "all"
        if isinstance(value, dict) and isinstance(value.get("mentions"), list) and len(value["mentions"]) == 1:
            return _pubkey(value["mentions"][0], "mentions")
        raise RpcError(INVALID_PARAMS, 'Invalid params: logs filter is "all" or {"mentions": [one pubkey]}')

    def _send(self, ws: web.WebSocketResponse, method: str, notification: Any) -> None:
        params = orjson.loads(notification.to_json())
        _fill_space(params)
        outbox = self.sockets.get(ws)
        if outbox is not None:
            outbox.put_nowait(orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    def _notify_changes(self, changes: list[Change], slot: int) -> None:
        if not self.subs:
            return
        ctx = R.RpcResponseContext(slot)
        for sub in list(self.subs.values()):
            for change in changes:
                if sub.kind == "account" and sub.key == change.pubkey:
                    shown = change.account or Account(0, b"", Pubkey.default())
                    result = R.AccountNotificationResult(shown, ctx)
                    self._send(sub.ws, "accountNotification", R.AccountNotification(result, sub.id))
                elif (
                    sub.kind == "program"
                    and change.account is not None
                    and change.account.owner == sub.key
                    and matches(change.account, sub.config.get("filters") or [])
                ):
                    keyed = R.RpcKeyedAccount(change.pubkey, change.account)
                    result = R.ProgramNotificationResult(keyed, ctx)
                    self._send(sub.ws, "programNotification", R.ProgramNotification(result, sub.id))

    def _notify_executed(self, executed: Executed, keys: tuple[Pubkey, ...]) -> None:
        ctx = R.RpcResponseContext(executed.slot)
        for sub in list(self.subs.values()):
            if sub.kind == "signature" and sub.key == executed.signature:
                result = R.SignatureNotificationResult(R.RpcSignatureResponse(executed.err), ctx)
                self._send(sub.ws, "signatureNotification", R.SignatureNotification(result, sub.id))
                self.subs.pop(sub.id, None)  # one-shot, as on a node
            elif sub.kind == "logs" and (sub.key == "all" or sub.key in keys):
                logs = R.RpcLogsResponse(executed.signature, executed.err, list(executed.logs))
                self._send(sub.ws, "logsNotification", R.LogsNotification(R.LogsNotificationResult(logs, ctx), sub.id))

    def _notify_slot(self, slot: int) -> None:
        for sub in list(self.subs.values()):
            if sub.kind == "slot":
                info = R.SlotInfo(slot, slot - 1, max(0, slot - 32))
                self._send(sub.ws, "slotNotification", R.SlotNotification(info, sub.id))


async def _drain(ws: web.WebSocketResponse, outbox: asyncio.Queue[bytes]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        while True:
            await ws.send_str((await outbox.get()).decode())


def _slot_hash(slot: int) -> Hash:
    """A slot's block hash: one per slot, stable (LiteSVM's own blockhash only rotates for the window)."""
    return Hash.hash(b"standin-slot-" + slot.to_bytes(8, "little"))


def _token_balance(b: TokenBalance) -> T.UiTransactionTokenBalance:
    ui = b.amount / 10**b.decimals
    text = f"{b.amount // 10**b.decimals}.{b.amount % 10**b.decimals:0{b.decimals}d}".rstrip("0").rstrip(".")
    return T.UiTransactionTokenBalance(
        b.index, b.mint, UiTokenAmount(ui, b.decimals, str(b.amount), text), b.owner, b.program
    )


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": rid}
