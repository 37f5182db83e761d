"""Talking to a real EVM node: anvil from npm, contracts from their published npm artifacts."""

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from mevagent.amm.v3.pool import V3PoolState

from .services import free_port

REPO = Path(__file__).resolve().parents[1]
# Local stand-ins for published contracts, compiled with the repo's solc-js where a world needs them.
CONTRACTS = Path(__file__).resolve().parent / "contracts"
NODE_MODULES = REPO / "node_modules"
ANVIL = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"

# Far above anything a test swap needs: a V3 swap that runs out of liquidity walks every bitmap
# word down to MIN_TICK, thousands of steps on a tick-spacing-1 pool.
TX_GAS = 500_000_000
DEADLINE = 2**64


@cache
def _anvil_home() -> Path:
    """A HOME of this process's anvils alone.

    anvil pages old states out to $HOME/.foundry/anvil/tmp/anvil-state-* and removes them only when it
    exits cleanly: every anvil a test kills (or that is killed with its test) leaves gigabytes behind in
    the real HOME, enough to fill the disk over a few suite runs. Here they go with the process.
    """
    home = Path(tempfile.mkdtemp(prefix="anvil-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def anvil_env() -> dict[str, str]:
    """The environment to start anvil with: ours, with HOME set to this process's anvil HOME."""
    return {**os.environ, "HOME": str(_anvil_home())}


def start_anvil(chain_id: int | None = None) -> tuple[subprocess.Popen[bytes], Web3]:
    """An anvil on loopback (chain id 31337 unless `chain_id`: several chains side by side)."""
    extra = ["--chain-id", str(chain_id)] if chain_id is not None else []
    # The port can be taken between choosing it and anvil binding it: try a few.
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                str(ANVIL),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--accounts",
                "2",
                "--base-fee",
                "0",
                "--gas-price",
                "0",
                "--gas-limit",
                str(2 * TX_GAS),
                "--quiet",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=anvil_env(),
        )
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 60}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                w3.eth.chain_id  # noqa: B018 - the first answered request means the node is up
                return proc, w3
            except OSError:
                time.sleep(0.05)
        stop_anvil(proc)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    raise RuntimeError(f"anvil did not answer eth_chainId: {stderr[-2000:]}")


def stop_anvil(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@cache
def artifact(relative: str) -> tuple[list[dict[str, Any]], str]:
    """(abi, creation bytecode) of a contract artifact under node_modules.

    Handles both layouts: waffle builds (v2-core: evm.bytecode.object) and hardhat (v3: bytecode).
    """
    data = json.loads((NODE_MODULES / relative).read_text())
    bytecode = data.get("bytecode")
    if not isinstance(bytecode, str):
        bytecode = data["evm"]["bytecode"]["object"]
    if not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return data["abi"], bytecode


class Chain:
    """One funded account on the node, sending transactions with fixed gas and no fee."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.account = w3.eth.accounts[0]

    def deploy(self, relative_artifact: str, *args: Any) -> Contract:
        abi, bytecode = artifact(relative_artifact)
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = self.transact(factory.constructor(*args))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    def at(self, relative_artifact: str, address: str) -> Contract:
        return self.w3.eth.contract(address=address, abi=artifact(relative_artifact)[0])

    def transact(
        self, fn: Any, *, expect_success: bool = True, sender: str | None = None, gas: int = TX_GAS
    ) -> TxReceipt:
        """Send from our account (or `sender`, another unlocked one) and wait for the receipt."""
        # Fixed gas and a zero gas price: no eth_estimateGas or fee lookups per transaction, and a
        # transaction that reverts is mined with status 0 instead of failing to estimate.
        tx_hash = fn.transact({"from": sender or self.account, "gas": gas, "gasPrice": 0})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        if expect_success and receipt["status"] != 1:
            raise AssertionError(f"transaction from {sender or self.account} reverted: {fn}")
        return receipt

    def revert_reason(self, fn: ContractFunction) -> str | None:
        """None if `fn` succeeds as an eth_call from our account, else the node's revert message."""
        try:
            fn.call({"from": self.account, "gas": TX_GAS})
        except ContractLogicError as exc:
            return str(exc)
        return None

    def snapshot(self) -> str:
        return str(self.w3.provider.make_request("evm_snapshot", [])["result"])

    def revert(self, snapshot_id: str) -> None:
        if not self.w3.provider.make_request("evm_revert", [snapshot_id])["result"]:
            raise RuntimeError(f"evm_revert({snapshot_id}) failed")


V2_CORE = "@uniswap/v2-core/build"


def deploy_token(chain: Chain) -> Contract:
    """v2-core's test ERC20, with 2^200 minted to our account."""
    return chain.deploy(f"{V2_CORE}/ERC20.json", 1 << 200)


def deploy_v2_pair(chain: Chain, token_a: Contract, token_b: Contract) -> Contract:
    """A UniswapV2Pair made by its own factory, so the same tokens can have several pairs."""
    factory = chain.deploy(f"{V2_CORE}/UniswapV2Factory.json", chain.account)
    chain.transact(factory.functions.createPair(token_a.address, token_b.address))
    return chain.at(f"{V2_CORE}/UniswapV2Pair.json", factory.functions.getPair(token_a.address, token_b.address).call())


def set_v2_reserves(
    chain: Chain, pair: Contract, token0: Contract, token1: Contract, reserve0: int, reserve1: int
) -> None:
    """Fund an empty pair and sync(): any reserves at all, without the LP-minting minimum."""
    chain.transact(token0.functions.transfer(pair.address, reserve0))
    chain.transact(token1.functions.transfer(pair.address, reserve1))
    chain.transact(pair.functions.sync())
    assert pair.functions.getReserves().call()[:2] == [reserve0, reserve1]


def seeded_v2_pair(chain: Chain, token_a: Contract, amount_a: int, token_b: Contract, amount_b: int) -> Contract:
    """A new pair (deploy_v2_pair) holding `amount_a` of `token_a` and `amount_b` of `token_b` (set_v2_reserves)."""
    pair = deploy_v2_pair(chain, token_a, token_b)
    a_first = pair.functions.token0().call() == token_a.address
    (t0, r0), (t1, r1) = (
        ((token_a, amount_a), (token_b, amount_b)) if a_first else ((token_b, amount_b), (token_a, amount_a))
    )
    set_v2_reserves(chain, pair, t0, t1, r0, r1)
    return pair


# Periphery wants a WETH9 and a token descriptor; neither is touched by ERC20-to-ERC20 swaps.
UNUSED_ADDRESS = "0x000000000000000000000000000000000000dEaD"
V3_CORE = "@uniswap/v3-core/artifacts/contracts"
V3_PERIPHERY = "@uniswap/v3-periphery/artifacts/contracts"
MAX_UINT256 = 2**256 - 1


def deploy_v3_stack(chain: Chain, tokens: Sequence[Contract]) -> tuple[Contract, Contract, Contract, Contract]:
    """The published V3 factory, position manager, swap router and TickLens, with `tokens` approved to
    the manager and the router: (factory, npm, router, lens)."""
    factory = chain.deploy(f"{V3_CORE}/UniswapV3Factory.sol/UniswapV3Factory.json")
    npm = chain.deploy(
        f"{V3_PERIPHERY}/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
        factory.address,
        UNUSED_ADDRESS,
        UNUSED_ADDRESS,
    )
    router = chain.deploy(f"{V3_PERIPHERY}/SwapRouter.sol/SwapRouter.json", factory.address, UNUSED_ADDRESS)
    lens = chain.deploy(f"{V3_PERIPHERY}/lens/TickLens.sol/TickLens.json")
    for token in tokens:
        for spender in (npm, router):
            chain.transact(token.functions.approve(spender.address, MAX_UINT256))
    return factory, npm, router, lens


# @uniswap/swap-router-contracts@1.3.1, unpacked by deploy/bootstrap.sh (its npm dependencies pull in hardhat).
SWAP_ROUTER02 = ".cache/swap-router-contracts-1.3.1/artifacts/contracts/SwapRouter02.sol/SwapRouter02.json"


def deploy_swap_router02(chain: Chain, factory_v2: str, factory_v3: str, weth: str) -> Contract:
    """The published SwapRouter02 on a V2 factory and a V3 factory (it finds pairs and pools by their init code
    hashes: those of the published v2-core and v3-core builds); no position manager (swaps never call it)."""
    if not (NODE_MODULES / SWAP_ROUTER02).is_file():
        raise RuntimeError("the SwapRouter02 artifact is missing: run deploy/bootstrap.sh (it unpacks it)")
    return chain.deploy(SWAP_ROUTER02, factory_v2, factory_v3, UNUSED_ADDRESS, weth)


def read_v3_pool(lens: Contract, pool: Contract, lowest_tick: int, highest_tick: int) -> V3PoolState:
    """The pool's state as the chain holds it (slot0, liquidity, every initialized tick via TickLens over
    the bitmap words that cover [lowest_tick, highest_tick])."""
    sqrt_price_x96, tick, *_ = pool.functions.slot0().call()
    spacing = pool.functions.tickSpacing().call()
    ticks: dict[int, int] = {}
    for word in range((lowest_tick // spacing) >> 8, ((highest_tick // spacing) >> 8) + 1):
        for tick_index, liquidity_net, _gross in lens.functions.getPopulatedTicksInWord(pool.address, word).call():
            ticks[tick_index] = liquidity_net
    return V3PoolState.from_ticks(
        sqrt_price_x96=sqrt_price_x96,
        tick=tick,
        liquidity=pool.functions.liquidity().call(),
        fee=pool.functions.fee().call(),
        tick_spacing=spacing,
        ticks=ticks,
    )
