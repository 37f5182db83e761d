"""Bundles to the Jito block engine: versioned transactions, compute budget, tip, the anti-front-running
account, the risk gate before signing, dry-run unless the chain is live.

One cycle is one transaction (every leg in it, so the cycle is atomic by itself) sent as a bundle: the
compute-budget instructions first, the legs, then the tip to a random tip account as the last instruction
of the last transaction. Our first swap carries the read-only `jitodontfront…` account, so the block
engine refuses any bundle that would put someone else's transaction before ours. The last leg's minimum
output is the input plus every cost: if the state moved, the transaction fails on chain instead of losing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from mevagent.core import Decision, Hop, Opportunity, Outcome, RiskCheck, Status

from .book import kind_of
from .clmm import ClmmPool
from .cycles import Leg, Sized
from .dlmm import DlmmPool
from .price import LAMPORTS_PER_SOL, FixedSolPrice, SolPrice
from .raydium import AmmV4Pool, CpmmPool
from .rpc import BlockEngine, RateLimited, RpcError, SolanaRpc
from .swaps import amm_v4_swap_base_in, clmm_swap_v2, cpmm_swap_base_input, dlmm_swap2, whirlpool_swap_v2
from .whirlpool import WhirlpoolPool

log = logging.getLogger(__name__)

CHAIN = "solana"
STRATEGY = "solana_cycles"
# A read-only account whose key starts with "jitodontfront": Jito then only lands our transaction first in
# any bundle (the block engine enforces it). Any such key works; this one is the documented example.
DONT_FRONT = Pubkey.from_string("jitodontfront111111111111111111111111111111")


class ExecutorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    live: bool = False  # dry-run unless the inventory makes the chain live
    # A fixed USD per SOL for the outcome's USD values (the base mint is wrapped SOL), unless the executor is
    # given a SolPrice (the route gives the chain's, which may follow a pool).
    sol_usd: float | None = Field(default=None, gt=0)
    intermediate_slippage_bps: int = Field(default=0, ge=0, le=5_000)  # min-out of all legs but the last
    status_timeout_s: float = Field(default=10.0, gt=0)
    status_poll_s: float = Field(default=0.1, gt=0)
    blockhash_retries: int = Field(default=1, ge=0, le=5)
    # How often `keep_blockhash` asks for the latest blockhash (a hash is valid for 150 slots, about 60 s).
    blockhash_refresh_s: float = Field(default=2.0, gt=0)
    # Live: send a bundle only once its simulation passed (one more node round trip before the block engine
    # sees it). By default the bundle goes out first and the simulation follows (SolanaExecutor.submit).
    simulate_first: bool = False


class Venue(Protocol):
    """How one pool kind swaps: the instructions for a leg, and any signer besides our key."""

    def __call__(
        self, leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
    ) -> tuple[list[Instruction], list[Keypair]]: ...


def raydium_venue(
    leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
) -> tuple[list[Instruction], list[Keypair]]:
    pool = leg.pool
    source, destination = accounts[leg.mint_in], accounts[leg.mint_out]
    if isinstance(pool, CpmmPool) and pool.state is not None:
        ix = cpmm_swap_base_input(
            pool.address, pool.state, owner, source, destination, leg.zero_for_one, amount_in, min_out, pool.program
        )
    elif isinstance(pool, AmmV4Pool) and pool.state is not None:
        ix = amm_v4_swap_base_in(pool.address, pool.state, owner, source, destination, amount_in, min_out, pool.program)
    else:
        raise ValueError(f"no swap instruction for pool {pool.address}")
    return [ix], []


P = TypeVar("P")


def _loaded(leg: Leg, kind: type[P]) -> P:
    """The leg's pool as `kind` with its state read: a venue builds only for the pools it knows."""
    pool = leg.pool
    if not isinstance(pool, kind) or getattr(pool, "state", None) is None:
        raise ValueError(f"no swap instruction for pool {pool.address}")
    return pool


def whirlpool_venue(
    leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
) -> tuple[list[Instruction], list[Keypair]]:
    pool = _loaded(leg, WhirlpoolPool)
    s = pool.state
    ix = whirlpool_swap_v2(
        pool.address,
        s,
        owner,
        accounts[s.token_mint_a],
        accounts[s.token_mint_b],
        pool.swap_tick_arrays(leg.zero_for_one),
        leg.zero_for_one,
        amount_in,
        min_out,
        token_program_a=pool.token_program(s.token_mint_a),
        token_program_b=pool.token_program(s.token_mint_b),
        program=pool.program,
    )
    return [ix], []


def clmm_venue(
    leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
) -> tuple[list[Instruction], list[Keypair]]:
    pool = _loaded(leg, ClmmPool)
    ix = clmm_swap_v2(
        pool.address,
        pool.state,
        owner,
        accounts[leg.mint_in],
        accounts[leg.mint_out],
        pool.swap_array_addresses(leg.zero_for_one),
        leg.zero_for_one,
        amount_in,
        min_out,
        pool.program,
    )
    return [ix], []


def dlmm_venue(
    leg: Leg, amount_in: int, min_out: int, owner: Pubkey, accounts: Mapping[Pubkey, Pubkey]
) -> tuple[list[Instruction], list[Keypair]]:
    pool = _loaded(leg, DlmmPool)
    ix = dlmm_swap2(
        pool.address,
        pool.state,
        owner,
        accounts[leg.mint_in],
        accounts[leg.mint_out],
        pool.swap_array_addresses(leg.zero_for_one),
        amount_in,
        min_out,
        token_program_x=pool.token_program(pool.state.token_x_mint),
        token_program_y=pool.token_program(pool.state.token_y_mint),
        program=pool.program,
    )
    return [ix], []


def public_key(keypair: Keypair) -> Pubkey:
    """A keypair's public key: the last 32 of its 64 bytes (secret, then public). Keypair.pubkey() derives
    it from the secret on every call, tens of microseconds each: too slow for every bundle."""
    return Pubkey.from_bytes(bytes(keypair)[32:])


def with_dont_front(ix: Instruction) -> Instruction:
    return Instruction(ix.program_id, ix.data, [*ix.accounts, AccountMeta(DONT_FRONT, False, False)])


@dataclass(frozen=True, slots=True)
class SolanaOpportunity(Opportunity):
    """A sized cycle as the engine, the risk gate and the bus see it, carrying the cycle the route builds."""

    sized: Sized | None = None

    def details(self) -> dict[str, object]:
        s = self.sized
        if s is None:
            return {}
        fees = {"priority_fee": s.priority_fee, "base_fee": s.base_fee, "tip": s.tip, "net": s.net}
        return {"slot": s.slot, **{k: str(v) for k, v in fees.items()}}


def opportunity_of(
    sized: Sized, sol_usd: float, chain: str = CHAIN, strategy: str = STRATEGY, route: str = ""
) -> SolanaOpportunity:
    """The risk gate's view of a cycle: amounts in the base mint's units, fees and tip in lamports, USD at
    `sol_usd` (the base mint is wrapped SOL). One transaction of gas_limit 1 at gas_price = its base and
    priority fee, so gas_limit * gas_price + builder_payment (the tip) is what it pays, in lamports, as the
    bus reports an EVM execution's gas in wei."""
    usd = sol_usd / LAMPORTS_PER_SOL
    hops = tuple(
        Hop(str(leg.pool.address), kind_of(leg.pool), str(leg.mint_in), str(leg.mint_out)) for leg in sized.cycle.legs
    )
    key = f"{chain}:{sized.slot}:{sized.cycle.key}:{sized.amount_in}".encode()
    return SolanaOpportunity(
        chain=chain,
        strategy=strategy,
        block=sized.slot,
        hops=hops,
        amount_in=sized.amount_in,
        amount_out=sized.amount_out,
        gas_limit=1,
        gas_price=sized.priority_fee + sized.base_fee,
        builder_payment=sized.tip,
        notional_usd=sized.amount_in * usd,
        profit_usd=sized.gross * usd,
        gas_cost_usd=(sized.priority_fee + sized.base_fee + sized.tip) * usd,
        found_ns=time.perf_counter_ns(),
        id=hashlib.sha256(key).hexdigest()[:16],
        route=route,
        sized=sized,
    )


@dataclass(frozen=True, slots=True)
class Built:
    tx: VersionedTransaction
    blockhash: Hash
    tip_account: Pubkey


@dataclass(frozen=True, slots=True)
class Submitted:
    """What `SolanaExecutor.submit` did with one cycle."""

    built: Built
    bundle_id: str | None  # None: not sent (dry-run, a failed simulation first) or refused by every region
    simulation: str | None  # why the simulation failed (or could not answer); None when it passed


class SolanaExecutor:
    def __init__(
        self,
        rpc: SolanaRpc,
        engines: Sequence[BlockEngine],
        payer: Keypair,
        token_accounts: Mapping[Pubkey, Pubkey],  # mint -> our token account
        gate: RiskCheck,
        settings: ExecutorSettings,
        tip_accounts: Sequence[Pubkey],
        venues: Mapping[str, Venue] | None = None,
        rng: Callable[[Sequence[Pubkey]], Pubkey] = random.choice,
        lookup_tables: Sequence[AddressLookupTableAccount] = (),
        price: SolPrice | None = None,
    ) -> None:
        if price is None:
            if settings.sol_usd is None:
                raise ValueError("the executor needs a SOL price: settings.sol_usd or a SolPrice")
            price = FixedSolPrice(settings.sol_usd)
        self.price = price
        self.rpc, self.engines, self.payer = rpc, list(engines), payer
        self.owner = public_key(payer)
        self.token_accounts, self.gate, self.settings = dict(token_accounts), gate, settings
        self.tip_accounts = list(tip_accounts)
        self.venues = dict(
            venues
            or {
                "raydium_cpmm": raydium_venue,
                "raydium_amm_v4": raydium_venue,
                "raydium_clmm": clmm_venue,
                "orca_whirlpool": whirlpool_venue,
                "meteora_dlmm": dlmm_venue,
            }
        )
        self.choose = rng
        # Pools' and programs' accounts by 1-byte index instead of 32 bytes: a 3-hop cycle fits one packet.
        self.lookup_tables = list(lookup_tables)
        self.blockhash: Hash | None = None
        self.sent: list[str] = []  # bundle ids, in order
        self.landed: dict[str, int | None] = {}  # our landed transactions' signatures -> their slot

    # --- the gate's view ---------------------------------------------------------------------------------

    def opportunity(self, sized: Sized) -> Opportunity:
        # Without a price its USD values are 0: run() rejects it for that before the gate sees them.
        return opportunity_of(sized, self.price.sol_usd() or 0.0)

    # --- building ----------------------------------------------------------------------------------------

    def instructions(
        self, sized: Sized, compute_unit_limit: int, micro_lamports: int
    ) -> tuple[list[Instruction], dict[Pubkey, Keypair], Pubkey]:
        """The cycle's instructions, their signers by key and the tip account they pay."""
        owner = self.owner
        instructions = [set_compute_unit_limit(compute_unit_limit), set_compute_unit_price(micro_lamports)]
        signers: dict[Pubkey, Keypair] = {owner: self.payer}
        amount = sized.amount_in
        last = len(sized.cycle.legs) - 1
        for index, (leg, quoted) in enumerate(zip(sized.cycle.legs, sized.amounts, strict=True)):
            # `quoted` is what arrives in our account, net of Token-2022 transfer fees on the leg's output
            # mint (the pool's input fee is in the quote too): what both programs check the minimum against,
            # and what the next leg sends.
            if index == last:
                # Never lose: the cycle must return its input plus everything it pays.
                min_out = sized.amount_in + sized.priority_fee + sized.base_fee + sized.tip
            else:
                min_out = quoted * (10_000 - self.settings.intermediate_slippage_bps) // 10_000
            ixs, extra = self.venues[kind_of(leg.pool)](leg, amount, min_out, owner, self.token_accounts)
            if index == 0:
                ixs = [with_dont_front(ixs[0]), *ixs[1:]]
            instructions += ixs
            signers.update({public_key(k): k for k in extra})
            amount = quoted
        tip_account = self.choose(self.tip_accounts)
        instructions.append(transfer(TransferParams(from_pubkey=owner, to_pubkey=tip_account, lamports=sized.tip)))
        return instructions, signers, tip_account

    def build(self, sized: Sized, blockhash: Hash, compute_unit_limit: int, micro_lamports: int) -> Built:
        instructions, signers, tip_account = self.instructions(sized, compute_unit_limit, micro_lamports)
        message = MessageV0.try_compile(self.owner, instructions, self.lookup_tables, blockhash)
        # Signed once over the message's bytes, each signature in its signer's place (what
        # VersionedTransaction(message, keypairs) does, without re-deriving every public key to match them).
        signed = to_bytes_versioned(message)
        wanted = message.account_keys[: message.header.num_required_signatures]
        tx = VersionedTransaction.populate(message, [signers[k].sign_message(signed) for k in wanted])
        return Built(tx, blockhash, tip_account)

    # --- executing ---------------------------------------------------------------------------------------

    async def execute(self, sized: Sized, compute_unit_limit: int, micro_lamports: int) -> Outcome:
        return await self.run(self.opportunity(sized), sized, compute_unit_limit, micro_lamports)

    async def run(self, opp: Opportunity, sized: Sized, compute_unit_limit: int, micro_lamports: int) -> Outcome:
        """`opp` (the gate's view of `sized`) through the risk gate, then built, simulated and sent. Its outcome is
        valued at SOL's price now; without one nothing is sent."""
        sol_usd = self.price.sol_usd()
        if sol_usd is None:
            return Outcome(opp, Status.REJECTED, reason=self.price.missing())
        missing = sorted({kind_of(leg.pool) for leg in sized.cycle.legs} - self.venues.keys())
        if missing:  # quoted but not executable (no swap instruction built for that program yet)
            return Outcome(opp, Status.REJECTED, reason=f"no swap instruction for {', '.join(missing)}")
        decision: Decision = self.gate.check(opp)
        if not decision.allowed:
            return Outcome(opp, Status.REJECTED, reason=decision.reason)
        outcome = await self._execute(opp, sized, compute_unit_limit, micro_lamports, sol_usd)
        self.gate.record(outcome)
        return outcome

    async def _execute(self, opp: Opportunity, sized: Sized, cu_limit: int, micro: int, sol_usd: float) -> Outcome:
        usd = sol_usd / LAMPORTS_PER_SOL  # as opportunity_of: at a fixed sol_usd, the opportunity's own values
        profit = sized.gross * usd
        try:
            submitted = await self.submit(sized, cu_limit, micro)
        except RpcError as exc:
            return Outcome(opp, Status.FAILED, reason=str(exc))
        built, bundle_id = submitted.built, submitted.bundle_id
        if bundle_id is None:
            if submitted.simulation is not None:
                return Outcome(opp, Status.FAILED, reason=submitted.simulation)
            if not self.settings.live:
                return Outcome(opp, Status.DRY_RUN, realized_profit_usd=profit, reason="dry-run: not sent")
            return Outcome(opp, Status.FAILED, reason="every block-engine region refused the bundle")
        self.sent.append(bundle_id)
        # The block engine's verdict, whatever the simulation said: a sent bundle may still land.
        status, slot = await self._wait(bundle_id)
        signature = str(built.tx.signatures[0])
        if status == "Landed":
            self.landed[signature] = slot
            cost = (sized.priority_fee + sized.base_fee + sized.tip) * usd
            return Outcome(opp, Status.LANDED, profit, cost, tx_hashes=(signature,), builder_paid_usd=sized.tip * usd)
        reason = f"bundle {bundle_id}: {status}" + (f" ({submitted.simulation})" if submitted.simulation else "")
        return Outcome(opp, Status.FAILED, reason=reason, tx_hashes=(signature,))

    async def submit(self, sized: Sized, cu_limit: int, micro: int) -> Submitted:
        """Build on the cached blockhash, simulate and, when live, send the bundle to every region.

        Live, the bundle is sent first and simulated right after (unless `simulate_first`): the block engine
        sees it one node round trip sooner. That loses nothing: a bundle is atomic and its last leg's minimum
        output is its input plus every cost, so one the simulation would have stopped fails at the engine
        and pays nothing; the simulation still names why, and an expired blockhash is refreshed and the
        bundle rebuilt and sent again. Not live, it is only simulated."""
        send_first = self.settings.live and not self.settings.simulate_first
        built: Built | None = None
        for _ in range(self.settings.blockhash_retries + 1):
            if self.blockhash is None:
                self.blockhash = await self.rpc.blockhash()
            built = self.build(sized, self.blockhash, cu_limit, micro)
            bundle_id = await self._send([built.tx]) if send_first else None
            try:
                err = (await self.rpc.simulate(built.tx)).get("err")
            except (RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                if bundle_id is None:
                    raise
                return Submitted(built, bundle_id, f"simulation: {type(exc).__name__}: {exc}")
            if err == "BlockhashNotFound":  # by the node, that transaction cannot land: sent or not, rebuild
                self.blockhash = None
                continue
            if err is not None:
                return Submitted(built, bundle_id, f"simulation failed: {err}")
            if send_first or not self.settings.live:
                return Submitted(built, bundle_id, None)
            return Submitted(built, await self._send([built.tx]), None)
        assert built is not None
        return Submitted(built, None, "blockhash still not found after refreshing")

    async def keep_blockhash(self) -> None:
        """Keep the cached blockhash fresh, every `blockhash_refresh_s` (run as a task while the executor is
        used): a bundle is then built without asking for one first, and never on a hash about to expire."""
        while True:
            try:
                self.blockhash = await self.rpc.blockhash()
            except (RpcError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("getLatestBlockhash: %s", exc)
            await asyncio.sleep(self.settings.blockhash_refresh_s)

    async def _send(self, txs: list[VersionedTransaction]) -> str | None:
        """Fan the bundle out to every region at once; each keeps its own rate limit and timeout."""
        results = await asyncio.gather(*(e.send_bundle(txs) for e in self.engines), return_exceptions=True)
        ids = [r for r in results if isinstance(r, str)]
        for engine, r in zip(self.engines, results, strict=True):
            if isinstance(r, BaseException) and not isinstance(r, RateLimited):
                log.warning("block engine %s refused the bundle: %s", engine.url, r)
        return ids[0] if ids else None

    async def _wait(self, bundle_id: str) -> tuple[str, int | None]:
        """The bundle's final status and the slot it landed in (None unless landed)."""
        deadline = time.monotonic() + self.settings.status_timeout_s
        engine = self.engines[0]
        while time.monotonic() < deadline:
            try:
                answer = (await engine.inflight([bundle_id]))[0]
            except (RpcError, OSError) as exc:
                log.warning("bundle status: %s", exc)
                answer = {"status": "Pending"}
            if answer["status"] in ("Landed", "Failed", "Invalid"):
                return answer["status"], answer.get("landed_slot")
            await asyncio.sleep(self.settings.status_poll_s)
        return "Pending after the status timeout", None
