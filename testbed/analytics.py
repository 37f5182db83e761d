"""Scripted MEV scenarios on anvil with the published Uniswap contracts, and blocks fetched as nodes serve them.

Every scenario mines its transactions in one block, in the order given, from distinct accounts
(anvil impersonation), so the classifier's answer is known in advance. Expected numbers in the
tests come from the chain (balances before and after), never from the classifier's own code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from web3.contract import Contract

from mevagent.amm.v3.tick_math import get_sqrt_ratio_at_tick
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

from .evm import DEADLINE, MAX_UINT256, V2_CORE, Chain, deploy_token, deploy_v3_stack, read_v3_pool, set_v2_reserves

V2_PERIPHERY = "@uniswap/v2-periphery/build"
V3_CORE = "@uniswap/v3-core/artifacts/contracts"
GAS = 3_000_000
RESERVE = 10**22
FUNDING = 10**24
ACTORS = ("searcher", "victim1", "victim2", "victim3", "arber", "jit", "user1", "user2")


def actor_address(index: int) -> str:
    return "0x" + f"{0xA11CE000 + index:040x}"


@dataclass
class World:
    chain: Chain
    a: Contract
    b: Contract
    c: Contract
    router02: Contract
    pairs: dict[str, Contract]  # "ab", "bc", "ca"
    npm: Contract
    swap_router: Contract
    lens: Contract
    v3_pool: Contract  # A/B, fee 3000
    v2_factory: Contract
    v3_factory: Contract
    actors: dict[str, str] = field(default_factory=dict)

    def addr(self, token: Contract) -> str:
        return str(token.address).lower()

    def balance(self, token: Contract, holder: str, block: int | str = "latest") -> int:
        return int(token.functions.balanceOf(holder).call(block_identifier=block))

    def send(self, fn: Any, sender: str) -> str:
        return fn.transact({"from": sender, "gas": GAS, "gasPrice": 0}).hex()

    def mine(self, calls: Sequence[tuple[Any, str]]) -> tuple[int, list[Any]]:
        """Mine `calls` ((function, sender), ...) in one block, in this order: (block number, receipts)."""
        w3 = self.chain.w3
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            hashes = [self.send(fn, sender) for fn, sender in calls]
            w3.provider.make_request("evm_mine", [])
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.01) for h in hashes]
        blocks = {r["blockNumber"] for r in receipts}
        assert len(blocks) == 1, "the scenario must fit one block"
        assert [r["transactionIndex"] for r in receipts] == list(range(len(calls))), "mined out of order"
        return blocks.pop(), receipts

    def v2_path_swap(self, sender: str, path: Sequence[Contract], amount_in: int, min_out: int = 0) -> Any:
        return self.router02.functions.swapExactTokensForTokens(
            amount_in, min_out, [t.address for t in path], sender, DEADLINE
        )

    def v3_single_swap(
        self, sender: str, token_in: Contract, token_out: Contract, amount_in: int, min_out: int = 0
    ) -> Any:
        return self.swap_router.functions.exactInputSingle(
            (token_in.address, token_out.address, 3000, sender, DEADLINE, amount_in, min_out, 0)
        )


def _impersonate(chain: Chain, address: str) -> None:
    chain.w3.provider.make_request("anvil_impersonateAccount", [address])
    chain.w3.provider.make_request("anvil_setBalance", [address, hex(10**21)])


def build_world(chain: Chain) -> World:
    """Three tokens; V2 pairs A/B, B/C, C/A (C/A priced off so that A -> B -> C -> A pays) behind the
    published Router02; a V3 A/B pool (fee 0.3%) with one wide position behind SwapRouter; funded,
    approving actors."""
    a, b, c = (deploy_token(chain) for _ in range(3))
    weth = chain.deploy(f"{V2_PERIPHERY}/WETH9.json")
    v2_factory = chain.deploy(f"{V2_CORE}/UniswapV2Factory.json", chain.account)
    router02 = chain.deploy(f"{V2_PERIPHERY}/UniswapV2Router02.json", v2_factory.address, weth.address)
    pairs = {}
    for name, left, right, amount_left, amount_right in (
        ("ab", a, b, RESERVE, 2 * RESERVE),
        ("bc", b, c, RESERVE, RESERVE),
        ("ca", c, a, RESERVE, RESERVE * 3 // 5),  # C is dear in A here: the cycle's gap
    ):
        chain.transact(v2_factory.functions.createPair(left.address, right.address))
        pair = chain.at(
            f"{V2_CORE}/UniswapV2Pair.json", v2_factory.functions.getPair(left.address, right.address).call()
        )
        if int(left.address, 16) < int(right.address, 16):
            set_v2_reserves(chain, pair, left, right, amount_left, amount_right)
        else:
            set_v2_reserves(chain, pair, right, left, amount_right, amount_left)
        pairs[name] = pair
    v3_factory, npm, swap_router, lens = deploy_v3_stack(chain, (a, b, c))
    token0, token1 = sorted((a, b), key=lambda t: int(t.address, 16))
    chain.transact(v3_factory.functions.createPool(token0.address, token1.address, 3000))
    pool = chain.at(
        f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json",
        v3_factory.functions.getPool(token0.address, token1.address, 3000).call(),
    )
    chain.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(0)))
    for lower, upper, amount in ((-6000, 6000, RESERVE), (-600, 600, RESERVE // 4)):
        params = (token0.address, token1.address, 3000, lower, upper, amount, amount, 0, 0, chain.account, DEADLINE)
        chain.transact(npm.functions.mint(params))
    world = World(chain, a, b, c, router02, pairs, npm, swap_router, lens, pool, v2_factory, v3_factory)
    for index, name in enumerate(ACTORS):
        address = chain.w3.to_checksum_address(actor_address(index))
        _impersonate(chain, address)
        world.actors[name] = address
        for token in (a, b, c):
            chain.transact(token.functions.transfer(address, FUNDING))
            for spender in (router02, swap_router, npm):
                world.send(token.functions.approve(spender.address, MAX_UINT256), address)
    return world


def fetch_block(chain: Chain, number: int) -> dict[str, Any]:
    """The block as a node serves it: {"block", "receipts", "traces"} plus "geth_traces" (callTracer)."""
    request = chain.w3.provider.make_request
    tag = hex(number)
    return {
        "block": request("eth_getBlockByNumber", [tag, True])["result"],
        "receipts": request("eth_getBlockReceipts", [tag])["result"],
        "traces": request("trace_block", [tag])["result"],
        "geth_traces": request("debug_traceBlockByNumber", [tag, {"tracer": "callTracer"}])["result"],
    }


def source_variants(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same block as each kind of node would give it."""
    return {
        "logs": {"block": raw["block"], "receipts": raw["receipts"]},
        "traces": {"block": raw["block"], "traces": raw["traces"]},
        "geth": {"block": raw["block"], "traces": raw["geth_traces"]},
        # An archive that keeps receipts without logs, and traces.
        "logless": {
            "block": raw["block"],
            "receipts": [{**r, "logs": []} for r in raw["receipts"]],
            "traces": raw["traces"],
        },
        "both": {"block": raw["block"], "receipts": raw["receipts"], "traces": raw["traces"]},
    }


def pool_store(world: World, more_v3: Sequence[Contract] = ()) -> PoolStore:
    """The pools as the agent's store would hold them now, read back from the contracts (and `more_v3`)."""
    store = PoolStore("anvil", block=world.chain.w3.eth.block_number)
    for pair in world.pairs.values():
        reserve0, reserve1, _ = pair.functions.getReserves().call()
        token0, token1 = pair.functions.token0().call().lower(), pair.functions.token1().call().lower()
        store.add(V2Pool(pair.address.lower(), "uniswap_v2", token0, token1, reserve0, reserve1, 3, 1000))
    for pool in (world.v3_pool, *more_v3):
        state = read_v3_pool(world.lens, pool, -7000, 7000)  # every position the fixtures mint
        token0, token1 = pool.functions.token0().call().lower(), pool.functions.token1().call().lower()
        store.add(V3Pool(pool.address.lower(), "uniswap_v3", token0, token1, state))
    return store


def next_token_id(world: World) -> int:
    return int(world.npm.functions.totalSupply().call()) + 1


def narrow_mint(world: World, owner: str, amount: int) -> tuple[Any, tuple[int, ...]]:
    """A mint of a narrow V3 position around the price (JIT liquidity): (the call, (lower, upper, liquidity,
    amount0, amount1)) as it will do as the block's first transaction."""
    tick = world.v3_pool.functions.slot0().call()[1]
    lower, upper = (tick // 60 - 1) * 60, (tick // 60 + 2) * 60
    token0, token1 = sorted((world.a, world.b), key=lambda t: int(t.address, 16))
    params = (token0.address, token1.address, 3000, lower, upper, amount, amount, 0, 0, owner, DEADLINE)
    fn = world.npm.functions.mint(params)
    # What the mint will do as the block's first transaction: the same call on the same state.
    _token_id, liquidity, amount0, amount1 = fn.call({"from": owner})
    return fn, (lower, upper, liquidity, amount0, amount1)


def v3_pool_bc(world: World) -> Any:
    """A second V3 pool, B/C (fee 0.3 %), one wide position: V3 routes of two hops."""
    w, chain = world, world.chain
    token0, token1 = sorted((w.b, w.c), key=lambda t: int(t.address, 16))
    address = w.v3_factory.functions.getPool(token0.address, token1.address, 3000).call()
    if int(address, 16) == 0:
        chain.transact(w.v3_factory.functions.createPool(token0.address, token1.address, 3000))
        address = w.v3_factory.functions.getPool(token0.address, token1.address, 3000).call()
        pool = chain.at(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json", address)
        chain.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(0)))
        amount = 10**22
        params = (token0.address, token1.address, 3000, -6000, 6000, amount, amount, 0, 0, chain.account, DEADLINE)
        chain.transact(w.npm.functions.mint(params))
    return chain.at(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json", address)
