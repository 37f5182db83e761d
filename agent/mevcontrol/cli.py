"""`mevcontrol run --config control.yml` (the systemd unit), `mevcontrol migrate --config control.yml` and
`mevcontrol backfill --config control.yml --chain C --rpc URL --from N --to M` (mevcontrol.backfill)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from mevagent.config import ConfigError, read_secret
from mevagent.crosschain.registry import RegistryError
from mevagent.heap import freeze_startup
from mevcontrol import backfill
from mevcontrol.config import ControlConfig, load_control_config
from mevcontrol.db import NOT_YET, login, migrate

log = logging.getLogger("mevcontrol")
SHUTDOWN_STEP_S = 5.0


async def serve(config: ControlConfig, stop: asyncio.Event) -> int:
    from mevcontrol.api import start_listeners
    from mevcontrol.operations import Operations
    from mevcontrol.service import Control

    control = await Control.open(config)
    ops = Operations(control)
    runners = []
    try:
        await control.start()
        runners = await start_listeners(ops)
        listen = config.listen
        frozen = freeze_startup()  # full GC passes never traverse startup's objects again (mevagent.heap)
        log.info(
            "mevcontrol running: %d agent(s) configured; :%d risk, :%d dashboard, :%d relays on %s (%s); %d startup "
            "objects frozen",
            len(config.agents), listen.risk_port, listen.dashboard_port, listen.relays_port, listen.bind,
            "TLS" if listen.tls_cert_file else "plain HTTP, loopback", frozen,
        )  # fmt: skip
        await stop.wait()
    finally:
        # Bounded: a client holding a connection open must not keep the process from stopping.
        for runner in runners:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.cleanup(), SHUTDOWN_STEP_S)
        await ops.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(control.close(), SHUTDOWN_STEP_S)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mevcontrol", description="The fleet control plane.")
    parser.add_argument("command", choices=["run", "migrate", "backfill"])
    parser.add_argument("--config", type=Path, required=True)
    backfill.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config = load_control_config(args.config)
    except ConfigError as exc:
        print(f"mevcontrol: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        try:
            asyncio.run(_migrate(read_secret(config.postgres_dsn_file).decode()))
        except (*NOT_YET, asyncpg.PostgresError, SQLAlchemyError) as exc:  # one line, whatever PostgreSQL said
            cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
            print(f"mevcontrol migrate: PostgreSQL: {type(cause).__name__}: {cause}", file=sys.stderr)
            return 1
        return 0
    if args.command == "backfill":
        return _backfill(config, args)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await serve(config, stop)

    try:
        return asyncio.run(run())
    except RegistryError as exc:  # control.yml's crosschain.registry_file: named, no traceback
        print(f"mevcontrol: crosschain.registry_file: {exc}", file=sys.stderr)
        return 2
    except asyncpg.PostgresError as exc:  # a refused login (postgres_dsn_file), not a PostgreSQL still starting
        print(f"mevcontrol: PostgreSQL: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def _migrate(dsn: str) -> None:
    await login(dsn)  # first: a refused login named as asyncpg's error, not SQLAlchemy's wrapping of it
    await migrate(dsn)


def _backfill(config: ControlConfig, args: argparse.Namespace) -> int:
    problem = backfill.refused(args)
    if problem is not None:
        print(f"mevcontrol backfill: {problem}", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(backfill.run_backfill(config, args))
    except (backfill.BackfillError, backfill.BlockInputError, OSError) as exc:
        print(f"mevcontrol backfill: {exc} (resume with the same command)", file=sys.stderr)
        return 1
    print(f"classified {done} block(s) of {args.chain} into PostgreSQL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
