"""Deploy the ArbExecutor contract to one chain, owned by the key in a key file.

    python -m mevagent.executor.deploy --rpc-url http://127.0.0.1:8545 --key-file /etc/mevagent/eth.key \\
        [--wrapped-native 0xC02a...]

Prints the contract address to put in the chain's execution config (`contract:`). The key is read
from its 0600 file, never from the command line. Deploying sends an ordinary public transaction:
the contract holds no secret and can only be called by its owner.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from mevagent.executor.contract import OWNER_SELECTOR, artifact, creation_code
from mevagent.executor.keys import KeyFileError, Signer
from mevagent.executor.rpc import HttpJsonRpc, JsonRpc, RpcError

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Deployment:
    address: str
    owner: str
    tx_hash: str
    block: int
    gas_used: int


# Init code that runs PUSH0 TLOAD POP STOP: an EVM without Cancun (EIP-1153 transient storage, which the
# contract's V3 callback guard uses) halts on TLOAD, so the eth_call fails instead of returning "0x".
TLOAD_PROBE = "0x5f5c5000"


async def check_cancun(rpc: JsonRpc) -> None:
    """Refuse a chain whose EVM lacks transient storage: the contract would deploy there (its creation
    code never touches it) and then every execute() would halt, a revert without a reason."""
    try:
        await rpc.call("eth_call", [{"data": TLOAD_PROBE}, "latest"])
    except RpcError as exc:
        raise DeployError(
            f"the chain's EVM has no transient storage (EIP-1153, Cancun): TLOAD failed ({exc}); "
            "the ArbExecutor needs it and would revert on every execution there"
        ) from None


async def deploy_contract(
    rpc: JsonRpc, signer: Signer, wrapped_native: str = ZERO_ADDRESS, *, timeout_s: float = 120.0
) -> Deployment:
    """Sign and send the creation transaction, wait for it, and check the code and owner it left behind."""
    await check_cancun(rpc)
    data = creation_code(wrapped_native)
    chain_id = int(await rpc.call("eth_chainId", []), 16)
    nonce = int(await rpc.call("eth_getTransactionCount", [signer.address, "pending"]), 16)
    gas_price = int(await rpc.call("eth_gasPrice", []), 16)
    # The estimate carries the price the transaction pays: a client that runs it as a transaction
    # (EthereumJS) refuses a zero price as below the base fee.
    call = {"from": signer.address, "data": "0x" + data.hex(), "gasPrice": hex(gas_price)}
    estimate = int(await rpc.call("eth_estimateGas", [call]), 16)
    # A legacy transaction deploys the same on every chain of the fleet, 1559 or not; 20% gas headroom.
    tx = {
        "chainId": chain_id,
        "nonce": nonce,
        "gas": estimate * 6 // 5,
        "gasPrice": gas_price,
        "value": 0,
        "data": data,
    }
    raw, tx_hash = signer.sign_transaction(tx)
    await rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
    async with asyncio.timeout(timeout_s):
        while not (receipt := await rpc.call("eth_getTransactionReceipt", [tx_hash])):
            await asyncio.sleep(0.2)
    if int(receipt["status"], 16) != 1:
        raise DeployError(f"deployment transaction {tx_hash} reverted")
    address = receipt["contractAddress"].lower()
    code = await rpc.call("eth_getCode", [address, "latest"])
    # Immutables (owner, wrapped native) are filled in at deployment: compare the length only.
    if len(code) != len(artifact()["deployedBytecode"]):
        raise DeployError(f"{address} does not hold the ArbExecutor runtime code")
    owner = await rpc.call("eth_call", [{"to": address, "data": "0x" + OWNER_SELECTOR.hex()}, "latest"])
    if ("0x" + owner[-40:]).lower() != signer.address.lower():
        raise DeployError(f"{address} is owned by 0x{owner[-40:]}, not by {signer.address}")
    return Deployment(address, signer.address, tx_hash, int(receipt["blockNumber"], 16), int(receipt["gasUsed"], 16))


async def _main(args: argparse.Namespace) -> Deployment:
    signer = Signer.from_file(args.key_file)
    async with aiohttp.ClientSession() as session:
        return await deploy_contract(HttpJsonRpc(args.rpc_url, session), signer, args.wrapped_native)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy the ArbExecutor contract to one chain.")
    parser.add_argument("--rpc-url", required=True, help="the chain's node, e.g. http://127.0.0.1:8545")
    parser.add_argument("--key-file", required=True, type=Path, help="0600 file holding the owner's private key")
    parser.add_argument(
        "--wrapped-native",
        default=ZERO_ADDRESS,
        help="the chain's wrapped native token (WETH, WBNB...): builder payments are unwrapped from its cycles",
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", args.wrapped_native):
        parser.error("--wrapped-native: must be a 0x-prefixed 20-byte hex address")
    try:
        deployment = asyncio.run(_main(args))
    except (KeyFileError, DeployError, RpcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"error: {args.rpc_url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"ArbExecutor deployed at {deployment.address} (owner {deployment.owner}, block {deployment.block}, ")
    print(f"  gas {deployment.gas_used}, tx {deployment.tx_hash})")
    print(f"contract: {deployment.address}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
