"""`solana-standin`: run the simulator (devnet and tests only; it is not a validator)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from aiohttp import web

from .seed import load
from .server import Settings, StandIn


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--bind: {value!r} is not an IP address") from exc


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="solana-standin",
        description="Solana node SIMULATOR (LiteSVM): JSON-RPC, pubsub and the Jito bundle API. Devnet/tests only.",
    )
    parser.add_argument("--bind", type=_address, action="append", help="listen address (repeatable)")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--auction-ms", type=int, default=200)
    parser.add_argument("--jito-rps", type=float, default=1.0, help="block-engine requests per second per IP")
    parser.add_argument("--min-tip", type=int, default=1_000, help="lamports a bundle must tip")
    parser.add_argument("--cheats", action="store_true", help="enable requestAirdrop and standin_* test methods")
    parser.add_argument("--accounts", help="YAML file of accounts the simulator holds from its start (seed.py)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error("--port: must be 1-65535")
    if args.slot_ms < 1 or args.auction_ms < 1 or args.jito_rps <= 0 or args.min_tip < 0:
        parser.error("--slot-ms/--auction-ms/--jito-rps must be positive, --min-tip not negative")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    settings = Settings(
        slot_ms=args.slot_ms,
        auction_ms=args.auction_ms,
        cheats=args.cheats,
        jito_rps=args.jito_rps,
        min_tip=args.min_tip,
    )
    standin = StandIn(settings)
    seeded = load(args.accounts) if args.accounts else {}
    for key, account in seeded.items():
        standin.ledger.svm.set_account(key, account)
    print(
        f"solana-standin: a LiteSVM simulator, not a validator (cheats {'on' if args.cheats else 'off'}, "
        f"{len(seeded)} seeded accounts)",
        file=sys.stderr,
    )
    web.run_app(standin.app(), host=args.bind or ["127.0.0.1"], port=args.port, print=None)


if __name__ == "__main__":
    main()
