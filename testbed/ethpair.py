"""The devnet's real Ethereum pair (EthereumJS + Lodestar 1.5.1 beacon + validator) run on this machine's
loopback, from the same artifacts and arguments a deploy uses: the npm bundles (deploy/mevfleet/nodes/npm.py,
built or taken from ~/.cache/mevfleet/npm) unpacked into a temporary release dir, each unit's arguments from
the host plan of a one-host inventory at 127.0.0.1 (ports moved to free ones), the genesis made as the units
make it. Used by tests/agent/test_e2e_ethpair.py and bench/eth_pair.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from eth_account import Account
from web3 import Web3
from web3.types import TxReceipt

from mevagent.executor.deploy import DeployError, deploy_contract
from mevagent.executor.keys import Signer, write_new_key_file
from mevagent.executor.rpc import HttpJsonRpc
from mevfleet.inventory import parse_inventory
from mevfleet.model import HostPlan
from mevfleet.nodes.npm import build
from mevfleet.plan import compile_plan
from mevfleet.render import HostFacts, host_files

from .evm import Chain
from .services import free_port
from .strategy import E18, Dex, deploy_dex, move_price

EL, CL, VC = "ethereum-ethereumjs", "ethereum-lodestar", "ethereum-lodestar-validator"
BEACON_PORTS = ["p2p", "beacon-api", "metrics"]
PORTS = ["p2p", "rpc", "authrpc", "metrics"], BEACON_PORTS, BEACON_PORTS, ["metrics"]
SLOT_ARG = "--params.SECONDS_PER_SLOT "
# The devnet genesis funds the well-known test mnemonic's first accounts (anvil's): devnet keys, public by
# design. Account 0 is the world's deployer and trader.
TEST_MNEMONIC = "test test test test test test test test test test test junk"
BLOCK_GAS = 30_000_000  # the devnet genesis' gas limit


def local_plan() -> HostPlan:
    overrides = {}
    # The second beacon node is not started here (the pair runs one; its ports are moved off the defaults).
    for service, names in zip(("ethereumjs", "lodestar", "lodestar2", "lodestar-validator"), PORTS, strict=True):
        for name in names:
            overrides[f"ethereum.{service}.{name}"] = free_port()
    ports = ", ".join(f"{k}: {v}" for k, v in overrides.items())
    text = (
        "fleet: {nodes: devnet, real_clients: [ethereum]}\n"
        f"hosts: {{local: {{address: 127.0.0.1, chains: [ethereum], ports: {{{ports}}}}}}}\n"
    )
    return compile_plan(parse_inventory(text, "local-pair.yml")).hosts["local"]


def unpack(plan: HostPlan, root: Path, *, shared: bool = False) -> tuple[dict[str, Path], float, float]:
    """Each node's release dir; seconds spent building the bundles (0 when cached) and unpacking.

    Under `root` (as a host gets it), or `shared`: unpacked once beside the cached bundle and reused
    read-only by every later run (the clients write only to their data dirs and working directory).
    """
    releases: dict[str, Path] = {}
    built = unpacked = 0.0
    for node in plan.nodes:
        assert node.artifact is not None and node.artifact.npm is not None, node.unit
        started = time.monotonic()
        tarball = build(node.artifact.npm)
        built += time.monotonic() - started
        target = tarball.parent / "release" if shared else root / "opt" / Path(node.release_dir).relative_to("/opt")
        if not target.is_dir():
            started = time.monotonic()
            scratch = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            scratch.mkdir(parents=True)
            subprocess.run(["tar", "-xzf", str(tarball), "-C", str(scratch)], check=True)
            try:
                scratch.rename(target)
            except OSError:  # another run unpacked it first
                shutil.rmtree(scratch)
            unpacked += time.monotonic() - started
        releases[node.unit] = target
    return releases, built, unpacked


class LocalPair:
    """The three processes of the pair, their data under a temporary root; `slot_s` overrides the catalog's
    slot time (the beacon node and the validator must agree on it)."""

    def __init__(self, slot_s: int | None = None, *, shared_releases: bool = True) -> None:
        self.plan = local_plan()
        self.nodes = {n.unit: n for n in self.plan.nodes}
        self.slot_s = slot_s
        self.shared_releases = shared_releases
        self.root = Path(tempfile.mkdtemp(prefix="ethpair-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.built_s = self.unpacked_s = 0.0

    @property
    def rpc_url(self) -> str:
        return self.nodes[EL].rpc_url or ""

    @property
    def port(self) -> int:
        return int(urlsplit(self.rpc_url).port or 0)

    @property
    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 60}))

    def command(self, unit: str, release: Path) -> list[str]:
        """The unit's ExecStart with the host paths moved under the root (data dirs) and `release`."""
        node = self.nodes[unit]
        args = " ".join(node.args).replace(node.link, str(release)).replace("/var/lib/", f"{self.root}/var/")
        if self.slot_s is not None:
            head, _, tail = args.partition(SLOT_ARG)
            args = f"{head}{SLOT_ARG}{self.slot_s} {tail.split(' ', 1)[1]}" if tail else args
        return [str(release / "node" / "bin" / "node"), *args.split()]

    def start(self) -> None:
        releases, self.built_s, self.unpacked_s = unpack(self.plan, self.root, shared=self.shared_releases)
        # As a deploy renders them (node_files declares, host_files renders every concern's declarations).
        files = {f.path: f.content for f in host_files(self.plan, HostFacts()) if f.concern == "nodes"}
        secret = secrets.token_hex(32)
        for node in self.plan.nodes:
            data = self.root / "var" / node.user
            data.mkdir(parents=True, exist_ok=True)
            if node.jwt:
                (data / "jwt.hex").write_text(secret)
                os.chmod(data / "jwt.hex", 0o600)
        el, cl = self.nodes[EL], self.nodes[CL]
        genesis = files[f"{el.config_dir}/genesis.template.json"].replace("@GENESIS_TIME@", hex(int(time.time())))
        (self.root / "var" / el.user / "genesis.json").write_text(genesis)
        self.procs.append(self._spawn(self.command(EL, releases[EL]), "el.log", {}))
        script = self.root / "genesis-args.mjs"
        script.write_text(files[f"{cl.config_dir}/genesis-args.mjs"])
        engine = next(a.split()[1] for a in cl.args if a.startswith("--execution.urls "))
        beacon_var = self.root / "var" / cl.user
        subprocess.run(
            [
                str(releases[CL] / "node/bin/node"),
                str(script),
                engine,
                f"{beacon_var}/jwt.hex",
                f"{beacon_var}/genesis.yml",
            ],
            check=True,
            timeout=180,
        )
        preset = {"LODESTAR_PRESET": "minimal"}
        self.procs.append(self._spawn(self.command(CL, releases[CL]), "beacon.log", preset))
        self.procs.append(self._spawn(self.command(VC, releases[VC]), "validator.log", preset))

    def restart_execution(self) -> float:
        """Stop EthereumJS as its unit does (SIGTERM, the same data dir kept) and start it again with the same
        arguments, the beacon node and validator left running; the seconds it took to stop."""
        el = self.procs[0]
        started = time.monotonic()
        stop([el])
        stopped = time.monotonic() - started
        releases, _, _ = unpack(self.plan, self.root, shared=self.shared_releases)
        self.procs[0] = self._spawn(self.command(EL, releases[EL]), "el.log", {}, append=True)
        return stopped

    def _spawn(self, cmd: list[str], log: str, env: dict[str, str], *, append: bool = False) -> subprocess.Popen[bytes]:
        # cwd: a scratch dir, as the units' WorkingDirectory (Lodestar writes genesis.ssz there).
        with (self.root / log).open("ab" if append else "wb") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=self.root)

    def wait_for_block(self, number: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        w3 = self.w3
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            try:
                if w3.eth.block_number >= number:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the local pair made no block {number} within {timeout_s:.0f} s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.root / name).read_text(errors='replace')[-1500:]}"
            for name in ("el.log", "beacon.log", "validator.log")
            if (self.root / name).is_file()
        )

    def rss_mib(self) -> float:
        total = 0
        for proc in self.procs:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        return total / 1024

    def close(self) -> None:
        stop(self.procs)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPair:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # Lodestar can hang on SIGTERM: the units SIGKILL after 30 s too
            proc.kill()
            proc.wait()


class SignedChain(Chain):
    """The test fixtures' Chain on a real client: no unlocked account, so every transaction is signed here
    (EIP-1559, gas from eth_estimateGas with headroom) by the genesis-funded test account 0."""

    def __init__(self, w3: Web3) -> None:
        Account.enable_unaudited_hdwallet_features()
        self.key = Account.from_mnemonic(TEST_MNEMONIC)
        self.w3 = w3
        self.account = self.key.address
        self.last_receipt: TxReceipt | None = None

    def transact(self, fn: Any, *, expect_success: bool = True) -> TxReceipt:
        # The gas is estimated here (build_transaction's own estimate carries no fee, and EthereumJS runs an
        # estimate as a transaction: a zero fee is below the base fee and refused).
        return self.send(fn.build_transaction({**self._fields(), "gas": BLOCK_GAS}), expect_success=expect_success)

    def send_value(self, to: str, value: int) -> TxReceipt:
        return self.send({**self._fields(), "to": to, "value": value, "gas": 21_000})

    def _fields(self) -> dict[str, Any]:
        # Base fee decays on these empty blocks: twice the latest plus a 1 gwei tip always clears it.
        base = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
        return {
            "from": self.account,
            "nonce": self.w3.eth.get_transaction_count(self.account, "pending"),
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * base + 10**9,
            "chainId": self.w3.eth.chain_id,
        }

    def send(self, tx: dict[str, Any], *, expect_success: bool = True) -> TxReceipt:
        if tx["gas"] == BLOCK_GAS:
            call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
            tx["gas"] = min(BLOCK_GAS, self.w3.eth.estimate_gas({**call, "gasPrice": tx["maxFeePerGas"]}) * 6 // 5)
        signed = self.key.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.1)
        # EthereumJS stores a block's receipts when it executes the payload, before the beacon node's
        # forkchoice makes it "latest": until then calls and estimates still see the state before it.
        deadline = time.monotonic() + 60
        while self.w3.eth.block_number < receipt["blockNumber"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.last_receipt = receipt
        if expect_success and receipt["status"] != 1:
            raise AssertionError(f"transaction reverted: {tx}")
        return receipt


@dataclass
class PairWorld:
    """tests/agent's end-to-end DEX on the running pair, and what the agent's deploy function said about
    putting its ArbExecutor there."""

    node: LocalPair
    dex: Dex
    factories: list[dict[str, Any]]
    deploy_refusal: str  # DeployError's message: the contract cannot run on this chain's EVM

    @property
    def w3(self) -> Web3:
        return self.dex.chain.w3

    def gap(self, amount: int = 10 * E18) -> int:
        """A trader sells W into pair A (W is now cheap there); the block the swap landed in."""
        move_price(self.dex, self.dex.pairs["A"].address.lower(), self.dex.base, amount)
        swap = self.dex.chain.last_receipt  # type: ignore[attr-defined]
        return int(swap["blockNumber"])  # the chain goes on: "latest" may be past it already


def build_pair_world(pair: LocalPair, keys: Path) -> PairWorld:
    """The same published contracts as on anvil, deployed by transactions the funded test account signs;
    then the agent's own deploy function tried with a fresh owner key (funded by a transfer)."""
    chain = SignedChain(pair.w3)
    dex = deploy_dex(chain)
    key_file = keys / "ethereum.key"
    owner = write_new_key_file(key_file)
    chain.send_value(chain.w3.to_checksum_address(owner), 10 * E18)

    async def deploy() -> str:
        async with aiohttp.ClientSession() as session:
            try:
                await deploy_contract(HttpJsonRpc(pair.rpc_url, session), Signer.from_file(key_file))
            except DeployError as exc:
                return str(exc)
        return ""

    refusal = asyncio.run(deploy())
    factories = [
        {"kind": "v2", "address": p.functions.factory().call(), "fork": "uniswap_v2"} for p in dex.pairs.values()
    ]
    factories.append({"kind": "v3", "address": dex.v3.functions.factory().call(), "fork": "uniswap_v3"})
    return PairWorld(pair, dex, factories, refusal)
