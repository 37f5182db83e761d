"""ArbExecutor.sol on anvil against the published Uniswap V2/V3 contracts.

The artifact is what the source compiles to; each cycle the agent sizes earns on chain exactly what
mevagent.amm predicts; one wei more of required profit and it reverts; only the owner can trade or
withdraw; only the pool being swapped can call back; a builder payment reaches the coinbase.
"""

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD

from mevagent.executor import build
from mevagent.executor.contract import (
    contract_hops,
    decode_profit,
    decode_revert,
    execute_calldata,
)
from mevagent.executor.deploy import main as deploy_main
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.rpc import HttpJsonRpc, RpcError, revert_data
from testbed.arb import ArbWorld, rpc_url
from testbed.evm import ANVIL, anvil_env, stop_anvil
from testbed.services import free_port

from .conftest import arb_world_fixtures

world, isolated = arb_world_fixtures("arb-contract")


def _call(world: ArbWorld, calldata: bytes, sender: str | None = None) -> tuple[int | None, str]:
    """(profit, "") if execute() succeeds as an eth_call from `sender` (the owner by default), else (None, reason)."""

    async def run() -> tuple[int | None, str]:
        async with aiohttp.ClientSession() as session:
            rpc = HttpJsonRpc(rpc_url(world.chain), session)
            call = {
                "from": sender or world.deployment.owner,
                "to": world.contract.address,
                "data": "0x" + calldata.hex(),
            }
            try:
                return decode_profit(await rpc.call("eth_call", [call, "latest"])), ""
            except RpcError as exc:
                return None, decode_revert(revert_data(exc))

    return asyncio.run(run())


def _send(world: ArbWorld, calldata: bytes, to: str | None = None, value: int = 0) -> dict:
    """Sign with the owner's key file and send; the receipt."""
    signer = Signer.from_file(world.key_file)
    w3 = world.chain.w3
    tx = {
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(signer.address),
        "to": w3.to_checksum_address(to or world.contract.address),
        "value": value,
        "data": calldata,
        "gas": 2_000_000,
        "gasPrice": 0,
    }
    raw, tx_hash = signer.sign_transaction(tx)
    w3.eth.send_raw_transaction(raw)
    return dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01))


def test_committed_artifact_is_what_the_source_compiles_to() -> None:
    solcjs = build.default_solcjs()
    if not solcjs.is_file():
        pytest.skip(f"{solcjs} is missing: run `npm ci` at the repo root")
    assert build.render(build.compile_artifact(solcjs)) == build.ARTIFACT.read_text()


@pytest.mark.parametrize("route", ["two_hop_v2", "three_hop_v2", "v2_then_v3", "v3_then_v2"])
def test_cycle_earns_exactly_the_predicted_profit_and_not_one_wei_more(isolated: ArbWorld, route: str) -> None:
    world = isolated
    opportunity = world.opportunity(getattr(world, route)())
    hops = contract_hops(opportunity, world.store())
    predicted = opportunity.gross_profit
    assert predicted > 0
    head = world.chain.w3.eth.block_number
    enough = execute_calldata(hops, opportunity.amount_in, predicted, 0, head + 1)
    too_much = execute_calldata(hops, opportunity.amount_in, predicted + 1, 0, head + 1)
    assert _call(world, enough) == (predicted, "")
    profit, reason = _call(world, too_much)
    assert profit is None and reason.startswith("InsufficientProfit(")

    before = world.balance(world.token_a)
    receipt = _send(world, enough)
    assert receipt["status"] == 1
    assert world.balance(world.token_a) - before == predicted  # to the wei
    (event,) = world.contract.events.Executed().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["amountIn"], event["args"]["profit"]) == (opportunity.amount_in, predicted)
    # The gap is closed by the trade itself: the same cycle no longer pays its required minimum.
    assert _call(world, enough)[0] is None


def test_only_the_owner_trades_and_withdraws(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2())
    calldata = execute_calldata(contract_hops(opportunity, world.store()), opportunity.amount_in, 1, 0, 10**9)
    stranger = world.chain.account
    assert _call(world, calldata, sender=stranger) == (None, "NotOwner()")
    withdraw = world.contract.functions.withdraw(world.token_a.address, stranger, 5)
    with pytest.raises(ContractCustomError):
        withdraw.call({"from": stranger})
    before = world.balance(world.token_a, stranger)
    receipt = _send(world, bytes.fromhex(withdraw._encode_transaction_data()[2:]))
    assert receipt["status"] == 1
    assert world.balance(world.token_a, stranger) - before == 5


def test_not_a_cycle_and_expired_calls_revert(isolated: ArbWorld) -> None:
    world = isolated
    opportunity = world.opportunity(world.two_hop_v2())
    hops = contract_hops(opportunity, world.store())
    head = world.chain.w3.eth.block_number
    assert _call(world, execute_calldata(hops[:1], opportunity.amount_in, 1, 0, head + 1)) == (None, "NotACycle()")
    # eth_call runs in a pending block at head + 1: a deadline at the head has passed.
    profit, reason = _call(world, execute_calldata(hops, opportunity.amount_in, 1, 0, head - 1))
    assert profit is None and reason.startswith("Expired(")


def test_only_the_pool_being_swapped_can_call_back(isolated: ArbWorld) -> None:
    world = isolated
    callback = world.contract.functions.uniswapV3SwapCallback(10**18, 0, b"")
    with pytest.raises((ContractCustomError, ContractLogicError)):
        callback.call({"from": world.chain.account})
    with pytest.raises((ContractCustomError, ContractLogicError)):
        callback.call({"from": world.v3_pool.address})  # the pool itself, but outside our swap


def test_builder_payment_reaches_the_coinbase(isolated: ArbWorld) -> None:
    world = isolated
    w3 = world.chain.w3
    coinbase = "0x00000000000000000000000000000000c0ffee00"
    w3.provider.make_request("anvil_setCoinbase", [coinbase])
    payment = 12345
    # The cycle token is not the wrapped native token: the payment comes from the contract's native balance.
    w3.provider.make_request("anvil_setBalance", [world.contract.address, hex(10**18)])
    opportunity = world.opportunity(world.two_hop_v2(), builder_payment=payment)
    calldata = execute_calldata(
        contract_hops(opportunity, world.store()), opportunity.amount_in, 1, payment, w3.eth.block_number + 1
    )
    before = w3.eth.get_balance(w3.to_checksum_address(coinbase))
    receipt = _send(world, calldata)
    assert receipt["status"] == 1
    assert w3.eth.get_balance(w3.to_checksum_address(coinbase)) - before == payment
    assert w3.eth.get_balance(world.contract.address) == 10**18 - payment


def test_deploy_command_prints_the_address_and_reads_the_key_from_its_file(
    world: ArbWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "deployer.key"
    address = write_new_key_file(key_file)
    world.chain.w3.provider.make_request("anvil_setBalance", [address, hex(10**19)])
    assert deploy_main(["--rpc-url", rpc_url(world.chain), "--key-file", str(key_file)]) == 0
    out = capsys.readouterr().out
    contract = out.strip().splitlines()[-1].removeprefix("contract: ")
    deployed = world.chain.w3.eth.contract(address=world.chain.w3.to_checksum_address(contract), abi=world.contract.abi)
    assert deployed.functions.owner().call() == address
    assert key_file.read_text().strip() not in out
    key_file.chmod(0o644)
    assert deploy_main(["--rpc-url", rpc_url(world.chain), "--key-file", str(key_file)]) == 1
    assert "chmod 600" in capsys.readouterr().err


def test_deploy_refuses_a_chain_without_transient_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Shanghai EVM (the devnet's real pair, some chains before their Cancun): the contract would deploy
    and every execute() would halt on TLOAD, so the deploy command refuses and sends nothing."""
    port = free_port()
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--hardfork", "shanghai", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=anvil_env(),
    )
    try:
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        for _ in range(200):
            if proc.poll() is None and w3.is_connected():
                break
            time.sleep(0.05)
        key_file = tmp_path / "deployer.key"
        address = write_new_key_file(key_file)
        w3.provider.make_request("anvil_setBalance", [address, hex(10**19)])
        assert deploy_main(["--rpc-url", f"http://127.0.0.1:{port}", "--key-file", str(key_file)]) == 1
        assert "EIP-1153" in capsys.readouterr().err
        assert w3.eth.get_transaction_count(w3.to_checksum_address(address)) == 0, "nothing was sent"
    finally:
        stop_anvil(proc)
