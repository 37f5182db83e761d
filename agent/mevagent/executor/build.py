"""Compile ArbExecutor.sol with solc-js 0.8.30 into the artifact committed next to it.

Hosts never compile: they load the committed artifact. `python -m mevagent.executor.build` (run from a
checkout with `npm ci` done) regenerates it; a test compiles again and requires the same bytes, so the
artifact cannot drift from the source.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parent / "contracts"
SOURCE = CONTRACTS / "ArbExecutor.sol"
ARTIFACT = CONTRACTS / "ArbExecutor.json"
CONTRACT_NAME = "ArbExecutor"
SOLC_VERSION = "0.8.30"
# Transient storage (EIP-1153) guards the V3 callback: every EVM chain of the fleet runs Cancun or later.
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 10_000


def default_solcjs() -> Path:
    # The solc 0.8.30 package's own CLI, not node_modules/.bin/solcjs: that link may point at the solc-js
    # 0.7 the tests compile Balancer's Vault with (both packages name their CLI solcjs).
    return Path(__file__).resolve().parents[3] / "node_modules" / "solc" / "solc.js"


def _standard_input(source: str) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {SOURCE.name: {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                SOURCE.name: {CONTRACT_NAME: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def compile_artifact(solcjs: Path | None = None) -> dict[str, Any]:
    """The artifact as the current source compiles: abi, creation and runtime bytecode, compiler settings."""
    solcjs = solcjs or default_solcjs()
    version = subprocess.run([str(solcjs), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if not version.startswith(SOLC_VERSION + "+"):
        raise RuntimeError(f"{solcjs} is solc {version}, the artifact is built with {SOLC_VERSION}")
    # Its output goes to a file, not a pipe: node writes a pipe asynchronously and solc-js exits before a
    # document over the pipe's 64 KiB buffer is flushed (the output was cut short, then unparseable).
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(
            [str(solcjs), "--standard-json"],
            input=json.dumps(_standard_input(SOURCE.read_text())),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        out.seek(0)
        printed = out.read()
    # solc-js may print a banner before the JSON document.
    output = json.loads(printed[printed.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise RuntimeError("solc: " + "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    contract = output["contracts"][SOURCE.name][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "compiler": {"version": version, "evmVersion": EVM_VERSION, "optimizerRuns": OPTIMIZER_RUNS},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solcjs", type=Path, default=None, help="solc-js binary (default: node_modules/.bin/solcjs)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed artifact differs")
    args = parser.parse_args(argv)
    rendered = render(compile_artifact(args.solcjs))
    if args.check:
        if ARTIFACT.read_text() != rendered:
            print(f"{ARTIFACT} is stale: run python -m mevagent.executor.build", file=sys.stderr)
            return 1
        return 0
    ARTIFACT.write_text(rendered)
    print(f"wrote {ARTIFACT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
