"""Real Redis and PostgreSQL for the control-plane tests: one of each per test module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from mevcontrol.db import migrate

from testbed import crosschain
from testbed.services import Postgres, RedisServer

from ..conftest import _need_anvil, need_services


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    need_services()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    need_services()
    pg = Postgres()
    try:
        pg.init()
        asyncio.run(migrate(pg.dsn))
        yield pg
    finally:
        pg.remove()


@pytest.fixture(scope="module")
def sides() -> Iterator[tuple[crosschain.Side, crosschain.Side]]:
    """testbed.crosschain's two anvils (alpha 31401, beta 31402) with the same deployments, per test module."""
    _need_anvil()
    with crosschain.sides() as both:
        yield both
