"""A Solana world on the simulator, written with its cheat methods: SPL mints, token accounts, Raydium CPMM
pool and config accounts in the published layouts (owned by the CPMM program id), and our funded wallet.

No DEX program can run here (no Raydium binary can be had), so the test venue `settle_by_transfers`
stands in for the swap instruction: the exact quoted amounts move as two real SPL Token transfers (ours
signed by us, the pool's signed by the vault authority the test holds). Everything else the agent sends
(compute budget, tip, the anti-front-running account, the bundle) is its own code, executed by LiteSVM.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import TransactionMetadata

from mevagent.solana.clmm import POOL_SIZE as CLMM_POOL_SIZE
from mevagent.solana.clmm import RAYDIUM_CLMM, ClmmPool
from mevagent.solana.clmm import array_start as clmm_array_start
from mevagent.solana.clmm import sqrt_price_at_tick as clmm_sqrt_price_at_tick
from mevagent.solana.clmm import tick_array_address as clmm_tick_array_address
from mevagent.solana.cycles import Leg
from mevagent.solana.dlmm import BIN_ARRAY_DISCRIMINATOR as DLMM_BIN_ARRAY_DISCRIMINATOR
from mevagent.solana.dlmm import BIN_ARRAY_SIZE as DLMM_BIN_ARRAY_SIZE
from mevagent.solana.dlmm import BIN_SIZE as DLMM_BIN_SIZE
from mevagent.solana.dlmm import LB_PAIR_DISCRIMINATOR as DLMM_LB_PAIR_DISCRIMINATOR
from mevagent.solana.dlmm import LB_PAIR_SIZE as DLMM_LB_PAIR_SIZE
from mevagent.solana.dlmm import METEORA_DLMM, DlmmPool
from mevagent.solana.dlmm import bin_array_address as dlmm_bin_array_address
from mevagent.solana.layouts import (
    CPMM_CONFIG_SIZE,
    CPMM_POOL_SIZE,
    RAYDIUM_CPMM,
    TOKEN_2022,
    TOKEN_PROGRAM,
    AccountData,
)
from mevagent.solana.raydium import CpmmPool
from mevagent.solana.whirlpool import (
    FIXED_TICK_ARRAY_DISCRIMINATOR,
    TICK_ARRAY_SIZE,
    TICK_SIZE,
    WHIRLPOOL_DISCRIMINATOR,
    WHIRLPOOL_PROGRAM,
    WHIRLPOOL_SIZE,
    WhirlpoolPool,
    tick_array_address,
    tick_array_start,
    tick_index_to_sqrt_price,
)

from .standin import RunningStandIn

SOL = 1_000_000_000
RENT = 10_000_000  # lamports on every account we write: above rent exemption for these sizes


def spl_owned(data: bytes) -> AccountData:
    """An SPL Token account (a mint or a token account) as the node reports it: its data, owned by SPL Token."""
    return AccountData(data, TOKEN_PROGRAM)


def t22_owned(data: bytes) -> AccountData:
    """A Token-2022 account (a mint or a token account), owned by the Token-2022 program."""
    return AccountData(data, TOKEN_2022)


def svm_account(svm: LiteSVM, key: Pubkey) -> AccountData | None:
    """An account in LiteSVM as the node would report it (None: it does not exist)."""
    account = svm.get_account(key)
    return None if account is None or not account.lamports else AccountData(bytes(account.data), account.owner)


def mint_data(decimals: int = 9, supply: int = 10**18) -> bytes:
    return struct.pack("<I32sQBBI32s", 0, bytes(32), supply, decimals, 1, 0, bytes(32))


def token_account_data(mint: Pubkey, owner: Pubkey, amount: int) -> bytes:
    body = bytes(mint) + bytes(owner) + struct.pack("<Q", amount)
    body += struct.pack("<I32s", 0, bytes(32)) + bytes([1]) + struct.pack("<IQ", 0, 0) + struct.pack("<Q", 0)
    body += struct.pack("<I32s", 0, bytes(32))
    assert len(body) == 165
    return body


def cpmm_pool_data(config: Pubkey, vault_a: Pubkey, vault_b: Pubkey, mint_a: Pubkey, mint_b: Pubkey) -> bytes:
    data = bytearray(CPMM_POOL_SIZE)
    data[0:8] = bytes([247, 237, 227, 245, 215, 195, 222, 70])  # anchor discriminator of PoolState
    for offset, key in ((8, config), (72, vault_a), (104, vault_b), (168, mint_a), (200, mint_b)):
        data[offset : offset + 32] = bytes(key)
    for offset in (232, 264):
        data[offset : offset + 32] = bytes(TOKEN_PROGRAM)
    data[331], data[332] = 9, 9
    return bytes(data)


def cpmm_config_data(trade_fee_rate: int) -> bytes:
    data = bytearray(CPMM_CONFIG_SIZE)
    struct.pack_into("<QQQ", data, 12, trade_fee_rate, 120_000, 40_000)
    return bytes(data)


def whirlpool_data(
    mint_a: Pubkey,
    vault_a: Pubkey,
    mint_b: Pubkey,
    vault_b: Pubkey,
    tick: int,
    liquidity: int,
    tick_spacing: int = 64,
    fee_rate: int = 3_000,
    protocol_fee_rate: int = 300,
) -> bytes:
    """A Whirlpool account at the published offsets (proven against Orca's codecs in test_whirlpool_oracle)."""
    data = bytearray(WHIRLPOOL_SIZE)
    data[0:8] = WHIRLPOOL_DISCRIMINATOR
    struct.pack_into("<HHHH", data, 41, tick_spacing, tick_spacing, fee_rate, protocol_fee_rate)
    data[49:65] = liquidity.to_bytes(16, "little")
    data[65:81] = tick_index_to_sqrt_price(tick).to_bytes(16, "little")
    struct.pack_into("<i", data, 81, tick)
    for offset, key in ((101, mint_a), (133, vault_a), (181, mint_b), (213, vault_b)):
        data[offset : offset + 32] = bytes(key)
    return bytes(data)


def tick_array_data(whirlpool: Pubkey, start: int, tick_spacing: int, nets: Mapping[int, int]) -> bytes:
    """A fixed TickArray: `nets` maps initialized tick indexes (in this array) to their liquidity_net."""
    data = bytearray(8 + 4 + TICK_ARRAY_SIZE * TICK_SIZE + 32)
    data[0:8] = FIXED_TICK_ARRAY_DISCRIMINATOR
    struct.pack_into("<i", data, 8, start)
    for tick, net in nets.items():
        offset = 12 + (tick - start) // tick_spacing * TICK_SIZE
        data[offset] = 1
        data[offset + 1 : offset + 17] = net.to_bytes(16, "little", signed=True)
        data[offset + 17 : offset + 33] = abs(net).to_bytes(16, "little")
    data[-32:] = bytes(whirlpool)
    return bytes(data)


def clmm_pool_data(config: Pubkey, mint_a: Pubkey, mint_b: Pubkey, tick: int, liquidity: int, spacing: int) -> bytes:
    """A Raydium CLMM PoolState at the published offsets (proven against the SDK's layout in
    test_clmm_oracle), with the bit of the tick array holding `tick` set in its bitmap."""
    data = bytearray(CLMM_POOL_SIZE)
    for offset, key in ((9, config), (73, mint_a), (105, mint_b)):
        data[offset : offset + 32] = bytes(key)
    struct.pack_into("<H", data, 235, spacing)
    data[237:253] = liquidity.to_bytes(16, "little")
    data[253:269] = clmm_sqrt_price_at_tick(tick).to_bytes(16, "little")
    struct.pack_into("<i", data, 269, tick)
    bit = clmm_array_start(tick, spacing) // (60 * spacing) + 512
    data[904:1032] = (1 << bit).to_bytes(128, "little")
    return bytes(data)


def clmm_config_data(trade_fee_rate: int) -> bytes:
    data = bytearray(117)
    struct.pack_into("<II", data, 43, 120_000, trade_fee_rate)
    return bytes(data)


def clmm_tick_array_data(pool: Pubkey, start: int, spacing: int, nets: Mapping[int, int]) -> bytes:
    data = bytearray(10240)
    data[8:40] = bytes(pool)
    struct.pack_into("<i", data, 40, start)
    for i in range(60):
        offset = 44 + i * 168
        tick = start + i * spacing
        struct.pack_into("<i", data, offset, tick)
        if tick in nets:
            data[offset + 4 : offset + 20] = nets[tick].to_bytes(16, "little", signed=True)
            data[offset + 20 : offset + 36] = abs(nets[tick]).to_bytes(16, "little")
    return bytes(data)


def dlmm_lb_pair_data(f: dict) -> bytes:
    """A DLMM LbPair at the published offsets (proven against the SDK's Anchor coder in test_dlmm_oracle)."""
    data = bytearray(DLMM_LB_PAIR_SIZE)
    data[0:8] = DLMM_LB_PAIR_DISCRIMINATOR
    struct.pack_into(
        "<HHHHIIiiHBBB",
        data,
        8,
        f["base_factor"],
        f["filter_period"],
        f["decay_period"],
        f["reduction_factor"],
        f["variable_fee_control"],
        f["max_va"],
        -443_636,
        443_636,
        f["protocol_share"],
        f["power"],
        f["function_type"],
        f["mode"],
    )
    struct.pack_into("<IIi", data, 40, f["va"], f["vr"], f["ir"])
    struct.pack_into("<q", data, 56, f["last_update"])
    struct.pack_into("<iHB", data, 76, f["active_id"], f["bin_step"], 0)
    for offset, name in ((88, "mint_x"), (120, "mint_y"), (152, "reserve_x"), (184, "reserve_y")):
        data[offset : offset + 32] = bytes(f[name])
    data[584:712] = f["bitmap"].to_bytes(128, "little")
    return bytes(data)


def dlmm_bin_array_data(pair: Pubkey, index: int, bins: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(DLMM_BIN_ARRAY_SIZE)
    data[0:8] = DLMM_BIN_ARRAY_DISCRIMINATOR
    struct.pack_into("<qB", data, 8, index, 1)
    data[24:56] = bytes(pair)
    for i, (x, y, price) in enumerate(bins):
        o = 56 + i * DLMM_BIN_SIZE
        struct.pack_into("<QQ", data, o, x, y)
        data[o + 16 : o + 32] = price.to_bytes(16, "little")
    return bytes(data)


def dlmm_accounts(
    pair: Pubkey, mint_x: Pubkey, reserve_x: Pubkey, mint_y: Pubkey, reserve_y: Pubkey, active_id: int,
    bin_step: int = 10, per_bin: int = 5 * SOL,
) -> list[tuple[Pubkey, bytes]]:  # fmt: skip
    """A Meteora DLMM pair's accounts (the pair, its one bin array): static fee only (0.1%), bins priced
    (1 + step/1e4)^id, `per_bin` of X in the 35 bins from the active one up, 140 times that of Y in the 35
    below."""
    index = active_id // 70
    fields = {
        "base_factor": 10_000,
        "filter_period": 30,
        "decay_period": 600,
        "reduction_factor": 5_000,
        "variable_fee_control": 0,
        "max_va": 350_000,
        "protocol_share": 500,
        "power": 0,
        "function_type": 1,
        "mode": 0,
        "va": 0,
        "vr": 0,
        "ir": active_id,
        "last_update": 0,
        "active_id": active_id,
        "bin_step": bin_step,
        "mint_x": mint_x,
        "mint_y": mint_y,
        "reserve_x": reserve_x,
        "reserve_y": reserve_y,
        "bitmap": 1 << (index + 512),
    }
    bins = []
    for i in range(70):
        bid = index * 70 + i
        price = int((1 + bin_step / 10_000) ** bid * 2**64)
        x = per_bin if active_id <= bid < active_id + 35 else 0
        y = per_bin * 140 if active_id - 35 < bid <= active_id else 0
        bins.append((x, y, price))
    return [
        (pair, dlmm_lb_pair_data(fields)),
        (dlmm_bin_array_address(pair, index), dlmm_bin_array_data(pair, index, bins)),
    ]


def put(standin: RunningStandIn, key: Pubkey, data: bytes, owner: Pubkey, lamports: int = RENT) -> None:
    spec = {"lamports": lamports, "data": [base64.b64encode(data).decode(), "base64"], "owner": str(owner)}
    standin.call("standin_setAccount", str(key), spec)


@dataclass
class PoolAccounts:
    address: Pubkey
    vault_a: Pubkey
    vault_b: Pubkey
    mint_a: Pubkey
    mint_b: Pubkey


@dataclass
class World:
    standin: RunningStandIn
    payer: Keypair
    authority: Keypair  # owns every pool vault: the settlement venue's co-signer
    base: Pubkey
    other: Pubkey
    config: Pubkey
    ours: dict[Pubkey, Pubkey] = field(default_factory=dict)  # mint -> our token account
    pools: list[PoolAccounts] = field(default_factory=list)
    whirlpools: list[PoolAccounts] = field(default_factory=list)
    clmms: list[PoolAccounts] = field(default_factory=list)
    dlmms: list[PoolAccounts] = field(default_factory=list)

    def balance(self, account: Pubkey) -> int:
        info = self.standin.call("getAccountInfo", str(account), {"encoding": "base64"})["value"]
        return struct.unpack_from("<Q", base64.b64decode(info["data"][0]), 64)[0]

    def set_vault(self, vault: Pubkey, mint: Pubkey, amount: int) -> None:
        put(self.standin, vault, token_account_data(mint, self.authority.pubkey(), amount), TOKEN_PROGRAM)

    def add_pool(self, reserve_base: int, reserve_other: int) -> PoolAccounts:
        pool, va, vb = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
        self.set_vault(va, self.base, reserve_base)
        self.set_vault(vb, self.other, reserve_other)
        put(self.standin, pool, cpmm_pool_data(self.config, va, vb, self.base, self.other), RAYDIUM_CPMM)
        accounts = PoolAccounts(pool, va, vb, self.base, self.other)
        self.pools.append(accounts)
        return accounts

    def add_whirlpool(
        self, tick: int, liquidity: int, inner: int, width: int = 2, reserve: int = 10_000 * SOL
    ) -> PoolAccounts:
        """A Whirlpool (token A = base) at `tick`: `liquidity` over a range past its five tick arrays plus
        `inner` over +-`width` spacings around the tick, whose two initialized ticks sit in the current array
        (the other arrays do not exist as accounts). Both vaults hold `reserve`."""
        spacing = 64
        pool, va, vb = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
        self.set_vault(va, self.base, reserve)
        self.set_vault(vb, self.other, reserve)
        put(
            self.standin,
            pool,
            whirlpool_data(self.base, va, self.other, vb, tick, liquidity + inner),
            WHIRLPOOL_PROGRAM,
        )
        lower, upper = (tick // spacing - width) * spacing, (tick // spacing + width) * spacing
        start = tick_array_start(tick, spacing)
        assert tick_array_start(lower, spacing) == start == tick_array_start(upper, spacing)
        array = tick_array_data(pool, start, spacing, {lower: inner, upper: -inner})
        put(self.standin, tick_array_address(pool, start), array, WHIRLPOOL_PROGRAM)
        accounts = PoolAccounts(pool, va, vb, self.base, self.other)
        self.whirlpools.append(accounts)
        return accounts

    def add_clmm(self, tick: int, liquidity: int, spacing: int = 10, reserve: int = 10_000 * SOL) -> PoolAccounts:
        """A Raydium CLMM pool (token A = base) at `tick`, `liquidity` over the whole tick array holding it
        (its only initialized array), its AmmConfig (0.25%) and both vaults holding `reserve`."""
        pool, config, va, vb = (Keypair().pubkey() for _ in range(4))
        self.set_vault(va, self.base, reserve)
        self.set_vault(vb, self.other, reserve)
        start = clmm_array_start(tick, spacing)
        data = bytearray(clmm_pool_data(config, self.base, self.other, tick, liquidity, spacing))
        data[137:169], data[169:201] = bytes(va), bytes(vb)
        put(self.standin, pool, bytes(data), RAYDIUM_CLMM)
        put(self.standin, config, clmm_config_data(2_500), RAYDIUM_CLMM)
        array = clmm_tick_array_data(pool, start, spacing, {start: liquidity, start + 59 * spacing: -liquidity})
        put(self.standin, clmm_tick_array_address(pool, start), array, RAYDIUM_CLMM)
        accounts = PoolAccounts(pool, va, vb, self.base, self.other)
        self.clmms.append(accounts)
        return accounts

    def add_dlmm(self, active_id: int, bin_step: int = 10, per_bin: int = 5 * SOL, reserve: int = 10_000 * SOL):
        """A Meteora DLMM pair (token X = base), static fee only (0.1%), bins priced (1 + step/1e4)^id:
        `per_bin` of base in the 35 bins from the active one up, of the other token in the 35 below; the
        active bin's array is its only one. Both reserves hold `reserve`."""
        pair, rx, ry = (Keypair().pubkey() for _ in range(3))
        self.set_vault(rx, self.base, reserve)
        self.set_vault(ry, self.other, reserve)
        for key, data in dlmm_accounts(pair, self.base, rx, self.other, ry, active_id, bin_step, per_bin):
            put(self.standin, key, data, METEORA_DLMM)
        accounts = PoolAccounts(pair, rx, ry, self.base, self.other)
        self.dlmms.append(accounts)
        return accounts


def build_world(standin: RunningStandIn, our_base: int = 1_000 * SOL) -> World:
    payer, authority = Keypair(), Keypair()
    standin.call("requestAirdrop", str(payer.pubkey()), 100 * SOL)
    standin.call("requestAirdrop", str(authority.pubkey()), SOL)
    base, other, config = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
    for mint in (base, other):
        put(standin, mint, mint_data(), TOKEN_PROGRAM)
    put(standin, config, cpmm_config_data(2_500), RAYDIUM_CPMM)
    world = World(standin, payer, authority, base, other, config)
    for mint, amount in ((base, our_base), (other, 0)):
        account = Keypair().pubkey()
        put(standin, account, token_account_data(mint, payer.pubkey(), amount), TOKEN_PROGRAM)
        world.ours[mint] = account
    return world


ALT_PROGRAM = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")


def lookup_table_data(authority: Pubkey, addresses: list[Pubkey], last_extended_slot: int = 0) -> bytes:
    """The ALT program's account: ProgramState::LookupTable (u32 1), its meta (active: deactivation slot
    u64::MAX), then the raw addresses."""
    meta = struct.pack("<IQQB", 1, 2**64 - 1, last_extended_slot, 0) + b"\x01" + bytes(authority) + b"\x00\x00"
    return meta + b"".join(bytes(a) for a in addresses)


def spl_transfer(source: Pubkey, destination: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    accounts = [
        AccountMeta(source, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(TOKEN_PROGRAM, bytes([3]) + struct.pack("<Q", amount), accounts)


def settle_by_transfers(authority: Keypair):
    """The test venue: the leg's exact quote as two SPL transfers; refuses (on chain) below min_out."""
    vault_owner = authority.pubkey()  # once: Keypair.pubkey() derives it on every call

    def venue(leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]):
        pool = leg.pool
        if isinstance(pool, (CpmmPool, ClmmPool)) and pool.state is not None:
            vault_a, vault_b = pool.state.vault_a, pool.state.vault_b
        elif isinstance(pool, DlmmPool) and pool.state is not None:
            vault_a, vault_b = pool.state.reserve_x, pool.state.reserve_y
        else:
            assert isinstance(pool, WhirlpoolPool) and pool.state is not None
            vault_a, vault_b = pool.state.token_vault_a, pool.state.token_vault_b
        out = pool.quote(amount_in, leg.zero_for_one)
        vault_in, vault_out = (vault_a, vault_b) if leg.zero_for_one else (vault_b, vault_a)
        # Below the minimum the program would fail: ask for more than the vault holds, which fails the same way.
        paid = out if out >= min_out else 2**64 - 1
        return [
            spl_transfer(accounts[leg.mint_in], vault_in, owner, amount_in),
            spl_transfer(vault_out, accounts[leg.mint_out], vault_owner, paid),
        ], [authority]

    return venue


def transfer_swap(
    svm: LiteSVM,
    trader: Keypair,
    authority: Keypair,
    pay: tuple[Pubkey, Pubkey, int],
    receive: tuple[Pubkey, Pubkey, int],
    token_balances: Callable[[list[Pubkey]], list[dict[str, Any]]],
) -> tuple[str, dict[str, Any]]:
    """A swap settled by two token transfers (the test venue: no DEX program runs here): the trader pays
    (its account -> the vault), the vault's `authority` pays back; executed in LiteSVM and returned as
    getBlock shows it (the signature, the block's transaction entry with pre/post token balances)."""
    (source, vault_in, amount_in), (vault_out, destination, out) = pay, receive
    ixs = [
        spl_transfer(source, vault_in, trader.pubkey(), amount_in),
        spl_transfer(vault_out, destination, authority.pubkey(), out),
    ]
    message = MessageV0.try_compile(trader.pubkey(), ixs, [], svm.latest_blockhash())
    tx = VersionedTransaction(message, [trader, authority])
    keys = list(message.account_keys)
    pre = token_balances(keys)
    result = svm.send_transaction(tx)
    assert isinstance(result, TransactionMetadata), result
    body = {"signatures": [str(tx.signatures[0])], "message": {"accountKeys": [str(k) for k in keys]}}
    meta = {"err": None, "fee": 10_000, "preTokenBalances": pre, "postTokenBalances": token_balances(keys),
            "loadedAddresses": {"writable": [], "readonly": []}, "logMessages": []}  # fmt: skip
    return str(tx.signatures[0]), {"transaction": body, "meta": meta, "version": 0}
