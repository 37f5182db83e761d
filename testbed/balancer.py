"""The Balancer V2 Vault on anvil, compiled from its published sources (`@balancer-labs/v2-vault` 3.0.1, with
`@balancer-labs/v2-interfaces` and `@balancer-labs/v2-solidity-utils`) with solc-js 0.7.1 (`solc-0.7` in
package.json), the compiler Balancer builds the Vault with. The optimizer runs 400 times: with the 1,500
runs of Balancer's mainnet build, this package version's Vault is past the EIP-170 code size limit
(over 24,576 bytes of runtime code) and anvil refuses to deploy it. The Vault wants an authorizer:
contracts/BalancerTestAuthorizer.sol lets the test's account (and nobody else) set the flashloan fee on the
Vault's own ProtocolFeesCollector.

Compiling the Vault takes solc-js several seconds: the output is kept under node_modules/.cache, keyed by
the hash of every source and setting, so it is compiled again only when one of them changes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import encode
from web3.contract import Contract

from .evm import CONTRACTS, NODE_MODULES, Chain

AUTHORIZER = CONTRACTS / "BalancerTestAuthorizer.sol"
TEST_POOL = CONTRACTS / "BalancerTestPool.sol"
VAULT = "@balancer-labs/v2-vault/contracts/Vault.sol"
COLLECTOR = "@balancer-labs/v2-vault/contracts/ProtocolFeesCollector.sol"
SOLC = NODE_MODULES / "solc-0.7"
CACHE = NODE_MODULES / ".cache" / "mevfleet-balancer"
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 400},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}
UNUSED_WETH = "0x000000000000000000000000000000000000dEaD"  # only ETH joins and exits touch it

# solc-js compiles with an import callback that reads the published sources from node_modules.
_COMPILE_JS = """
const solc = require(process.argv[1]);
const fs = require('fs'), path = require('path');
const root = process.argv[2];
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
function findImports(p) {
  try { return {contents: fs.readFileSync(path.join(root, p), 'utf8')}; }
  catch (e) { return {error: 'not found: ' + p}; }
}
process.stdout.write(solc.compile(JSON.stringify(input), {import: findImports}));
"""


def _input() -> dict[str, Any]:
    sources = {
        VAULT: {"content": (NODE_MODULES / VAULT).read_text()},
        "BalancerTestAuthorizer.sol": {"content": AUTHORIZER.read_text()},
    }
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def _digest(data: dict[str, Any]) -> str:
    """The hash of the input and of every published source it imports (a changed package changes it)."""
    h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    for package in ("v2-vault", "v2-interfaces", "v2-solidity-utils"):
        for source in sorted((NODE_MODULES / "@balancer-labs" / package / "contracts").rglob("*.sol")):
            h.update(source.read_bytes())
    h.update((SOLC / "package.json").read_bytes())
    return h.hexdigest()


def _compile(data: dict[str, Any], digest: str) -> dict[str, Any]:
    """solc-js 0.7's output for `data`, cached under `digest`."""
    cached = CACHE / f"{digest}.json"
    if cached.is_file():
        output = json.loads(cached.read_text())
    else:
        result = subprocess.run(
            ["node", "-e", _COMPILE_JS, str(SOLC), str(NODE_MODULES)],
            input=json.dumps(data),
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        output = json.loads(result.stdout)
        errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
        if errors:
            raise RuntimeError("solc 0.7: " + "\n".join(e["formattedMessage"] for e in errors))
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(output))
    return output


@cache
def compiled() -> dict[str, tuple[list[dict[str, Any]], str]]:
    """(abi, creation bytecode) of the Vault, its ProtocolFeesCollector, the test authorizer and the test pool."""
    data = _input()
    contracts = _compile(data, _digest(data))["contracts"]
    # The test pool apart: changing it does not compile the Vault again.
    pool_input = {**data, "sources": {"BalancerTestPool.sol": {"content": TEST_POOL.read_text()}}}
    pool_digest = hashlib.sha256(json.dumps(pool_input, sort_keys=True).encode() + (SOLC / "package.json").read_bytes())
    contracts.update(_compile(pool_input, pool_digest.hexdigest())["contracts"])

    def pick(source: str, name: str) -> tuple[list[dict[str, Any]], str]:
        entry = contracts[source][name]
        return entry["abi"], "0x" + entry["evm"]["bytecode"]["object"]

    return {
        "Vault": pick(VAULT, "Vault"),
        "ProtocolFeesCollector": pick(COLLECTOR, "ProtocolFeesCollector"),
        "BalancerTestAuthorizer": pick("BalancerTestAuthorizer.sol", "BalancerTestAuthorizer"),
        "BalancerTestPool": pick("BalancerTestPool.sol", "BalancerTestPool"),
    }


@dataclass
class BalancerVault:
    chain: Chain
    vault: Contract
    collector: Contract

    def deploy_pool(self, token_a: Contract, token_b: Contract, fee_bps: int) -> Contract:
        """A two-token constant-product test pool (contracts/BalancerTestPool.sol) registered with the Vault."""
        abi, bytecode = compiled()["BalancerTestPool"]
        w3 = self.chain.w3
        factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        deploy = factory.constructor(self.vault.address, token_a.address, token_b.address, fee_bps)
        receipt = self.chain.transact(deploy)
        return w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    def join(self, pool: Contract, sender: str, amounts: dict[str, int]) -> None:
        """`sender` adds `amounts` (token address -> base units) to `pool` (approvals to the Vault given)."""
        tokens, _balances, _block = self.vault.functions.getPoolTokens(pool.functions.poolId().call()).call()
        amounts_in = [amounts[t] for t in tokens]
        request = (tokens, amounts_in, encode(["uint256[]"], [amounts_in]), False)
        call = self.vault.functions.joinPool(pool.functions.poolId().call(), sender, sender, request)
        receipt = self.chain.w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "gas": 1_000_000}))
        assert receipt["status"] == 1, receipt

    def set_flash_fee(self, percentage: int) -> None:
        """The flashloan fee (1e18 = 100 %), set on the ProtocolFeesCollector by the authorized account."""
        self.chain.transact(self.collector.functions.setFlashLoanFeePercentage(percentage))


def deploy_vault(chain: Chain) -> BalancerVault:
    built = compiled()
    w3 = chain.w3

    def deploy(name: str, *args: Any) -> Contract:
        abi, bytecode = built[name]
        receipt = chain.transact(w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args))
        return w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    authorizer = deploy("BalancerTestAuthorizer")
    vault = deploy("Vault", authorizer.address, UNUSED_WETH, 0, 0)
    collector = w3.eth.contract(
        address=vault.functions.getProtocolFeesCollector().call(), abi=built["ProtocolFeesCollector"][0]
    )
    return BalancerVault(chain, vault, collector)
