"""Fixtures for tests that need a real EVM node.

`make setup` (`npm ci` at the repo root) installs both the anvil binary and the contract artifacts into
node_modules; the tests that need the node skip, and say so, when it is missing. Tests that need
no node never skip.
"""

from collections.abc import Iterator

import pytest

from .evm import ANVIL, REPO, Chain, start_anvil, stop_anvil
from .pools_fixture import IpcAnvil

AGENT_TEST_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A hang in an asyncio test (a lost cancellation, a node that never answers) must fail, not stall CI.
    for item in items:
        if "tests/agent/" in str(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(AGENT_TEST_TIMEOUT_S))


def _need_anvil() -> None:
    if not ANVIL.is_file():
        pytest.skip(
            f"{ANVIL.relative_to(REPO)} is missing: run `make setup` (or `npm ci` at the repo root) "
            "to install anvil and the Uniswap contract artifacts"
        )


@pytest.fixture(scope="session")
def chain() -> Iterator[Chain]:
    _need_anvil()
    proc, w3 = start_anvil()
    try:
        yield Chain(w3)
    finally:
        stop_anvil(proc)


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
