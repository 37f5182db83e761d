"""`mevagent`: run the agent, check a config, deploy the arbitrage contract.

argparse rather than a CLI library: hosts install only this package and its runtime dependencies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .analytics import cli as analytics_cli
from .config import AgentConfig, ConfigError, load_config


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the agent's YAML config (mevagent.config)")
    parser.add_argument("--risk-json", type=Path, help="risk.json (flat limits)")
    parser.add_argument("--strategies-json", type=Path, help="strategies.json")
    parser.add_argument("--env-file", type=Path, help=".env (MAX_POSITION_SIZE, ...)")


def _load(args: argparse.Namespace) -> AgentConfig:
    return load_config(
        args.config, risk_json=args.risk_json, strategies_json=args.strategies_json, env_file=args.env_file
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mevagent",
        description="Co-located MEV searcher agent. Dry-run on every chain unless its config says live: true.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent: collectors, strategies, risk gate, executor, control API")
    _config_args(run)
    check = commands.add_parser("check-config", help="validate the config (and seed files); change nothing")
    _config_args(check)
    analytics_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in analytics_cli.COMMANDS:
        return analytics_cli.run(args)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"mevagent: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for chain in config.chains:
            mode = "LIVE" if chain.live else "dry-run"
            print(f"{chain.name} (chain id {chain.chain_id}): {mode}, {len(chain.endpoints)} endpoint(s)")
        return 0
    from .app import run_agent  # the runtime pulls in aiohttp, the node client and the strategies

    return run_agent(config)


if __name__ == "__main__":
    sys.exit(main())
