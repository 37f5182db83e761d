"""An anvil that serves IPC and keeps a state file, Uniswap V2/V3 pools on it, and random activity.

The node can be stopped (state dumped), killed (state since the last periodic dump lost) and started
again on the same IPC path, the way a co-located node restarts under a running agent. Pools come
from the published v2-core/v3-core/v3-periphery artifacts, deployed with testbed/evm.py's helpers.
The expected state of every pool is read from the contracts themselves (getReserves, slot0,
liquidity, and TickLens for ticks), never from the agent's own bootstrap code.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from mevagent.amm import get_amount_out
from mevagent.amm.v3 import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick
from mevagent.state.config import FactoryConfig, SyncConfig
from mevagent.state.logs import GrossTicks
from mevagent.state.pools import PoolStore, V2Pool, V3Pool

from .evm import ANVIL, DEADLINE, Chain, anvil_env, artifact, deploy_token, deploy_v3_stack
from .services import free_port

V2_CORE = "@uniswap/v2-core/build"
V3_CORE = "@uniswap/v3-core/artifacts/contracts"
GAS = 10_000_000


class IpcAnvil:
    """anvil --ipc PATH --state FILE: restartable on the same socket path with its chain intact."""

    def __init__(self, state_interval: int | None = None) -> None:
        # Unix socket paths are limited to 107 bytes: keep the directory short.
        self.dir = Path(tempfile.mkdtemp(prefix="mevipc"))
        self.ipc_path = self.dir / "anvil.ipc"
        self.state_file = self.dir / "state.json"
        self.port = free_port()
        self.state_interval = state_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{self.port}", request_kwargs={"timeout": 60}))

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            str(ANVIL),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ipc",
            str(self.ipc_path),
            "--state",
            str(self.state_file),
            "--accounts",
            "2",
            "--base-fee",
            "0",
            "--gas-price",
            "0",
            "--gas-limit",
            str(1000 * GAS),
            "--quiet",
        ]
        if self.state_interval is not None:
            args += ["--state-interval", str(self.state_interval)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=anvil_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                self.w3.eth.chain_id  # noqa: B018 - the first answer means the node is up
                if self.ipc_path.exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        stderr = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        self.stop()
        raise RuntimeError(f"anvil did not come up: {stderr[-2000:]}")

    def stop(self) -> None:
        """SIGTERM: anvil dumps its state file on the way out."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: whatever was mined since the last periodic dump is lost."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Position:
    token_id: int
    pool: int  # index into Pools.v3_pools
    lower: int
    upper: int
    liquidity: int


@dataclass
class Pools:
    """Three tokens; a V2 factory with three pairs; a V3 factory with two pools; a router and positions."""

    chain: Chain
    tokens: list[Contract]
    v2_factory: Contract
    v2_pairs: list[Contract]
    v3_factory: Contract
    npm: Contract
    router: Contract
    lens: Contract
    v3_pools: list[Contract]
    v3_fees: list[int]
    positions: list[Position] = field(default_factory=list)

    def sync_config(self, **overrides: Any) -> SyncConfig:
        return SyncConfig(
            factories=(
                FactoryConfig(kind="v2", address=self.v2_factory.address, fork="uniswap_v2"),
                FactoryConfig(kind="v3", address=self.v3_factory.address, fork="uniswap_v3"),
            ),
            **overrides,
        )

    # -- transactions ------------------------------------------------------------------------

    def send(self, fn: Any) -> str:
        return fn.transact({"from": self.chain.account, "gas": GAS, "gasPrice": 0})

    def wait(self, tx_hash: str, *, strict: bool = True) -> Any:
        receipt = self.chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        # Random activity may ask for the impossible (a swap through a range without liquidity, a burn
        # worth nothing): the chain reverts it, there are no logs, and the store must not change.
        assert receipt["status"] == 1 or not strict, f"transaction {tx_hash.hex()} reverted"
        return receipt

    def transact(self, fn: Any, *, strict: bool = True) -> Any:
        return self.wait(self.send(fn), strict=strict)

    def in_one_block(self, fns: list[Any]) -> Any:
        """Mine all of `fns` in a single block (several pool logs in one block, in order)."""
        w3 = self.chain.w3
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            hashes = [self.send(fn) for fn in fns]
            w3.provider.make_request("evm_mine", [])
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        receipts = [self.wait(h, strict=False) for h in hashes]
        assert len({r["blockNumber"] for r in receipts}) == 1
        return receipts

    # -- random activity -----------------------------------------------------------------------

    def v2_swap(self, rng: random.Random) -> list[Any]:
        pair = rng.choice(self.v2_pairs)
        reserve0, reserve1, _ = pair.functions.getReserves().call()
        zero_for_one = rng.random() < 0.5
        reserve_in, reserve_out = (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)
        amount_in = max(1000, int(reserve_in * rng.uniform(0.0005, 0.2)))
        amount_out = get_amount_out(amount_in, reserve_in, reserve_out, 3, 1000)
        token_in = self._token(pair.functions.token0().call() if zero_for_one else pair.functions.token1().call())
        outs = (0, amount_out) if zero_for_one else (amount_out, 0)
        return [
            token_in.functions.transfer(pair.address, amount_in),
            pair.functions.swap(*outs, self.chain.account, b""),
        ]

    def v2_mint(self, rng: random.Random) -> list[Any]:
        pair = rng.choice(self.v2_pairs)
        reserve0, reserve1, _ = pair.functions.getReserves().call()
        share = rng.uniform(0.01, 0.3)
        token0 = self._token(pair.functions.token0().call())
        token1 = self._token(pair.functions.token1().call())
        return [
            token0.functions.transfer(pair.address, int(reserve0 * share) + 1),
            token1.functions.transfer(pair.address, int(reserve1 * share) + 1),
            pair.functions.mint(self.chain.account),
        ]

    def v2_burn(self, rng: random.Random) -> list[Any]:
        pair = rng.choice(self.v2_pairs)
        balance = pair.functions.balanceOf(self.chain.account).call()
        return [
            pair.functions.transfer(pair.address, int(balance * rng.uniform(0.01, 0.2))),
            pair.functions.burn(self.chain.account),
        ]

    def v3_swap(self, rng: random.Random) -> list[Any]:
        index = rng.randrange(len(self.v3_pools))
        zero_for_one = rng.random() < 0.5
        token0, token1 = self._v3_tokens(index)
        token_in, token_out = (token0, token1) if zero_for_one else (token1, token0)
        amount = int(10 ** rng.uniform(15, 21.5))
        # A limit 2000 ticks away: big swaps stop there instead of running the price off to MIN/MAX_TICK.
        tick = self.v3_pools[index].functions.slot0().call()[1]
        limit = get_sqrt_ratio_at_tick(max(MIN_TICK + 1, min(MAX_TICK - 1, tick + (-2000 if zero_for_one else 2000))))
        fee = self.v3_fees[index]
        params = (token_in.address, token_out.address, fee, self.chain.account, DEADLINE, amount, 0, limit)
        return [self.router.functions.exactInputSingle(params)]

    def v3_mint(self, rng: random.Random, index: int | None = None) -> list[Any]:
        if index is None:
            index = rng.randrange(len(self.v3_pools))
        pool = self.v3_pools[index]
        spacing = pool.functions.tickSpacing().call()
        tick = pool.functions.slot0().call()[1]
        lower = (tick // spacing + rng.randint(-40, 10)) * spacing
        upper = lower + rng.randint(1, 40) * spacing
        desired = int(10 ** rng.uniform(17, 21))
        tokens = tuple(t.address for t in self._v3_tokens(index))
        params = (*tokens, self.v3_fees[index], lower, upper, desired, desired, 0, 0, self.chain.account, DEADLINE)
        return [self.npm.functions.mint(params)]

    def v3_burn(self, rng: random.Random) -> list[Any]:
        owned = [p for p in self.positions if p.liquidity > 0]
        position = rng.choice(owned)
        amount = position.liquidity if rng.random() < 0.3 else rng.randint(1, position.liquidity)
        return [self.npm.functions.decreaseLiquidity((position.token_id, amount, 0, 0, DEADLINE))]

    def random_block(self, rng: random.Random) -> None:
        """One random operation; one time in three, two or three of them in the same block."""
        kinds = [self.v2_swap, self.v2_mint, self.v2_burn, self.v3_swap, self.v3_swap, self.v3_mint, self.v3_burn]
        if rng.random() < 1 / 3:
            fns = [fn for _ in range(rng.randint(2, 3)) for fn in rng.choice(kinds)(rng)]
            receipts = self.in_one_block(fns)
        else:
            receipts = [self.transact(fn, strict=False) for fn in rng.choice(kinds)(rng)]
        self._track_positions(receipts)

    def _track_positions(self, receipts: list[Any]) -> None:
        for receipt in receipts:
            for event in self.npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD):
                args = event["args"]
                known = next((p for p in self.positions if p.token_id == args["tokenId"]), None)
                if known is None:
                    pos = self.npm.functions.positions(args["tokenId"]).call()
                    pool = self.v3_fees.index(pos[4])
                    self.positions.append(Position(args["tokenId"], pool, pos[5], pos[6], args["liquidity"]))
                else:
                    known.liquidity += args["liquidity"]
            for event in self.npm.events.DecreaseLiquidity().process_receipt(receipt, errors=DISCARD):
                args = event["args"]
                for position in self.positions:
                    if position.token_id == args["tokenId"]:
                        position.liquidity -= args["liquidity"]

    def _token(self, address: str) -> Contract:
        # Not next(...): a StopIteration raised in asyncio.to_thread leaves the awaiting task hanging.
        matches = [t for t in self.tokens if t.address == address]
        if not matches:
            raise KeyError(f"{address} is not one of the test's tokens")
        return matches[0]

    def _v3_tokens(self, index: int) -> tuple[Contract, Contract]:
        pool = self.v3_pools[index]
        return self._token(pool.functions.token0().call()), self._token(pool.functions.token1().call())

    # -- what the contracts hold -----------------------------------------------------------------

    def assert_store_matches(self, store: PoolStore, gross: GrossTicks, block: int | None = None) -> int:
        """Every pool in the store equals its contract at `block` (default: latest); returns pools checked."""
        ident = block if block is not None else "latest"
        expected_addresses = {p.address.lower() for p in self.v2_pairs + self.v3_pools}
        assert set(store.pools) == expected_addresses
        for pair in self.v2_pairs:
            pool = store.pools[pair.address.lower()]
            assert isinstance(pool, V2Pool)
            reserve0, reserve1, _ = pair.functions.getReserves().call(block_identifier=ident)
            assert (pool.reserve0, pool.reserve1) == (reserve0, reserve1), pair.address
            assert (pool.token0, pool.token1) == (
                pair.functions.token0().call().lower(),
                pair.functions.token1().call().lower(),
            )
            assert (pool.fee, pool.fee_denominator) == (3, 1000)
        for contract in self.v3_pools:
            pool = store.pools[contract.address.lower()]
            assert isinstance(pool, V3Pool)
            state = pool.state
            sqrt_price, tick, *_ = contract.functions.slot0().call(block_identifier=ident)
            assert (state.sqrt_price_x96, state.tick) == (sqrt_price, tick), contract.address
            assert state.liquidity == contract.functions.liquidity().call(block_identifier=ident), contract.address
            assert (state.fee, state.tick_spacing) == (
                contract.functions.fee().call(),
                contract.functions.tickSpacing().call(),
            )
            net, gross_expected = self._populated_ticks(contract, state.tick_spacing, ident, state.ticks)
            assert dict(state.ticks) == net, contract.address
            assert gross[contract.address.lower()] == gross_expected, contract.address
        return len(expected_addresses)

    def _populated_ticks(
        self, pool: Contract, spacing: int, ident: Any, also: Any
    ) -> tuple[dict[int, int], dict[int, int]]:
        """The pool's initialized ticks, from TickLens, in every bitmap word that a position we minted
        or a tick the store holds (`also`) lies in: so neither a missing nor an extra tick goes unseen."""
        index = self.v3_pools.index(pool)
        ticks = {t for p in self.positions if p.pool == index for t in (p.lower, p.upper)} | set(also)
        net: dict[int, int] = {}
        gross: dict[int, int] = {}
        for word in sorted({(t // spacing) >> 8 for t in ticks}):
            for tick, liquidity_net, liquidity_gross in self.lens.functions.getPopulatedTicksInWord(
                pool.address, word
            ).call(block_identifier=ident):
                net[tick] = liquidity_net
                gross[tick] = liquidity_gross
        return net, gross


def deploy_pools(chain: Chain, rng: random.Random) -> Pools:
    tokens = sorted((deploy_token(chain) for _ in range(3)), key=lambda t: int(t.address, 16))
    v2_factory = chain.deploy(f"{V2_CORE}/UniswapV2Factory.json", chain.account)
    v3_factory, npm, router, lens = deploy_v3_stack(chain, tokens)
    env = Pools(chain, tokens, v2_factory, [], v3_factory, npm, router, lens, [], [500, 3000])
    for a, b in ((0, 1), (1, 2), (0, 2)):
        env.transact(v2_factory.functions.createPair(tokens[a].address, tokens[b].address))
        address = v2_factory.functions.getPair(tokens[a].address, tokens[b].address).call()
        pair = chain.at(f"{V2_CORE}/UniswapV2Pair.json", address)
        env.transact(tokens[a].functions.transfer(address, rng.randint(10**21, 10**23)))
        env.transact(tokens[b].functions.transfer(address, rng.randint(10**21, 10**23)))
        env.transact(pair.functions.mint(chain.account))
        env.v2_pairs.append(pair)
    pool_abi = artifact(f"{V3_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json")[0]
    for fee in env.v3_fees:
        env.transact(v3_factory.functions.createPool(tokens[0].address, tokens[1].address, fee))
        address = v3_factory.functions.getPool(tokens[0].address, tokens[1].address, fee).call()
        pool = chain.w3.eth.contract(address=address, abi=pool_abi)
        env.transact(pool.functions.initialize(get_sqrt_ratio_at_tick(rng.randint(-50, 50))))
        env.v3_pools.append(pool)
        for _ in range(3):
            env._track_positions([env.transact(fn) for fn in env.v3_mint(rng, len(env.v3_pools) - 1)])
    return env
