"""Fixtures for tests that need a real EVM node.

`make setup` (`npm ci` at the repo root) installs both the anvil binary and the contract artifacts into
node_modules; the tests that need the node skip, and say so, when it is missing. Tests that need
no node never skip.
"""

from collections.abc import Iterator

import pytest

from .evm import ANVIL, REPO, Chain, start_anvil, stop_anvil


@pytest.fixture(scope="session")
def chain() -> Iterator[Chain]:
    if not ANVIL.is_file():
        pytest.skip(
            f"{ANVIL.relative_to(REPO)} is missing: run `make setup` (or `npm ci` at the repo root) "
            "to install anvil and the Uniswap contract artifacts"
        )
    proc, w3 = start_anvil()
    try:
        yield Chain(w3)
    finally:
        stop_anvil(proc)
