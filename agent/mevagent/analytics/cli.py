"""`mevagent classify` and `mevagent backfill`: offline and historical block classification.

Registered by mevagent.cli; neither needs the agent's config (they run anywhere a block file or a
node is at hand).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from urllib.parse import urlparse

import orjson

from mevagent.analytics.backfill import BackfillError, FileSink, backfill, classification_json, write_atomic
from mevagent.analytics.classify import classify_block
from mevagent.analytics.prices import PricingFileError, load_pricing, priced, static_price
from mevagent.analytics.source import BlockInputError

COMMANDS = ("classify", "backfill")
_SOURCES = {"all": frozenset({"logs", "traces"}), "logs": frozenset({"logs"}), "traces": frozenset({"traces"})}


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    classify = commands.add_parser(
        "classify", help="classify block files ({block, receipts, traces}) into <block number>.json"
    )
    classify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    classify.add_argument("--out-dir", type=Path, required=True)
    classify.add_argument("--sources", choices=sorted(_SOURCES), default="all", help="what to read (default: all)")
    pricing_help = "a chain's `pricing:` section (YAML, as in the agent's config): USD values of the MEV found"
    classify.add_argument("--pricing", type=Path, help=pricing_help + " (configured prices; no reference pools)")
    fill = commands.add_parser("backfill", help="classify a block range read from a node (batched, resumable)")
    fill.add_argument("--rpc", required=True, help="the node's HTTP JSON-RPC URL")
    fill.add_argument("--from", dest="first", type=int, required=True, help="first block (inclusive)")
    fill.add_argument("--to", dest="last", type=int, required=True, help="last block (inclusive)")
    fill.add_argument("--out-dir", type=Path, required=True)
    fill.add_argument("--cursor", type=Path, help="resume file (default: OUT_DIR/.cursor)")
    fill.add_argument("--batch", type=int, default=10, help="blocks per JSON-RPC batch")
    fill.add_argument("--traces", choices=("parity", "geth", "none"), default="parity")
    fill.add_argument("--pricing", type=Path, help=pricing_help + " (reference pools read at each block)")


def run(args: argparse.Namespace) -> int:
    if args.command == "classify":
        return _classify(args)
    return _backfill(args)


def _classify(args: argparse.Namespace) -> int:
    try:
        price = static_price(load_pricing(args.pricing)) if args.pricing is not None else None
    except PricingFileError as exc:
        print(f"mevagent classify: --pricing: {exc}", file=sys.stderr)
        return 2
    failed = 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in args.files:
        try:
            raw = orjson.loads(path.read_bytes())
            result = classify_block(raw, _SOURCES[args.sources])
        except (OSError, orjson.JSONDecodeError, BlockInputError) as exc:
            print(f"mevagent classify: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # A shape the field checks did not foresee: still one line naming the file, no traceback.
            print(f"mevagent classify: {path}: malformed block file ({type(exc).__name__}: {exc})", file=sys.stderr)
            failed += 1
            continue
        if price is not None:
            result = priced(result, price)
        write_atomic(args.out_dir / f"{result.block_number}.json", classification_json(result))
    return 1 if failed else 0


def _backfill(args: argparse.Namespace) -> int:
    url = urlparse(args.rpc)
    if url.scheme not in ("http", "https") or not url.hostname:
        print(f"mevagent backfill: --rpc: not an http(s) URL: {args.rpc!r}", file=sys.stderr)
        return 2
    if args.first < 0 or args.last < args.first:
        print(f"mevagent backfill: --from/--to: empty range {args.first}..{args.last}", file=sys.stderr)
        return 2
    if args.batch < 1:
        print("mevagent backfill: --batch: must be at least 1", file=sys.stderr)
        return 2
    try:
        pricing = load_pricing(args.pricing) if args.pricing is not None else None
    except PricingFileError as exc:
        print(f"mevagent backfill: --pricing: {exc}", file=sys.stderr)
        return 2
    cursor = args.cursor or args.out_dir / ".cursor"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = asyncio.run(
            backfill(
                args.rpc,
                args.first,
                args.last,
                FileSink(args.out_dir),
                cursor=cursor,
                batch_size=args.batch,
                traces=args.traces,
                pricing=pricing,
            )
        )
    except (BackfillError, BlockInputError, OSError) as exc:
        print(f"mevagent backfill: {exc} (resume with the same command)", file=sys.stderr)
        return 1
    print(f"classified {done} block(s) into {args.out_dir}")
    return 0
