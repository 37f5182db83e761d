"""`mevcontrol backfill`: a block range read from a node, classified (mevagent.analytics) and written into the
control plane's PostgreSQL, for history the agents' live classifiers did not see (before they ran, or
blocks they skipped or whose events were dropped).

Batched and resumable like `mevagent backfill`: `--cursor FILE` keeps the next block to do (written after
each batch is committed); without it a re-run starts again at `--from`, which is harmless: writing a block
again replaces its rows (mevcontrol.classifications).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from mevagent.analytics.backfill import BackfillError, backfill
from mevagent.analytics.prices import PricingFileError, load_pricing
from mevagent.analytics.source import BlockInputError
from mevagent.config import read_secret
from mevcontrol.classifications import PostgresClassificationSink
from mevcontrol.config import ControlConfig

_CHAIN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", help="backfill: the chain's name, as the agents call it")
    parser.add_argument("--rpc", help="backfill: the node's HTTP JSON-RPC URL")
    parser.add_argument("--from", dest="first", type=int, help="backfill: first block (inclusive)")
    parser.add_argument("--to", dest="last", type=int, help="backfill: last block (inclusive)")
    parser.add_argument("--cursor", type=Path, help="backfill: resume file")
    parser.add_argument("--batch", type=int, default=10, help="backfill: blocks per JSON-RPC batch")
    parser.add_argument("--traces", choices=("parity", "geth", "none"), default="parity")
    parser.add_argument(
        "--pricing", type=Path, help="backfill: the chain's `pricing:` section (YAML, as in the agent's config)"
    )


def refused(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments (naming the flag), or None."""
    if args.chain is None or not _CHAIN.fullmatch(args.chain):
        return f"--chain: a chain name (lower case, like the agents' config) is required, got {args.chain!r}"
    url = urlparse(args.rpc or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"--rpc: not an http(s) URL: {args.rpc!r}"
    if args.first is None or args.last is None or args.first < 0 or args.last < args.first:
        return f"--from/--to: empty range {args.first}..{args.last}"
    if args.batch < 1:
        return "--batch: must be at least 1"
    if args.pricing is not None:
        try:
            load_pricing(args.pricing)
        except PricingFileError as exc:
            return f"--pricing: {exc}"
    return None


async def run_backfill(config: ControlConfig, args: argparse.Namespace) -> int:
    """Blocks classified in this run (BackfillError, BlockInputError, OSError: the caller reports them)."""
    try:
        pool = await asyncpg.create_pool(read_secret(config.postgres_dsn_file).decode(), min_size=1, max_size=2)
    except asyncpg.PostgresError as exc:
        raise BackfillError(f"PostgreSQL: {exc}") from None
    try:
        sink = PostgresClassificationSink(pool, args.chain)
        pricing = load_pricing(args.pricing) if args.pricing is not None else None
        return await backfill(
            args.rpc, args.first, args.last, sink, cursor=args.cursor, batch_size=args.batch, traces=args.traces,
            pricing=pricing,
        )  # fmt: skip
    except asyncpg.PostgresError as exc:
        raise BackfillError(f"PostgreSQL: {exc}") from None
    finally:
        await pool.close()


__all__ = ["BackfillError", "BlockInputError", "add_arguments", "refused", "run_backfill"]
