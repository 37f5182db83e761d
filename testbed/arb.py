"""An arbitrage world on anvil: tokens, Uniswap V2 pairs and a V3 pool from their published artifacts,
a price gap, the ArbExecutor deployed by the agent's own deploy function and funded with inventory,
the pool store read back from the chain, and local builder endpoints as real aiohttp servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from web3.contract import Contract
from web3.logs import DISCARD

from mevagent.amm import cycle_amounts, search_cycle, size_v2_cycle
from mevagent.amm.v3.pool import V3PoolState
from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.core import Decision, Hop, Opportunity, Outcome, Status
from mevagent.executor.config import ChainExecution
from mevagent.executor.contract import artifact
from mevagent.executor.deploy import ZERO_ADDRESS, Deployment, deploy_contract
from mevagent.executor.executor import ArbitrageExecutor, ExecutionReport
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.rpc import HttpJsonRpc, JsonRpc
from mevagent.lending.providers import UniswapV2FlashProvider
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

from .evm import DEADLINE, V2_CORE, Chain, deploy_token, deploy_v2_pair, deploy_v3_stack, set_v2_reserves

V3_CORE = "@uniswap/v3-core/artifacts/contracts"
INVENTORY = 10**22  # of token A, held by the contract
GAS_LIMIT = 1_000_000
CHAIN = "anvil"
Funded = TypeVar("Funded", bound=Opportunity)


def rpc_url(chain: Chain) -> str:
    return str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


@dataclass
class ArbWorld:
    chain: Chain
    key_file: Path
    identity_file: Path
    deployment: Deployment
    contract: Contract
    token_a: Contract  # the cycle token: the contract's inventory
    token_b: Contract
    token_c: Contract
    pair_ab_dear: Contract  # A is dear here after the gap: sell A
    pair_ab_cheap: Contract
    pair_bc: Contract
    pair_ca: Contract
    v3_pool: Contract  # A/B at 1 A = 1.5 B
    v3_ticks: dict[int, int]

    @property
    def a(self) -> str:
        return self.token_a.address.lower()

    @property
    def b(self) -> str:
        return self.token_b.address.lower()

    @property
    def c(self) -> str:
        return self.token_c.address.lower()

    def balance(self, token: Contract, holder: str | None = None) -> int:
        return int(token.functions.balanceOf(holder or self.contract.address).call())

    def store(self) -> PoolStore:
        """The pool store as a syncer would hold it now: every pool read back from the chain."""
        store = PoolStore(CHAIN, block=self.chain.w3.eth.block_number)
        for pair in (self.pair_ab_dear, self.pair_ab_cheap, self.pair_bc, self.pair_ca):
            reserve0, reserve1, _ = pair.functions.getReserves().call()
            token0, token1 = pair.functions.token0().call().lower(), pair.functions.token1().call().lower()
            store.add(V2Pool(pair.address.lower(), "uniswap_v2", token0, token1, reserve0, reserve1, 3, 1000))
        sqrt_price, tick, *_ = self.v3_pool.functions.slot0().call()
        state = V3PoolState.from_ticks(
            sqrt_price_x96=sqrt_price,
            tick=tick,
            liquidity=self.v3_pool.functions.liquidity().call(),
            fee=self.v3_pool.functions.fee().call(),
            tick_spacing=self.v3_pool.functions.tickSpacing().call(),
            ticks=self.v3_ticks,
        )
        token0, token1 = self.v3_pool.functions.token0().call().lower(), self.v3_pool.functions.token1().call().lower()
        store.add(V3Pool(self.v3_pool.address.lower(), "uniswap_v3", token0, token1, state))
        return store

    def opportunity(
        self,
        route: Sequence[tuple[Contract, str, str]],
        *,
        builder_payment: int = 0,
        gas_price: int = 0,
        usd_per_a: float = 1e-18,
        gas_cost_usd: float = 0.0,
        amount_in: int | None = None,
        opportunity_id: str = "",
    ) -> Opportunity:
        """The cycle `route` ((pool, token_in, token_out)...), sized by mevagent.amm.arbitrage on the store."""
        store = self.store()
        hops = tuple(Hop(p.address.lower(), _kind(store, p.address), t_in, t_out) for p, t_in, t_out in route)
        amm_hops = [store.pools[h.pool].hop(h.token_in) for h in hops]
        if amount_in is None:
            if all(h.kind == "v2" for h in hops):
                sized = size_v2_cycle(amm_hops)  # type: ignore[arg-type]
            else:
                sized = search_cycle(amm_hops, max_amount_in=INVENTORY)
            assert sized is not None, "the fixture's cycle must be profitable"
            amount_in, amount_out = sized.amount_in, sized.amount_out
        else:
            amounts = cycle_amounts(amm_hops, amount_in)
            assert amounts is not None
            amount_out = amounts[-1]
        return Opportunity(
            chain=CHAIN,
            strategy="dex_arb",
            block=store.block,
            hops=hops,
            amount_in=amount_in,
            amount_out=amount_out,
            gas_limit=GAS_LIMIT,
            gas_price=gas_price,
            builder_payment=builder_payment,
            notional_usd=amount_in * usd_per_a,
            profit_usd=(amount_out - amount_in) * usd_per_a,
            gas_cost_usd=gas_cost_usd,
            found_ns=time.perf_counter_ns(),
            id=opportunity_id,
        )

    def two_hop_v2(self) -> list[tuple[Contract, str, str]]:
        return [(self.pair_ab_dear, self.a, self.b), (self.pair_ab_cheap, self.b, self.a)]

    def three_hop_v2(self) -> list[tuple[Contract, str, str]]:
        return [(self.pair_ab_dear, self.a, self.b), (self.pair_bc, self.b, self.c), (self.pair_ca, self.c, self.a)]

    def v2_then_v3(self) -> list[tuple[Contract, str, str]]:
        return [(self.pair_ab_dear, self.a, self.b), (self.v3_pool, self.b, self.a)]

    def v3_then_v2(self) -> list[tuple[Contract, str, str]]:
        # The V3 pays its output straight into the V2 pair that follows it.
        return [(self.v3_pool, self.a, self.b), (self.pair_ab_cheap, self.b, self.a)]


def _kind(store: PoolStore, address: str) -> str:
    return "v3" if isinstance(store.pools[address.lower()], V3Pool) else "v2"


def _swap_v2(chain: Chain, pair: Contract, token_in: Contract, amount: int) -> None:
    """A plain trader's swap straight on the pair: this is what opens the price gap."""
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    zero_for_one = int(token_in.address, 16) == int(pair.functions.token0().call(), 16)
    reserve_in, reserve_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
    out = amount * 997 * reserve_out // (reserve_in * 1000 + amount * 997)
    chain.transact(token_in.functions.transfer(pair.address, amount))
    chain.transact(pair.functions.swap(0 if zero_for_one else out, out if zero_for_one else 0, chain.account, b""))


def build_world(chain: Chain, directory: Path) -> ArbWorld:
    token_a, token_b, token_c = deploy_token(chain), deploy_token(chain), deploy_token(chain)
    pairs = []
    for left, right in ((token_a, token_b), (token_a, token_b), (token_b, token_c), (token_c, token_a)):
        pair = deploy_v2_pair(chain, left, right)
        token0 = chain.at(f"{V2_CORE}/ERC20.json", pair.functions.token0().call())
        token1 = right if token0.address == left.address else left
        set_v2_reserves(chain, pair, token0, token1, 10**21, 10**21)
        pairs.append(pair)
    dear = pairs[0]
    # A trader buys A with B in one pair: A is now dear there (the gap the agent must close).
    _swap_v2(chain, dear, token_b, 4 * 10**20)

    factory, npm, _, _ = deploy_v3_stack(chain, (token_a, token_b))
    token0, token1 = sorted((token_a, token_b), key=lambda t: int(t.address, 16))
    chain.transact(factory.functions.createPool(token0.address, token1.address, 3000))
    pool = chain.at(
        f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json",
        factory.functions.getPool(token0.address, token1.address, 3000).call(),
    )
    # A is dear on V3 too, less than in the dear pair (1 A = 1.5 B against ~1.96 B): cycles through
    # V3 pay either way round, V2 -> V3 and V3 -> V2.
    a_is_token0 = token0.address == token_a.address
    start = 4020 if a_is_token0 else -4020
    chain.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(start)))
    ticks: dict[int, int] = {}
    for lower, upper in ((start - 6000, start + 6000), (start - 600, start + 600), (start - 60, start + 1200)):
        params = (token0.address, token1.address, 3000, lower, upper, 10**21, 10**21, 0, 0, chain.account, DEADLINE)
        receipt = chain.transact(npm.functions.mint(params))
        (event,) = npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
        ticks[lower] = ticks.get(lower, 0) + event["args"]["liquidity"]
        ticks[upper] = ticks.get(upper, 0) - event["args"]["liquidity"]

    key_file, identity_file, deployment = deploy_executor(chain, directory)
    contract = chain.w3.eth.contract(address=chain.w3.to_checksum_address(deployment.address), abi=artifact()["abi"])
    chain.transact(token_a.functions.transfer(contract.address, INVENTORY))
    return ArbWorld(
        chain,
        key_file,
        identity_file,
        deployment,
        contract,
        token_a,
        token_b,
        token_c,
        *pairs,
        pool,
        ticks,
    )


def deploy_executor(chain: Chain, directory: Path, wrapped_native: str = ZERO_ADDRESS) -> tuple[Path, Path, Deployment]:
    """(the owner's key file, the searcher identity's key file, the deployment): new keys in `directory`, the
    owner funded with 100 ether, the agent's contract deployed from it by the agent's own deploy function."""
    key_file, identity_file = directory / "executor.key", directory / "identity.key"
    owner = write_new_key_file(key_file)
    write_new_key_file(identity_file)
    chain.w3.provider.make_request("anvil_setBalance", [owner, hex(10**20)])

    async def deploy() -> Deployment:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(chain), session)
            return await deploy_contract(rpc, Signer.from_file(key_file), wrapped_native)

    return key_file, identity_file, asyncio.run(deploy())


class ExecutorWorld(Protocol):
    """A test world with the agent's contract deployed (deploy_executor) and the pools it trades in."""

    chain: Chain
    key_file: Path
    identity_file: Path
    deployment: Deployment

    def store(self) -> PoolStore: ...


async def open_executor(
    world: ExecutorWorld, builder: LocalBuilder, risk: Any, *, live: bool, rpc: JsonRpc | None = None, **execution: Any
) -> ArbitrageExecutor:
    """The ArbitrageExecutor of the world's contract over its pool store, sending to one local `builder` (no
    slippage allowance; `rpc`: a node client to share, as the agent shares its node link, else its own over HTTP;
    `execution`: further ChainExecution fields)."""
    chain = world.chain
    config = ChainExecution(
        chain=CHAIN,
        chain_id=chain.w3.eth.chain_id,
        rpc_url=rpc_url(chain),
        contract=world.deployment.address,
        key_file=world.key_file,
        identity_key_file=world.identity_file,
        builders=[{"name": builder.behaviour.name, "url": builder.url, "timeout_ms": 2000}],
        receipt_poll_ms=10,
        live=live,
        **execution,
    )
    return await ArbitrageExecutor.open(config, world.store(), risk, max_slippage_bps=lambda: 0, rpc=rpc)


def assert_dry_run(
    chain: Chain,
    deployment: Deployment,
    nonce: int,
    outcome: Outcome,
    reports: Sequence[ExecutionReport],
    kind: type[Funded],
) -> Funded:
    """A dry run: simulated (DRY_RUN, a funded opportunity of `kind`, its one report's profit its gross profit,
    above zero) and nothing sent (the contract owner's nonce still `nonce`, the node's pool empty). The funded
    opportunity, returned."""
    assert outcome.status is Status.DRY_RUN, outcome.reason
    funded = outcome.opportunity
    assert isinstance(funded, kind)
    (report,) = reports
    assert report.profit_wei == funded.gross_profit > 0
    w3 = chain.w3
    assert w3.eth.get_transaction_count(w3.to_checksum_address(deployment.owner)) == nonce
    assert w3.provider.make_request("txpool_status", [])["result"] == {"pending": "0x0", "queued": "0x0"}
    return funded


def emitted(collector: Any) -> list[Any]:
    """The events a monitor or collector emits from now on, in order (its `_emit` replaced)."""
    events: list[Any] = []

    async def collect(event: object) -> None:
        events.append(event)

    collector._emit = collect
    return events


def v2_reading(pair: Contract) -> tuple[str, str, str, int, int]:
    """(address, token0, token1, reserve0, reserve1) of a V2 pair, read from the chain, addresses lower-case."""
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    token0, token1 = pair.functions.token0().call().lower(), pair.functions.token1().call().lower()
    return pair.address.lower(), token0, token1, reserve0, reserve1


def v2_store(chain: Chain, pairs: Sequence[Contract]) -> PoolStore:
    """A pool store of Uniswap V2 `pairs` (0.3 % fee) as the chain holds them now."""
    store = PoolStore(CHAIN, block=chain.w3.eth.block_number)
    for pair in pairs:
        address, token0, token1, reserve0, reserve1 = v2_reading(pair)
        store.add(V2Pool(address, "uniswap_v2", token0, token1, reserve0, reserve1, 3, 1000))
    return store


def v2_flash_provider(pair: Contract) -> UniswapV2FlashProvider:
    """A Uniswap V2 pair (0.3 % fee) as the flash-swap lender the chain holds now."""
    address, token0, token1, reserve0, reserve1 = v2_reading(pair)
    return UniswapV2FlashProvider(CHAIN, address, token0, token1, (reserve0, reserve1), 3, 1000)


def receipt_logs(receipt: Any) -> dict[str, Any]:
    """A web3 receipt's logs as a JSON-RPC receipt carries them (hex strings)."""
    logs = [
        {"address": log["address"], "topics": ["0x" + t.hex() for t in log["topics"]], "data": "0x" + log["data"].hex()}
        for log in receipt["logs"]
    ]
    return {"logs": logs}


# -- risk gates ------------------------------------------------------------------------------------


@dataclass
class CountingRisk:
    """A real (small) risk gate: a per-trade notional cap, and a log of every check and record."""

    max_notional_usd: float = float("inf")
    checks: list[str] = field(default_factory=list)
    records: list[Outcome] = field(default_factory=list)
    on_check: Any = None  # called inside check(): lets a test look at the world at that instant

    def check(self, opportunity: Opportunity, *, unwind: bool = False) -> Decision:
        """`unwind` changes nothing here: the notional cap holds for a trade that reduces exposure too."""
        self.checks.append(opportunity.id)
        if self.on_check is not None:
            self.on_check(opportunity)
        if opportunity.notional_usd > self.max_notional_usd:
            return Decision(False, f"max_position_size: {opportunity.notional_usd:g} > {self.max_notional_usd:g} USD")
        return Decision(True)

    def record(self, outcome: Outcome) -> None:
        self.records.append(outcome)


# -- builder endpoints -----------------------------------------------------------------------------


@dataclass
class BuilderBehaviour:
    name: str
    delay_s: float = 0.0
    status: int = 200
    include: bool = False  # forward the bundle's transactions to the node, like a builder winning the block
    call_bundle_revert: str = ""  # eth_callBundle answers that the bundle reverts, with this reason


@dataclass
class ReceivedRequest:
    method: str
    params: dict[str, Any]
    signer: str  # recovered from X-Flashbots-Signature
    claimed: str  # the address part of the header


@dataclass
class LocalBuilder:
    behaviour: BuilderBehaviour
    node_url: str
    url: str = ""
    received: list[ReceivedRequest] = field(default_factory=list)
    forwarded: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        claimed, _, signature = request.headers.get("X-Flashbots-Signature", ":").partition(":")
        digest = "0x" + keccak(body).hex()
        signer = Account.recover_message(encode_defunct(text=digest), signature=signature) if signature else ""
        payload = orjson.loads(body)
        self.received.append(ReceivedRequest(payload["method"], payload["params"][0], signer, claimed))
        if self.behaviour.delay_s:
            await asyncio.sleep(self.behaviour.delay_s)
        if self.behaviour.status != 200:
            return web.Response(status=self.behaviour.status, text="builder unavailable")
        if payload["method"] == "eth_callBundle":
            result = {"results": [await self._simulate(tx) for tx in payload["params"][0]["txs"]]}
            return web.json_response({"jsonrpc": "2.0", "id": payload["id"], "result": result})
        if payload["method"] == "eth_sendBundle" and self.behaviour.include:
            async with aiohttp.ClientSession() as session:
                for tx in payload["params"][0]["txs"]:
                    if tx not in self.forwarded:
                        self.forwarded.add(tx)
                        await session.post(
                            self.node_url,
                            data=orjson.dumps(
                                {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [tx]}
                            ),
                            headers={"Content-Type": "application/json"},
                        )
        result = {"bundleHash": "0x" + keccak(body).hex()}
        return web.json_response({"jsonrpc": "2.0", "id": payload["id"], "result": result})

    async def _simulate(self, raw_tx: str) -> dict[str, Any]:
        """eth_callBundle for one transaction: its call on the node at the head, as its sender."""
        tx = TypedTransaction.from_bytes(HexBytes(raw_tx)).as_dict()
        sender = Account.recover_transaction(raw_tx)
        if self.behaviour.call_bundle_revert:
            return {"txHash": "", "error": "execution reverted", "revert": self.behaviour.call_bundle_revert}
        call = {"from": sender, "to": "0x" + bytes(tx["to"]).hex(), "data": "0x" + bytes(tx["data"]).hex()}
        async with aiohttp.ClientSession() as session:
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]})
            async with session.post(self.node_url, data=body, headers={"Content-Type": "application/json"}) as r:
                answer = orjson.loads(await r.read())
        if "error" in answer:
            return {"txHash": "", "error": "execution reverted", "revert": str(answer["error"].get("message"))}
        return {"txHash": "", "value": answer["result"]}

    @property
    def bundles(self) -> list[ReceivedRequest]:
        return [r for r in self.received if r.method == "eth_sendBundle"]


@contextlib.asynccontextmanager
async def builders(behaviours: Sequence[BuilderBehaviour], node_url: str) -> AsyncIterator[list[LocalBuilder]]:
    """Real HTTP servers on 127.0.0.1, one per behaviour."""
    runners, started = [], []
    try:
        for behaviour in behaviours:
            builder = LocalBuilder(behaviour, node_url)
            app = web.Application()
            app.router.add_post("/", builder.handle)
            runner = web.AppRunner(app, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            builder.url = f"http://127.0.0.1:{port}/"
            started.append(builder)
        yield started
    finally:
        for runner in runners:
            await runner.cleanup()
