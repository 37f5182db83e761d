"""Fixtures for tests that need a real EVM node.

`make setup` (`npm ci` at the repo root) installs both the anvil binary and the contract artifacts into
node_modules; the tests that need the node skip, and say so, when it is missing. Tests that need
no node never skip.
"""

import contextlib
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from testbed import arb, services
from testbed.e2e import World, build_world
from testbed.evm import ANVIL, REPO, Chain, start_anvil, stop_anvil
from testbed.pools import IpcAnvil

AGENT_TEST_TIMEOUT_S = 120
W = TypeVar("W")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A hang in an asyncio test (a lost cancellation, a node that never answers) must fail, not stall CI.
    for item in items:
        if "tests/agent/" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(AGENT_TEST_TIMEOUT_S))


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection loaded (every module, ABI and artifact) is kept for the session: out of the collector's
    # scans, so a full collection while a test runs does not stall its event loop (in-process builders answer
    # within 100 ms budgets) for the time it takes to walk all of that again.
    gc.freeze()


def _need_anvil() -> None:
    if not ANVIL.is_file():
        pytest.skip(
            f"{ANVIL.relative_to(REPO)} is missing: run `make setup` (or `npm ci` at the repo root) "
            "to install anvil and the Uniswap contract artifacts"
        )


def need_services() -> None:
    """Skip, saying why, where Redis or PostgreSQL cannot start."""
    why = services.missing()
    if why is not None:
        pytest.skip(why)


@contextlib.contextmanager
def own_anvil() -> Iterator[Chain]:
    """A new anvil (the test skipped without one), stopped on leaving."""
    _need_anvil()
    proc, w3 = start_anvil()
    try:
        yield Chain(w3)
    finally:
        stop_anvil(proc)


@pytest.fixture(scope="session")
def chain() -> Iterator[Chain]:
    with own_anvil() as chain:
        yield chain


@pytest.fixture(scope="module")
def node() -> Iterator[IpcAnvil]:
    """An anvil of the module's own with its IPC socket, WebSocket and HTTP (tests that stop or kill it).

    It dumps its state on a clean stop only, so a SIGKILL loses every block mined since the last clean
    stop, as a crashed node loses what it had not persisted.
    """
    _need_anvil()
    anvil = IpcAnvil()
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.close()


@pytest.fixture(scope="module")
def e2e_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The end-to-end world of the module's own (testbed.e2e.build_world: anvil over IPC, the DEX, our
    ArbExecutor holding the base token, the agent's keys)."""
    _need_anvil()
    built = build_world(tmp_path_factory.mktemp("keys"))
    try:
        yield built
    finally:
        built.node.close()


@pytest.fixture
def clean_e2e_world(e2e_world: World) -> Iterator[World]:
    """The module's e2e world, rewound after the test to the aligned pools it started from (no agent runs
    across tests, so the rewind is no reorg to one)."""
    snapshot = e2e_world.dex.chain.snapshot()
    try:
        yield e2e_world
    finally:
        e2e_world.dex.chain.revert(snapshot)


def snapshot_fixtures(build: Callable[[Chain, Path], W], label: str, names: tuple[str, str]):
    """(a module fixture, a test fixture) named `names` for a test module: `build`'s world, made once per module
    on the session's anvil in a new directory `label`, and per test that world under a snapshot reverted
    afterwards. Assign both at module level."""
    module_name, test_name = names

    @pytest.fixture(scope="module", name=module_name)
    def built(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[W]:
        snapshot = chain.snapshot()
        yield build(chain, tmp_path_factory.mktemp(label))
        chain.revert(snapshot)

    @pytest.fixture(name=test_name)
    def isolated(request: pytest.FixtureRequest) -> Iterator[W]:
        world = request.getfixturevalue(module_name)
        snapshot = world.chain.snapshot()
        yield world
        world.chain.revert(snapshot)

    return built, isolated


def arb_world_fixtures(label: str):
    """(world, isolated) fixtures for a test module: one ArbWorld per module on the session's anvil, and
    per test a snapshot reverted afterwards. Assign both at module level: `world, isolated = ...`."""
    return snapshot_fixtures(arb.build_world, label, ("world", "isolated"))
