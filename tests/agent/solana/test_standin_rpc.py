"""The Solana simulator (solstandin) driven by the unmodified `solana` client (PyPI) over loopback.

solana-py parses every answer with solders' strict types, so a wrong response shape fails here. The
transactions are real: signed, sent over HTTP, executed by LiteSVM's System program.
"""

from __future__ import annotations

import asyncio
import base64

import base58
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import MemcmpOpts, TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    ProgramNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from mevagent.solana.layouts import TOKEN_PROGRAM
from testbed.solana.standin import RunningStandIn, start_standin
from testbed.solana.world import mint_data, put, spl_transfer, token_account_data

SOL = 1_000_000_000


def transfer_tx(payer: Keypair, to: Pubkey, lamports: int, blockhash) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], blockhash), [payer])


async def funded(client: AsyncClient, lamports: int = 10 * SOL) -> Keypair:
    kp = Keypair()
    await client.request_airdrop(kp.pubkey(), lamports)
    return kp


async def next_of(ws: SolanaWsClient, kind: type, timeout: float = 10.0):
    return (await first_of_each(ws, (kind,), timeout))[kind]


async def first_of_each(ws: SolanaWsClient, kinds: tuple[type, ...], timeout: float = 10.0) -> dict[type, object]:
    """The first notification of each kind, whatever order they come in; other kinds are skipped."""
    got: dict[type, object] = {}

    async def wait() -> None:
        while len(got) < len(kinds):
            message = await ws.recv()
            for kind in kinds:
                if isinstance(message, kind) and kind not in got:
                    got[kind] = message

    await asyncio.wait_for(wait(), timeout)
    return got


def test_node_identity_marks_a_simulator(standin: RunningStandIn) -> None:
    async def go():
        async with AsyncClient(standin.http) as client:
            version = (await client.get_version()).value
            assert "simulator" in version.solana_core
            assert standin.call("getHealth") == "ok"
            first = (await client.get_slot()).value
            latest = (await client.get_latest_blockhash()).value
            assert latest.last_valid_block_height > first
            await asyncio.sleep(1.0)
            assert (await client.get_slot()).value > first  # the ticker advances slots

    asyncio.run(go())


def test_transfer_lands_and_every_subscription_hears_it(standin: RunningStandIn) -> None:
    async def go():
        async with AsyncClient(standin.http) as client, SolanaWsClient(standin.ws) as ws:
            payer, dest = await funded(client), Keypair().pubkey()
            await ws.account_subscribe(pubkey=dest)
            await ws.logs_subscribe()
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            tx = transfer_tx(payer, dest, 1_234_567, blockhash)
            await ws.signature_subscribe(signature=tx.signatures[0])
            sig = (await client.send_transaction(tx)).value
            assert sig == tx.signatures[0]
            got = await first_of_each(ws, (AccountNotification, SignatureNotification, LogsNotification))
            assert got[AccountNotification].result.value.lamports == 1_234_567
            assert got[SignatureNotification].result.value.err is None
            logs = got[LogsNotification].result.value
            assert logs.signature == sig and any("invoke [1]" in line for line in logs.logs)
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status is not None and status.err is None
            assert (await client.get_balance(dest)).value == 1_234_567
            # A second send of the same transaction is refused, as a node refuses a processed signature.
            with pytest.raises(Exception, match=r"already been processed"):
                await client.send_transaction(tx)

    asyncio.run(go())


def test_overdraft_is_simulated_and_refused_by_preflight(standin: RunningStandIn) -> None:
    async def go():
        async with AsyncClient(standin.http) as client:
            payer = await funded(client, SOL)
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            tx = transfer_tx(payer, Keypair().pubkey(), 5 * SOL, blockhash)
            sim = (await client.simulate_transaction(tx)).value
            assert sim.err == TransactionErrorInstructionError(0, InstructionErrorCustom(1))
            assert any("insufficient lamports" in line for line in sim.logs)
            with pytest.raises(Exception, match="simulation failed"):
                await client.send_transaction(tx)
            # Skipping preflight lands the failed transaction: it pays its fee, moves nothing.
            sig = (await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))).value
            status = (await client.get_signature_statuses([sig])).value[0]
            assert status.err == TransactionErrorInstructionError(0, InstructionErrorCustom(1))
            assert (await client.get_balance(payer.pubkey())).value == SOL - 5000

    asyncio.run(go())


def test_program_accounts_filters_and_program_subscription(standin: RunningStandIn) -> None:
    program = Keypair().pubkey()
    keys = [Keypair().pubkey() for _ in range(3)]
    datas = [b"\x01" * 8 + b"pool-a", b"\x02" * 8 + b"pool-b", b"\x01" * 8 + b"other!!"]

    async def go():
        async with AsyncClient(standin.http) as client, SolanaWsClient(standin.ws) as ws:
            await ws.program_subscribe(program_id=program, filters=[14])
            for key, data in zip(keys, datas, strict=True):
                spec = {"lamports": 10**7, "data": [base64.b64encode(data).decode(), "base64"], "owner": str(program)}
                standin.call("standin_setAccount", str(key), spec)
            note = await next_of(ws, ProgramNotification)
            assert note.result.value.pubkey == keys[0]  # 14 bytes: pool-a and pool-b, not the 15-byte one
            second = await next_of(ws, ProgramNotification)
            assert second.result.value.pubkey == keys[1]
            everything = (await client.get_program_accounts(program)).value
            assert {a.pubkey for a in everything} == set(keys)
            sized = (await client.get_program_accounts(program, filters=[14])).value
            assert {a.pubkey for a in sized} == set(keys[:2])
            prefix = MemcmpOpts(offset=0, bytes=base58.b58encode(b"\x01" * 8).decode())
            both = (await client.get_program_accounts(program, filters=[14, prefix])).value
            assert [a.pubkey for a in both] == [keys[0]]
            many = (await client.get_multiple_accounts([keys[2], Keypair().pubkey()])).value
            assert many[0].data == datas[2] and many[1] is None

    asyncio.run(go())


def test_slot_subscription_and_cheats(standin: RunningStandIn) -> None:
    async def go():
        async with AsyncClient(standin.http) as client, SolanaWsClient(standin.ws) as ws:
            await ws.slot_subscribe()
            note = await next_of(ws, SlotNotification)
            assert note.result.parent == note.result.slot - 1
            paused_at = standin.call("standin_pauseTicker")
            await asyncio.sleep(0.9)
            assert (await client.get_slot()).value == paused_at
            standin.call("standin_warpSlot", paused_at + 1000)
            assert (await client.get_slot()).value == paused_at + 1000
            old = (await client.get_latest_blockhash()).value.blockhash
            standin.call("standin_expireBlockhash")
            assert (await client.get_latest_blockhash()).value.blockhash != old
            assert standin.call("isBlockhashValid", str(old))["value"] is False
            payer = await funded(client)
            with pytest.raises(Exception, match="BlockhashNotFound"):
                await client.send_transaction(transfer_tx(payer, Keypair().pubkey(), 1, old))
            standin.call("standin_resumeTicker")

    asyncio.run(go())


def test_cheats_are_off_unless_asked_for() -> None:
    plain = start_standin(cheats=False)
    try:
        with pytest.raises(RuntimeError, match="Method not found"):
            plain.call("standin_setAccount", str(Keypair().pubkey()), {"lamports": 1})
        with pytest.raises(RuntimeError, match="Method not found"):
            plain.call("requestAirdrop", str(Keypair().pubkey()), SOL)
    finally:
        plain.stop()


def test_get_block_parses_in_the_unmodified_client(standin: RunningStandIn) -> None:
    """getBlock (base64, full): the slot's landed transactions with their fee, lamports and token balances
    before and after, as the client's strict types read them; what the agent's sandwich classifier reads."""

    async def go():
        async with AsyncClient(standin.http) as client:
            payer = await funded(client)
            mint, source, dest = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
            put(standin, mint, mint_data(decimals=6), TOKEN_PROGRAM)
            put(standin, source, token_account_data(mint, payer.pubkey(), 5_000_000), TOKEN_PROGRAM)
            put(standin, dest, token_account_data(mint, Keypair().pubkey(), 0), TOKEN_PROGRAM)
            blockhash = (await client.get_latest_blockhash()).value.blockhash
            ix = spl_transfer(source, dest, payer.pubkey(), 1_250_000)
            tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], blockhash), [payer])
            sig = (await client.send_transaction(tx, opts=TxOpts(skip_preflight=True))).value
            slot = (await client.get_signature_statuses([sig])).value[0].slot
            block = await client.get_block(slot, "base64", max_supported_transaction_version=0, commitment=Confirmed)
            block = block.value
            (entry,) = [t for t in block.transactions if t.transaction.signatures[0] == sig]
            meta = entry.meta
            keys = list(entry.transaction.message.account_keys)
            assert meta.err is None and meta.fee == 5_000 and block.parent_slot == slot - 1
            assert meta.pre_balances[0] - meta.post_balances[0] == 5_000  # the payer paid the fee
            pre = {keys[b.account_index]: b.ui_token_amount for b in meta.pre_token_balances}
            post = {keys[b.account_index]: b.ui_token_amount for b in meta.post_token_balances}
            assert (pre[source].amount, pre[dest].amount) == ("5000000", "0")
            assert (post[source].amount, post[dest].amount) == ("3750000", "1250000")
            assert post[dest].decimals == 6 and post[dest].ui_amount_string == "1.25"
            raw = standin.call
            with pytest.raises(RuntimeError, match="-32015"):  # a v0 transaction needs the client to say it reads v0
                raw("getBlock", slot, {"encoding": "base64"})
            with pytest.raises(RuntimeError, match="-32004"):
                raw("getBlock", slot + 10_000, {"encoding": "base64", "maxSupportedTransactionVersion": 0})

    asyncio.run(go())
